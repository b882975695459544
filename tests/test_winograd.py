"""Winograd F(4x4, 3x3) convolution against NumPy, and its use in the VGG and the optimizer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle.nets import vgg, winograd
from jaxstyle.optim import loop as optimize
from jaxstyle.settings import presets
from tests.conftest import VARIANTS, rng_image, targets_for, variants


def numpy_conv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
  """SAME 3x3 cross-correlation, NHWC / HWIO, in float64."""
  n, h, w, _ = x.shape
  p = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((n, h, w, k.shape[-1]))
  for di in range(3):
    for dj in range(3):
      out += np.einsum("nhwc,co->nhwo", p[:, di : di + h, dj : dj + w], k[di, dj].astype(np.float64))
  return out


def _case(seed, shape, c_out):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=shape).astype(np.float32)
  k = (rng.normal(size=(3, 3, shape[-1], c_out)) / np.sqrt(9 * shape[-1])).astype(np.float32)
  return x, k


# Sizes that are and are not multiples of the 4x4 tile, tiny ones included.
@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 8, 8, 3), (2, 7, 10, 5), (1, 1, 1, 4), (1, 13, 6, 16), (1, 3, 0, 2)])
@pytest.mark.parametrize("mode", VARIANTS)
def test_matches_numpy(shape, mode):
  x, k = _case(0, shape, 6)
  want = numpy_conv(x, k)
  u = winograd.transform_kernel(k)
  assert u.shape == (36, shape[-1], 6) and u.dtype == jnp.float32
  got = variants(winograd.conv3x3)[mode](x, u)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max(initial=0))


def test_keeps_the_input_dtype():
  x, k = _case(3, (1, 8, 12, 4), 5)
  u = winograd.transform_kernel(k)
  got = winograd.conv3x3(jnp.asarray(x, jnp.bfloat16), u.astype(jnp.bfloat16))
  assert got.dtype == jnp.bfloat16
  want = numpy_conv(x, k)
  # bfloat16 rounding is amplified by the transforms' constants (up to 8): errors near 10% of
  # the largest output, which is why jaxstyle runs Winograd in float32.
  err = np.abs(np.asarray(got, np.float32) - want).max() / np.abs(want).max()
  assert 1e-3 < err < 0.15


def test_bad_shapes_are_refused():
  with pytest.raises(ValueError, match=r"\(3, 3, C_in, C_out\)"):
    winograd.transform_kernel(np.zeros((5, 5, 2, 2), np.float32))
  with pytest.raises(ValueError, match="does not fit input channels 3"):
    winograd.conv3x3(np.zeros((1, 4, 4, 3), np.float32), np.zeros((36, 2, 2), np.float32))


@pytest.mark.slow
def test_gradients_equal_the_direct_convolution():
  """Input gradient through Winograd, kernel gradient exact, transformed kernels get none."""
  x, k = _case(1, (2, 9, 6, 8), 5)
  g = np.random.default_rng(2).normal(size=(2, 9, 6, 5)).astype(np.float32)
  u_fwd, u_bwd = vgg._transform_both(k)

  def via(conv):
    return jax.jit(jax.grad(lambda x, k: jnp.vdot(conv(x, k), g), argnums=(0, 1)))(x, k)

  dx_w, dk_w = via(lambda x, k: vgg.winograd_conv3x3(x, k, u_fwd, u_bwd))
  dx_d, dk_d = via(vgg.conv3x3)
  np.testing.assert_allclose(dx_w, dx_d, rtol=0, atol=2e-5 * np.abs(dx_d).max())
  np.testing.assert_allclose(dk_w, dk_d, rtol=1e-5, atol=1e-5)
  du = jax.grad(lambda u: jnp.vdot(vgg.winograd_conv3x3(x, k, u, u_bwd), g))(u_fwd)
  np.testing.assert_array_equal(du, np.zeros_like(du))
  # Differentiating params through prepare() (the transform inside) still gives dk.
  dk_p = jax.grad(lambda k: jnp.vdot(vgg.winograd_conv3x3(x, k, *vgg._transform_both(k)), g))(k)
  np.testing.assert_allclose(dk_p, dk_d, rtol=1e-5, atol=1e-5)


def test_prepare_adds_and_strips_transformed_kernels(tiny_params):
  wide = vgg.prepare(tiny_params, "winograd", min_width=8)
  for name, layer in wide.items():
    c_in, c_out = layer["kernel"].shape[2:]
    assert ("winograd_fwd" in layer) == (min(c_in, c_out) >= 8), name
    if "winograd_fwd" in layer:
      assert layer["winograd_fwd"].shape == (36, c_in, c_out)
      assert layer["winograd_bwd"].shape == (36, c_out, c_in)
      assert layer["kernel"] is tiny_params[name]["kernel"]  # shared, not copied
  assert "winograd_fwd" not in wide["conv1_1"] and "winograd_fwd" in wide["conv2_2"]
  assert vgg.prepare(wide, "winograd", min_width=10**6)["conv2_2"]["winograd_fwd"] is wide["conv2_2"]["winograd_fwd"]
  assert jax.tree.structure(vgg.prepare(wide, "direct")) == jax.tree.structure(tiny_params)
  assert "winograd_fwd" not in vgg.prepare(tiny_params, "winograd")["conv2_2"]  # 8 < the default 128
  upto = vgg.prepare(tiny_params, "winograd", min_width=8, layers=["relu3_1", "relu2_1"])
  assert [n for n in upto if "winograd_fwd" in upto[n]] == ["conv2_2", "conv3_1"]
  with pytest.raises(ValueError, match="conv must be one of"):
    vgg.prepare(tiny_params, "fft")


def test_auto_is_winograd_on_cpu_only():
  assert vgg.resolve_conv("auto", "cpu") == "winograd"
  assert vgg.resolve_conv("auto", "gpu") == "direct"
  assert vgg.resolve_conv("auto", "tpu") == "direct"
  assert vgg.resolve_conv("direct", "cpu") == "direct"


@pytest.mark.slow
@pytest.mark.parametrize("mode", VARIANTS)
def test_features_with_winograd_equal_direct(tiny_params, mode):
  wide = vgg.prepare(tiny_params, "winograd", min_width=1)  # every conv, conv1_1 included
  x = jnp.asarray(np.stack([rng_image(s, 24, 20) for s in (3, 4)]))
  layers = ["relu1_1", "relu3_1", "relu5_1"]
  want = vgg.extract_features(tiny_params, x, layers)
  got = variants(lambda im: vgg.extract_features(wide, im, layers))[mode](x)
  for name in want:
    scale = float(jnp.abs(want[name]).max())
    np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-4 * scale, err_msg=name)


@pytest.mark.slow
def test_optimize_with_winograd_follows_direct(tiny_params):
  """Same run, both algorithms: the losses stay together and the images nearly equal."""
  content, style = rng_image(5, 24, 20), rng_image(6, 24, 20)
  config = presets.gatys(
    size=None,
    steps=10,
    report_every=5,
    content_layers=("relu3_1",),
    style_layers=("relu1_1", "relu3_1"),
  )
  targets = targets_for(tiny_params, content, style, config)
  wide = vgg.prepare(tiny_params, "winograd", min_width=1)
  runs = {
    conv: optimize.optimize(content, wide, targets, config.loss.weights(), config.set(conv=conv))
    for conv in ("winograd", "direct")
  }
  w, d = runs["winograd"], runs["direct"]
  assert float(w.losses["total"]) < 0.5 * float(w.history["total"][0])  # it optimizes
  np.testing.assert_allclose(w.history["total"], d.history["total"], rtol=1e-3)
  np.testing.assert_allclose(w.image, d.image, atol=2e-3)


def test_config_refuses_an_unknown_algorithm():
  with pytest.raises(ValueError, match="conv must be one of auto, direct, winograd"):
    presets.gatys().set(conv="fft")
