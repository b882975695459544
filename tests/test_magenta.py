"""Magenta's fast networks (jaxstyle.magenta) against NumPy references, on tiny random networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.errors import InputError
from jaxstyle.nets import magenta as mg
from tests.conftest import assert_f32_close

# Tiny networks with every feature of the real ones: stride-2 stages, residual and non-residual blocks,
# expansion 1 and > 1, three contracting and two expanding layers, several residual blocks.
TINY_PREDICTOR = mg.StylePredictor(stem=4, blocks=((1, 4, 1, 1), (2, 6, 2, 2), (2, 8, 2, 2)), head=12, style_dim=5)
TINY_TRANSFORMER = mg.Transformer(contract=(3, 4, 6), expand=(4, 3), residual_blocks=2, style_dim=5)
TINY_MULTI = mg.MultiStyle26(contract=(4, 4, 6), expand=(4, 3), residual_blocks=2, num_styles=4)

ATOL = 2e-5  # float32 network against a float64 reference; outputs are O(1)


@pytest.fixture(scope="module")
def predictor_params():
  return mg.init_params(jax.random.key(1), TINY_PREDICTOR)


@pytest.fixture(scope="module")
def transformer_params():
  return mg.init_params(jax.random.key(2), TINY_TRANSFORMER)


@pytest.fixture(scope="module")
def multi_params():
  return mg.init_params(jax.random.key(3), TINY_MULTI)


def rand(seed, *shape, low=0.0, high=1.0):
  return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


# --------------------------------------------------------------------------- NumPy references


def np_conv(x, kernel, stride=1, pads=((0, 0), (0, 0)), groups=1):
  """Cross-correlation of NHWC ``x`` with an HWIO kernel (I = C_in / groups), zero padding, in float64."""
  x = np.pad(np.asarray(x, np.float64), ((0, 0), *pads, (0, 0)))
  k = np.asarray(kernel, np.float64)
  n, h, w, _ = x.shape
  kh, kw, cig, co = k.shape
  oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
  cog = co // groups
  out = np.zeros((n, oh, ow, co))
  for g in range(groups):
    xs, ks = x[..., g * cig : (g + 1) * cig], k[..., g * cog : (g + 1) * cog]
    for i in range(kh):
      for j in range(kw):
        patch = xs[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
        out[..., g * cog : (g + 1) * cog] += patch @ ks[i, j]
  return out


def tf_same_pads(n, k, s):
  """TensorFlow's SAME padding of one axis: (before, after), the odd pixel after."""
  out = -(-n // s)
  total = max((out - 1) * s + k - n, 0)
  return total // 2, total - total // 2


def np_cin(x, gamma, beta, eps=1e-5):
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma[:, None, None, :] + beta[:, None, None, :]


def np_reflect(x, r):
  return np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")


def np_predictor(params, x, blocks):
  relu6 = lambda a: np.clip(a, 0.0, 6.0)

  def conv(p, a, stride=1, groups=1):
    kernel = np.asarray(p["kernel"])
    pads = tuple(tf_same_pads(a.shape[d], kernel.shape[0], stride) for d in (1, 2))
    return np_conv(a, kernel, stride, pads, groups) + np.asarray(p["bias"])

  a = relu6(conv(params["Conv"], np.asarray(x, np.float64), 2))
  i = 0
  for t, c, n, s in blocks:
    for j in range(n):
      p = params[f"expanded_conv_{i}" if i else "expanded_conv"]
      stride = s if j == 0 else 1
      y = relu6(conv(p["expand"], a)) if t != 1 else a
      y = relu6(conv(p["depthwise"], y, stride, groups=y.shape[-1]))
      y = conv(p["project"], y)
      a = a + y if stride == 1 and a.shape[-1] == c else y
      i += 1
  a = relu6(conv(params["Conv_1"], a)).mean(axis=(1, 2))
  return a @ np.asarray(params["bottleneck"]["kernel"]) + np.asarray(params["bottleneck"]["bias"])


def vector_norm(p, a, v):
  dense = lambda d: v @ np.asarray(d["kernel"], np.float64) + np.asarray(d["bias"])
  return np_cin(a, dense(p["gamma"]), dense(p["beta"]))


def weighted_norm(p, a, w):
  return np_cin(a, w @ np.asarray(p["gamma"], np.float64), w @ np.asarray(p["beta"], np.float64))


def np_body(params, x, cond, *, norm, contract_norm, residual_blocks):
  """Magenta's transformer: reflect padding to a multiple of 4, reflect-padded VALID convs, CIN, crop."""
  x, cond = np.asarray(x, np.float64), np.asarray(cond, np.float64)
  x = np.broadcast_to(x, (cond.shape[0], *x.shape[1:]))
  h, w = x.shape[1:3]
  relu = lambda a: np.maximum(a, 0.0)

  def layer(name, a, stride=1, up=False, normed=True):
    p = params[name]
    if up:
      a = a.repeat(2, axis=1).repeat(2, axis=2)
    kernel = np.asarray(p["kernel"])
    a = np_conv(np_reflect(a, kernel.shape[0] // 2), kernel, stride)
    return norm(p["norm"], a, cond) if normed else a + np.asarray(p["bias"])

  a = np.pad(x, ((0, 0), (0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")
  for i, s in zip((1, 2, 3), (1, 2, 2), strict=True):
    a = relu(layer(f"contract{i}", a, s, normed=contract_norm))
  for b in range(1, residual_blocks + 1):
    a = a + layer(f"residual{b}_2", relu(layer(f"residual{b}_1", a)))
  a = relu(layer("expand1", a, up=True))
  a = relu(layer("expand2", a, up=True))
  a = layer("expand3", a)
  return (1.0 / (1.0 + np.exp(-a)))[:, :h, :w]


# --------------------------------------------------------------------------- building blocks


def test_tf_same_padding_puts_the_odd_pixel_bottom_right():
  # The predictor graph pads [0, 0, 1, 1] at every stride-2 3x3 conv on its even 256 px maps.
  assert tf_same_pads(256, 3, 2) == (0, 1)
  assert tf_same_pads(17, 3, 2) == (1, 1)
  assert tf_same_pads(16, 3, 1) == (1, 1)


def test_instance_norm_matches_numpy():
  x, gamma, beta = rand(0, 2, 5, 7, 3, low=-2, high=3), rand(1, 2, 3, low=0.5, high=2), rand(2, 2, 3, low=-1, high=1)
  np.testing.assert_allclose(mg.instance_norm(x, gamma, beta), np_cin(x, gamma, beta), atol=1e-5)
  # one image, several conditions: broadcast over the batch
  np.testing.assert_allclose(mg.instance_norm(x[:1], gamma, beta), np_cin(x[:1], gamma, beta), atol=1e-5)


def test_reflect_pad_upsample_and_pad_to_multiple_match_numpy():
  x = rand(3, 1, 5, 6, 2)
  np.testing.assert_array_equal(mg.reflect_pad(x, 4), np_reflect(x, 4))
  np.testing.assert_array_equal(mg.upsample_nearest(x), x.repeat(2, axis=1).repeat(2, axis=2))
  padded = mg.pad_to_multiple(x, 4)
  assert padded.shape == (1, 8, 8, 2)
  np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 3), (0, 2), (0, 0)), mode="reflect"))


def test_reflect_padded_conv_matches_numpy(transformer_params):
  # the first contracting layer alone: bias, no CIN, 9x9 on a reflect-padded input
  p = transformer_params["contract1"]
  x = rand(4, 2, 12, 10, 3)
  got = mg._Layer(3, 9).apply({"params": p}, jnp.asarray(x), None)
  want = np_conv(np_reflect(x, 4), p["kernel"]) + np.asarray(p["bias"])
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_depthwise_stride2_block_matches_numpy(predictor_params):
  # one depthwise block at stride 2 on an even and an odd map (TF SAME: bottom/right padding differs)
  p = jax.tree.map(np.asarray, predictor_params["expanded_conv_1"])
  block = mg._InvertedResidual(2, 6, 2)
  for h, w in ((8, 8), (9, 7)):
    x = rand(5, 2, h, w, 4, low=-1, high=1)
    y = np.clip(np_conv(x, p["expand"]["kernel"]) + p["expand"]["bias"], 0, 6)
    pads = tuple(tf_same_pads(n, 3, 2) for n in (h, w))
    y = np.clip(np_conv(y, p["depthwise"]["kernel"], 2, pads, groups=8) + p["depthwise"]["bias"], 0, 6)
    want = np_conv(y, p["project"]["kernel"]) + p["project"]["bias"]
    np.testing.assert_allclose(block.apply({"params": p}, jnp.asarray(x)), want, atol=1e-5)


# --------------------------------------------------------------------------- whole networks


@pytest.mark.parametrize("hw", [(16, 16), (19, 13)])
def test_predictor_matches_numpy(predictor_params, hw):
  x = rand(6, 2, *hw, 3)
  got = TINY_PREDICTOR.apply({"params": predictor_params}, jnp.asarray(x))
  np.testing.assert_allclose(got, np_predictor(predictor_params, x, TINY_PREDICTOR.blocks), atol=ATOL, rtol=1e-5)


def test_transformer_matches_numpy(transformer_params):
  x, v = rand(7, 1, 13, 18, 3), rand(8, 3, 5, low=-1, high=1)
  got = mg.transfer(transformer_params, x, v)
  want = np_body(transformer_params, x, v, norm=vector_norm, contract_norm=False, residual_blocks=2)
  assert got.shape == (3, 13, 18, 3)
  np.testing.assert_allclose(got, want, atol=ATOL)


def test_multistyle_matches_numpy(multi_params):
  x, w = rand(9, 2, 11, 9, 3), rand(10, 2, 4)
  got = mg.multistyle(multi_params, x, w)
  want = np_body(
    multi_params, x, w / w.sum(-1, keepdims=True), norm=weighted_norm, contract_norm=True, residual_blocks=2
  )
  np.testing.assert_allclose(got, want, atol=ATOL)


@pytest.mark.slow
def test_batch_of_vectors_equals_loop(transformer_params, multi_params):
  x, v, w = rand(11, 10, 14, 3), rand(12, 4, 5, low=-1, high=1), rand(13, 4, 4)
  batch = mg.transfer(transformer_params, x, v)
  loop = np.stack([mg.transfer(transformer_params, x, vi) for vi in v])
  np.testing.assert_allclose(batch, loop, atol=1e-5)
  batch = mg.multistyle(multi_params, x, w)
  loop = np.stack([mg.multistyle(multi_params, x, wi) for wi in w])
  np.testing.assert_allclose(batch, loop, atol=1e-5)


@pytest.mark.slow
def test_plain_jit_and_vmap_agree(transformer_params, multi_params):
  x, v, w = rand(14, 9, 11, 3), rand(15, 3, 5, low=-1, high=1), rand(16, 3, 4)
  for fn, params, cond in ((mg.transfer, transformer_params, v), (mg.multistyle, multi_params, w)):
    plain = fn(params, x, cond)
    jitted = jax.jit(fn)
    np.testing.assert_allclose(jitted(params, x, cond), plain, atol=1e-5)
    assert jitted._cache_size() == 1  # one compiled call for the whole batch of conditions
    mapped = jax.jit(jax.vmap(fn, in_axes=(None, None, 0)))(params, x, cond)
    np.testing.assert_allclose(mapped, plain, atol=1e-5)


@pytest.mark.parametrize("hw", [(5, 5), (13, 21), (22, 7)])
def test_any_size_returns_the_input_size(transformer_params, multi_params, hw):
  x = rand(17, *hw, 3)
  assert mg.transfer(transformer_params, x, rand(18, 5)).shape == (*hw, 3)
  assert mg.multistyle(multi_params, x, rand(19, 4)).shape == (*hw, 3)


def test_output_is_sigmoid_range(transformer_params):
  out = mg.transfer(transformer_params, rand(20, 12, 12, 3), rand(21, 2, 5, low=-3, high=3))
  assert float(out.min()) > 0.0 and float(out.max()) < 1.0


@pytest.mark.slow
def test_gradient_with_respect_to_content_is_finite(transformer_params):
  loss = lambda x: jnp.mean(mg.transfer(transformer_params, x, jnp.ones((5,))) ** 2)
  g = jax.grad(loss)(jnp.asarray(rand(22, 9, 10, 3)))
  assert g.shape == (9, 10, 3) and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0


def test_bad_inputs_raise_input_error(transformer_params, multi_params):
  with pytest.raises(InputError, match="at least 5"):
    mg.transfer(transformer_params, rand(23, 4, 10, 3), rand(24, 5))
  with pytest.raises(InputError, match="give as many"):
    mg.transfer(transformer_params, rand(25, 2, 8, 8, 3), rand(26, 3, 5))
  with pytest.raises(InputError, match=r"\(N, 5\)"):
    mg.transfer(transformer_params, rand(27, 8, 8, 3), rand(28, 7))
  with pytest.raises(InputError, match="content"):
    mg.multistyle(multi_params, rand(29, 8, 8), rand(30, 4))


# --------------------------------------------------------------------------- library functions


@pytest.mark.slow
def test_predict_style_crops_resizes_and_unbatches(predictor_params):
  img = rand(31, 20, 30, 3)
  v = mg.predict_style(predictor_params, img, style_size=16, model=TINY_PREDICTOR)
  assert v.shape == (5,)
  square = img[:, 5:25]  # the central 20 x 20
  small = jnp.clip(jax.image.resize(square[None], (1, 16, 16, 3), "lanczos3", antialias=True), 0, 1)
  assert_f32_close(v, TINY_PREDICTOR.apply({"params": predictor_params}, small)[0], terms=16 * 16, stages=4)
  batch = mg.predict_style(
    predictor_params, np.stack([img, img[::-1]]), style_size=None, square_crop=False, model=TINY_PREDICTOR
  )
  assert_f32_close(batch[0], TINY_PREDICTOR.apply({"params": predictor_params}, img[None])[0], terms=600, stages=4)


def test_interpolate_is_magentas_identity_interpolation():
  own, style = rand(32, 6), rand(33, 3, 6)
  np.testing.assert_allclose(mg.interpolate(own, style[0], 0.0), own)
  np.testing.assert_allclose(mg.interpolate(own, style[0], 1.0), style[0])
  np.testing.assert_allclose(mg.interpolate(own, style[0], 0.25), 0.25 * style[0] + 0.75 * own, rtol=1e-6)
  mixed = mg.interpolate(own, style, np.array([0.0, 0.5, 1.0]))
  assert mixed.shape == (3, 6)
  np.testing.assert_allclose(mixed[1], 0.5 * style[1] + 0.5 * own, rtol=1e-6)
  np.testing.assert_allclose(mixed[2], style[2])


def test_multistyle_normalizes_weights(multi_params):
  x, w = rand(34, 8, 9, 3), rand(35, 4)
  # the normalised weightings differ in their last bits; 9 normalized layers of up to 9 x 9 x 8 products each
  assert_f32_close(mg.multistyle(multi_params, x, 3.0 * w), mg.multistyle(multi_params, x, w), terms=648, stages=9)
  raw = mg.multistyle(multi_params, x, 3.0 * w, normalize=False)
  assert float(jnp.abs(raw - mg.multistyle(multi_params, x, w)).max()) > 1e-3


def test_params_shapes_and_inference_from_params(transformer_params, multi_params):
  for model, params in ((TINY_TRANSFORMER, transformer_params), (TINY_MULTI, multi_params)):
    shapes = mg.param_shapes(model)
    assert jax.tree.map(lambda s: (s.shape, s.dtype), shapes) == jax.tree.map(lambda a: (a.shape, a.dtype), params)
  assert mg.transformer_of(transformer_params) == TINY_TRANSFORMER
  assert mg.multistyle26_of(multi_params) == TINY_MULTI
  assert float(jnp.abs(transformer_params["contract1"]["bias"]).max()) > 0  # biases are random, not zero
  assert mg.model_from_config(mg.StylePredictor, mg.model_config(TINY_PREDICTOR)) == TINY_PREDICTOR


def test_real_shapes_without_allocating():
  count = lambda model: sum(int(np.prod(s.shape)) for s in jax.tree.leaves(mg.param_shapes(model)))
  assert 2_300_000 < count(mg.StylePredictor()) < 2_400_000  # MobileNetV2 1.0 to Conv_1, plus 1280 -> 100
  shapes = mg.param_shapes(mg.Transformer())
  assert shapes["contract1"]["kernel"].shape == (9, 9, 3, 8)
  assert shapes["expand3"]["norm"]["gamma"]["kernel"].shape == (100, 3)
  shapes = mg.param_shapes(mg.MultiStyle26())
  assert shapes["residual6_2"]["norm"]["beta"].shape == (26, 32)
  assert shapes["expand2"]["kernel"].shape == (3, 3, 8, 4)
