"""The Flax VGG19: names, shapes, layer selection, preprocessing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.nets import vgg
from tests.conftest import TINY_WIDTHS, VARIANTS, variants


def test_layer_table():
  assert len(vgg.CONV_LAYERS) == 16
  assert vgg.LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
  assert vgg.LAYERS[-1] == "pool5"
  assert len(vgg.LAYERS) == 16 * 2 + 5


@pytest.mark.parametrize(
  "alias,name",
  [("relu4_2", "relu4_2"), ("block5_conv2", "relu5_2"), ("block4_relu2", "relu4_2"), ("block3_pool", "pool3")],
)
def test_aliases(alias, name):
  assert vgg.canonical_layer(alias) == name


@pytest.mark.parametrize("bad", ["relu6_1", "conv1_3", "block9_conv1", "", "fc7"])
def test_unknown_layer_is_refused(bad):
  with pytest.raises(ValueError, match="unknown VGG19 layer"):
    vgg.canonical_layer(bad)


def test_preprocess_matches_numpy():
  x = np.random.default_rng(0).uniform(size=(2, 3, 4, 3)).astype(np.float32)
  want = x[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], np.float32)
  np.testing.assert_allclose(jax.jit(vgg.preprocess)(x), want, rtol=1e-6, atol=1e-4)


def test_shapes_of_every_layer(tiny_params):
  x = jnp.zeros((2, 32, 48, 3))
  feats = vgg.extract_features(tiny_params, x)
  assert set(feats) == set(vgg.LAYERS)
  for name, f in feats.items():
    s = vgg.layer_stride(name)
    block = int(name[4])
    assert f.shape == (2, 32 // s, 48 // s, TINY_WIDTHS[block - 1]), name


def test_stops_at_deepest_requested_layer(tiny_params):
  """Params of layers past relu2_1 are not needed to compute it."""
  shallow = {k: v for k, v in tiny_params.items() if k in ("conv1_1", "conv1_2", "conv2_1")}
  x = jnp.ones((1, 16, 16, 3)) * 0.5
  got = vgg.extract_features(shallow, x, ["relu2_1", "conv1_1"])
  full = vgg.extract_features(tiny_params, x, ["relu2_1", "conv1_1"])
  assert list(got) == ["relu2_1", "conv1_1"]
  np.testing.assert_allclose(got["relu2_1"], full["relu2_1"], rtol=1e-6)


def test_requested_names_are_kept_as_given(tiny_params):
  feats = vgg.extract_features(tiny_params, jnp.zeros((8, 8, 3)), ["block1_conv1", "relu1_1"])
  assert set(feats) == {"block1_conv1", "relu1_1"}
  np.testing.assert_array_equal(feats["block1_conv1"], feats["relu1_1"])
  assert feats["relu1_1"].shape == (8, 8, TINY_WIDTHS[0])  # unbatched input, unbatched output


def test_first_conv_matches_numpy(tiny_params):
  """conv1_1 is a SAME-padded cross-correlation of the Caffe-preprocessed input."""
  x = np.random.default_rng(1).uniform(size=(1, 6, 5, 3)).astype(np.float32)
  got = vgg.extract_features(tiny_params, x, ["conv1_1"])["conv1_1"]
  k = np.asarray(tiny_params["conv1_1"]["kernel"], np.float64)
  b = np.asarray(tiny_params["conv1_1"]["bias"], np.float64)
  p = np.pad(x[0, :, :, ::-1] * 255.0 - np.array([103.939, 116.779, 123.68]), ((1, 1), (1, 1), (0, 0)))
  want = np.zeros((6, 5, k.shape[-1]))
  for i in range(6):
    for j in range(5):
      want[i, j] = np.einsum("hwc,hwco->o", p[i : i + 3, j : j + 3], k) + b
  np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-2)


def test_avg_pooling_differs_from_max(tiny_params):
  x = jnp.asarray(np.random.default_rng(2).uniform(size=(1, 16, 16, 3)), jnp.float32)
  mx = vgg.extract_features(tiny_params, x, ["pool1"], pooling="max")["pool1"]
  av = vgg.extract_features(tiny_params, x, ["pool1"], pooling="avg")["pool1"]
  r = vgg.extract_features(tiny_params, x, ["relu1_2"])["relu1_2"]
  want_avg = np.asarray(r).reshape(1, 8, 2, 8, 2, -1).mean(axis=(2, 4))
  np.testing.assert_allclose(av, want_avg, rtol=1e-5, atol=1e-4)
  assert np.all(np.asarray(mx) >= np.asarray(av) - 1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_extract_features_jits_and_vmaps(tiny_params, variant):
  x = jnp.asarray(np.random.default_rng(3).uniform(size=(3, 16, 16, 3)), jnp.float32)
  f = lambda im: vgg.extract_features(tiny_params, im, ["relu2_1"])["relu2_1"]  # noqa: E731
  want = np.stack([f(x[i : i + 1])[0] for i in range(3)])
  np.testing.assert_allclose(variants(f)[variant](x), want, rtol=1e-5, atol=1e-4)


def test_bad_image_shape_is_refused(tiny_params):
  with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
    vgg.extract_features(tiny_params, jnp.zeros((1, 8, 8, 4)))


def test_param_shapes_match_init():
  shapes = vgg.param_shapes()
  assert shapes["conv1_1"]["kernel"].shape == (3, 3, 3, 64)
  assert shapes["conv5_4"]["kernel"].shape == (3, 3, 512, 512)
  total = sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
  assert total == 20_024_384  # the 16 convolutions of VGG19


@pytest.mark.slow
def test_conv3x3_matches_flax_conv_and_its_gradients():
  """Same params, outputs and gradients (input and kernel) as nn.Conv + autodiff."""
  import flax.linen as nn

  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(2, 7, 6, 3)), jnp.float32)
  ref = nn.Conv(5, (3, 3), padding="SAME")
  p = ref.init(jax.random.key(1), x)
  ours = vgg.Conv3x3(5)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, p)
  np.testing.assert_allclose(ours.apply(p, x), ref.apply(p, x), rtol=1e-5, atol=1e-5)
  f = lambda m: lambda params, x: jnp.sum(jnp.sin(m.apply(params, x)))
  g_ref = jax.grad(f(ref), argnums=(0, 1))(p, x)
  g_ours = jax.jit(jax.grad(f(ours), argnums=(0, 1)))(p, x)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_pool_gains_make_pooled_activations_comparable(tiny_params):
  """Max pooling scaled by the gains has (block by block) the magnitude of average pooling."""
  x = jnp.asarray(np.random.default_rng(5).uniform(size=(1, 32, 32, 3)), jnp.float32)
  np.testing.assert_array_equal(vgg.pool_gains(tiny_params, x, native="avg", pooling="avg"), np.ones(5))
  gains = np.asarray(vgg.pool_gains(tiny_params, x, native="avg", pooling="max"))
  assert np.all((gains > 0) & (gains <= 1.0 + 1e-6))  # max pooling is never smaller than average pooling
  ref = vgg.extract_features(tiny_params, x, ["pool1"], pooling="avg")["pool1"]
  raw = vgg.extract_features(tiny_params, x, ["pool1"], pooling="max")["pool1"]
  scaled = vgg.extract_features(tiny_params, x, ["pool1"], pooling="max", pool_gains=gains)["pool1"]
  np.testing.assert_allclose(float(jnp.mean(scaled)), float(jnp.mean(ref)), rtol=1e-4)
  assert float(jnp.mean(raw)) > float(jnp.mean(ref))


def _maxblur_numpy(x: np.ndarray) -> np.ndarray:
  """Zhang's anti-aliased max pooling, loop by loop: a 2x2 max at stride 1 and a [1, 2, 1] / 4 blur both
  ways, zero beyond the map, then the even positions of the first ``2 (H // 2)`` rows and columns."""
  n, h, w, c = x.shape
  at = lambda a, i, j: a[:, i, j] if 0 <= i < h and 0 <= j < w else np.zeros((n, c), a.dtype)  # noqa: E731
  m = np.zeros_like(x)
  for i, j in np.ndindex(h, w):
    m[:, i, j] = np.max([at(x, i + a, j + b) for a in (0, 1) for b in (0, 1)], axis=0)
  k = {-1: 0.25, 0: 0.5, 1: 0.25}
  out = np.zeros((n, h // 2, w // 2, c), np.float32)
  for i, j in np.ndindex(h // 2, w // 2):
    out[:, i, j] = sum(k[a] * k[b] * at(m, 2 * i + a, 2 * j + b) for a in k for b in k)
  return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_maxblur_pooling_matches_numpy(variant):
  x = np.abs(np.random.default_rng(8).normal(size=(5, 7, 3))).astype(np.float32)  # ReLU maps: >= 0
  f = lambda x: vgg.pool(x[None], "maxblur")[0]  # noqa: E731
  np.testing.assert_allclose(variants(f)[variant](x), _maxblur_numpy(x[None])[0], rtol=1e-6, atol=1e-7)


def test_halo_grows_with_maxblur():
  assert vgg.halo(["relu4_2"]) == 40 and vgg.halo(["relu5_1"]) == 80
  # relu2_1: two convolutions (c = 2), pool1 (max: 1; maxblur: 2 // 2 + 1 = 2), conv2_1 (+1), at stride 2
  assert vgg.halo(["relu2_1"]) == (1 + 1) * 2 and vgg.halo(["relu2_1"], pooling="maxblur") == (2 + 1) * 2
  assert vgg.halo(["relu5_1"], pooling="maxblur") > vgg.halo(["relu5_1"])


@pytest.mark.parametrize("mode", ["plain", "jit"])
def test_pooling_and_its_gradient_match_numpy(mode):
  """2x2 pooling (odd edges dropped, as VALID pooling does) and its gradient: max routes it
  to each window's largest input, average spreads a quarter to each."""
  x = np.random.default_rng(6).normal(size=(2, 5, 7, 3)).astype(np.float32)  # no ties
  g = np.random.default_rng(7).normal(size=(2, 2, 3, 3)).astype(np.float32)
  win = x[:, :4, :6].reshape(2, 2, 2, 3, 2, 3)
  for pooling, want in (("max", win.max(axis=(2, 4))), ("avg", win.mean(axis=(2, 4)))):
    f = lambda x, pooling=pooling: vgg.pool(x, pooling)  # noqa: E731
    if mode == "jit":
      f = jax.jit(f)
    np.testing.assert_allclose(f(x), want, rtol=1e-6)
    dx = np.asarray(jax.grad(lambda x, f=f: jnp.vdot(f(x), g))(x))
    want_dx = np.zeros_like(x)
    for n, i, j, c in np.ndindex(2, 2, 3, 3):
      w = x[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
      if pooling == "max":
        a, b = np.unravel_index(np.argmax(w), (2, 2))
        want_dx[n, 2 * i + a, 2 * j + b, c] = g[n, i, j, c]
      else:
        want_dx[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c] = g[n, i, j, c] / 4
    np.testing.assert_allclose(dx, want_dx, rtol=1e-6, atol=1e-7)
