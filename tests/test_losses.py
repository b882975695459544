"""Losses against NumPy references written here; each body runs plain, jitted and vmapped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.objective import losses
from tests.conftest import assert_f32_close, variants

RTOL, ATOL = 1e-5, 1e-6


def np_gram(f, normalize):
  n, h, w, c = f.shape
  m = f.reshape(n, h * w, c).astype(np.float64)
  g = np.einsum("npc,npd->ncd", m, m)
  return g / {"none": 1, "hw": h * w, "chw": c * h * w}[normalize]


def np_reduce(x, reduction):
  axes = tuple(range(1, x.ndim))
  return {"sum": x.sum(axes), "mean": x.mean(axes), "half_sum": 0.5 * x.sum(axes)}[reduction]


def np_tv(x, kind, reduction):
  dh = x[:, 1:] - x[:, :-1]
  dw = x[:, :, 1:] - x[:, :, :-1]
  f = np.abs if kind == "l1" else np.square
  return np_reduce(f(dh), reduction) + np_reduce(f(dw), reduction)


@pytest.fixture
def feats():
  rng = np.random.default_rng(0)
  return {
    "a": rng.normal(size=(2, 6, 5, 4)).astype(np.float32),
    "b": rng.normal(size=(2, 3, 3, 7)).astype(np.float32),
  }


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
@pytest.mark.parametrize("normalize", losses.GRAM_NORMS)
def test_gram_matches_numpy(feats, normalize, variant):
  fn = variants(lambda f: losses.gram_matrix(f, normalize=normalize))[variant]
  got = fn(feats["a"])
  assert got.shape == (2, 4, 4)
  np.testing.assert_allclose(got, np_gram(feats["a"], normalize), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
@pytest.mark.parametrize("normalize", losses.GRAM_NORMS)
def test_gram_gradient_matches_numpy(feats, normalize, variant):
  """d/dF of sum(T * G(F)) = F (T + T^T) / Z, with a non-symmetric T."""
  f = feats["a"]
  t = np.random.default_rng(1).normal(size=(2, 4, 4)).astype(np.float32)
  fn = variants(jax.grad(lambda f, t: jnp.sum(t * losses.gram_matrix(f, normalize=normalize))))[variant]
  got = fn(f, t)
  n, h, w, c = f.shape
  z = {"none": 1, "hw": h * w, "chw": c * h * w}[normalize]
  m = f.reshape(n, h * w, c).astype(np.float64)
  want = np.einsum("npd,ncd->npc", m, t + np.swapaxes(t, 1, 2)).reshape(f.shape) / z
  assert_f32_close(got, want, terms=c)


def test_gram_is_symmetric_and_psd(feats):
  g = np.asarray(losses.gram_matrix(feats["b"], normalize="none"), np.float64)
  np.testing.assert_allclose(g, np.swapaxes(g, 1, 2), rtol=1e-6)
  assert np.linalg.eigvalsh(g).min() > -1e-4


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
@pytest.mark.parametrize("reduction", losses.REDUCTIONS)
def test_content_loss_matches_numpy(feats, reduction, variant):
  rng = np.random.default_rng(1)
  targets = {k: rng.normal(size=(1,) + v.shape[1:]).astype(np.float32) for k, v in feats.items()}
  weights = {"a": 0.5, "b": 2.0}
  fn = variants(lambda f, t: losses.content_loss(f, t, weights, reduction=reduction))[variant]
  got = fn(feats, targets)
  want = sum(w * np_reduce((feats[k].astype(np.float64) - targets[k]) ** 2, reduction) for k, w in weights.items())
  assert got.shape == (2,)
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
@pytest.mark.parametrize(
  "normalize,reduction,layer_norm", [("hw", "mean", "none"), ("chw", "sum", "none"), ("none", "mean", "chw")]
)
def test_style_loss_matches_numpy(feats, normalize, reduction, layer_norm, variant):
  rng = np.random.default_rng(2)
  style = {k: rng.normal(size=(1,) + v.shape[1:]).astype(np.float32) for k, v in feats.items()}
  grams = {k: np_gram(v, normalize).astype(np.float32) for k, v in style.items()}
  weights = {"a": 1.0, "b": 0.25}
  fn = variants(
    lambda f, g: losses.style_loss(f, g, weights, normalize=normalize, reduction=reduction, layer_norm=layer_norm)
  )[variant]
  got = fn(feats, grams)
  want = 0
  for k, w in weights.items():
    z = np.prod(feats[k].shape[1:]) if layer_norm == "chw" else 1
    want = want + w * np_reduce((np_gram(feats[k], normalize) - grams[k]) ** 2, reduction) / z
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=ATOL)


def test_style_loss_zero_at_target(feats):
  grams = {"a": losses.gram_matrix(feats["a"][:1])}
  assert float(losses.style_loss({"a": feats["a"][:1]}, grams, {"a": 1.0})[0]) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
@pytest.mark.parametrize("kind", losses.TV_KINDS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_total_variation_matches_numpy(kind, reduction, variant):
  x = np.random.default_rng(3).uniform(size=(2, 5, 7, 3)).astype(np.float32)
  got = variants(lambda im: losses.total_variation(im, kind=kind, reduction=reduction))[variant](x)
  np.testing.assert_allclose(got, np_tv(x.astype(np.float64), kind, reduction), rtol=RTOL, atol=ATOL)


def test_total_variation_of_constant_image_is_zero():
  assert float(losses.total_variation(jnp.full((1, 4, 4, 3), 0.3))[0]) == 0.0


def test_bad_options_raise():
  f = jnp.zeros((1, 2, 2, 3))
  with pytest.raises(ValueError, match="normalize"):
    losses.gram_matrix(f, normalize="bogus")
  with pytest.raises(ValueError, match="kind"):
    losses.total_variation(f, kind="l3")
  with pytest.raises(ValueError, match="reduction"):
    losses.content_loss({"a": f}, {"a": f}, {"a": 1.0}, reduction="max")


def _problem():
  rng = np.random.default_rng(4)
  feats = {"a": rng.normal(size=(1, 4, 4, 3)).astype(np.float32), "b": rng.normal(size=(1, 2, 2, 5)).astype(np.float32)}
  content = {"a": rng.normal(size=(1, 4, 4, 3)).astype(np.float32)}
  grams = {k: np_gram(rng.normal(size=v.shape), "hw").astype(np.float32) for k, v in feats.items()}
  image = rng.uniform(size=(1, 6, 6, 3)).astype(np.float32)
  return feats, content, grams, image


def test_total_loss_is_weighted_sum():
  feats, content, grams, image = _problem()
  w = losses.LossWeights(content=2.0, style=3.0, tv=0.5, content_layers={"a": 1.0}, style_layers={"a": 1.0, "b": 0.5})
  total, parts = jax.jit(losses.total_loss)(feats, content, grams, image, w)
  c = losses.content_loss(feats, content, {"a": 1.0})
  s = losses.style_loss(feats, grams, {"a": 1.0, "b": 0.5})
  tv = losses.total_variation(image)
  np.testing.assert_allclose(parts["content"], 2.0 * c, rtol=RTOL)
  np.testing.assert_allclose(parts["style"], 3.0 * s, rtol=RTOL)
  np.testing.assert_allclose(parts["tv"], 0.5 * tv, rtol=RTOL)
  np.testing.assert_allclose(total, 2 * c + 3 * s + 0.5 * tv, rtol=RTOL)


@pytest.mark.slow
def test_vmap_over_loss_weights_equals_loop():
  feats, content, grams, image = _problem()
  sweep = losses.LossWeights(
    content=jnp.array([1.0, 0.5, 2.0]),
    style=jnp.array([1e-2, 1.0, 10.0]),
    tv=jnp.array([0.0, 0.1, 1.0]),
    content_layers={"a": jnp.array([1.0, 2.0, 3.0])},
    style_layers={"a": jnp.array([1.0, 0.0, 0.5]), "b": jnp.array([0.2, 0.2, 1.0])},
  )
  fn = lambda w: losses.total_loss(feats, content, grams, image, w)[0][0]
  batched = jax.jit(jax.vmap(fn))(sweep)
  looped = [fn(jax.tree.map(lambda x, i=i: x[i], sweep)) for i in range(3)]
  np.testing.assert_allclose(batched, np.array(looped), rtol=1e-6)
  # and the gradient with respect to the image, per member
  gfn = lambda w, im: jax.grad(lambda x: losses.total_loss(feats, content, grams, x, w)[0][0])(im)
  gb = jax.vmap(gfn, in_axes=(0, None))(sweep, image)
  for i in range(3):
    assert_f32_close(gb[i], gfn(jax.tree.map(lambda x, i=i: x[i], sweep), image), terms=16, stages=3)
