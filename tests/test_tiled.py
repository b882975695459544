"""The tiled objective against the whole image's: value, parts and gradient, every loss form; and
through the product: every optimizer, masks, regions, progress, checkpoints, signals, several
devices and several processes."""

import functools
import json
import pickle
import shlex
import signal
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import cli, objective
from jaxstyle.io import images
from jaxstyle.nets import vgg
from jaxstyle.objective import losses, tiled
from jaxstyle.objective import targets as targets_module
from jaxstyle.optim import loop as optimize
from jaxstyle.optim.step import Static
from jaxstyle.optim.stylize import load_checkpoint
from jaxstyle.runtime import memory
from jaxstyle.settings import fields, presets
from jaxstyle.settings import style as config
from tests import processes
from tests.conftest import rng_image, targets_for, tiny
from tests.processes import run_two_processes

# Relative tolerance on the value and parts, and on max|grad - ref| / max|ref|: float32
# sums in another order (and Winograd tiles on another grid) measured below 1e-5 here.
RTOL = 1e-4

DEEP = ({"relu4_2": 1.0}, {"relu1_1": 1.0, "relu2_1": 0.75, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2})
# A content layer before its ReLU (the bias shows outside the image) and a pool layer.
SHALLOW = ({"conv2_2": 1.0}, {"relu1_1": 1.0, "pool2": 0.5, "conv3_1": 0.3})


@functools.partial(jax.jit, static_argnames=("clayers", "slayers", "pooling", "gram_norm"))
def _targets(params, content, style, gains, regions, *, clayers, slayers, pooling, gram_norm):
  targets = vgg.extract_features(params, content[None], clayers, pooling=pooling, pool_gains=gains)
  sf = vgg.extract_features(params, style[None], slayers, pooling=pooling, pool_gains=gains)
  if regions is None:
    return targets, {k: losses.gram_matrix(v, normalize=gram_norm) for k, v in sf.items()}
  return targets, {k: losses.guided_gram_matrix(v, regions, normalize=gram_norm) for k, v in sf.items()}


def setup(params, layer_sets, *, hw, spec, pooling, regions=False, mask=False, gains=False, balance=True, seed=0):
  """An image and the keyword arguments of tiled_value_and_grad for a problem, weighted so
  that content, style and TV are each about 1 at the image (so each shows in the gradient)."""
  clayers, slayers = layer_sets
  layers = tuple(dict.fromkeys([*clayers, *slayers]))
  h, w = hw
  content, style = rng_image(seed + 1, h, w), rng_image(seed + 2, 29, 34)
  kw = {}
  if gains:
    kw["pool_gains"] = jnp.asarray([1.3, 0.7, 1.1, 0.9, 1.2], jnp.float32)
  if regions:
    y = np.linspace(0, 1, 23, dtype=np.float32)[:, None] * np.ones((1, 31), np.float32)
    kw["regions"] = jnp.asarray(np.stack([y, 1 - y]))  # at its own size: resized per layer
  if mask:
    m = np.zeros((h, w, 1), np.float32)
    m[h // 4 :, : 3 * w // 4] = 1.0
    m[h // 4, :] = 0.5
    kw["mask"], kw["anchor"] = jnp.asarray(m), jnp.asarray(content)
  direct = vgg.prepare(params, "direct")  # targets need not come from the same algorithm
  targets, grams = _targets(
    direct,
    content,
    style,
    kw.get("pool_gains"),
    kw.get("regions"),
    clayers=tuple(clayers),
    slayers=tuple(slayers),
    pooling=pooling,
    gram_norm=spec.gram_norm,
  )
  weights = losses.LossWeights(1.0, 1.0, 1.0, clayers, slayers)
  kw.update(content_targets=targets, style_grams=grams, weights=weights, spec=spec, layers=layers, pooling=pooling)
  image = jnp.asarray(rng_image(seed, h, w))
  if balance:
    _, parts = reference(image, params, **kw)[0]
    kw["weights"] = weights._replace(**{k: 1.0 / float(v) for k, v in parts.items()})
  return image, kw


def _ref(image, params, targets, grams, weights, pool_gains, regions, mask, anchor, static):
  spec, layers, pooling = static

  def f(image):
    x = image if mask is None else mask * image + (1 - mask) * anchor
    feats = vgg.extract_features(params, x[None], layers, pooling=pooling, pool_gains=pool_gains)
    total, parts = losses.total_loss(feats, targets, grams, x[None], weights, spec, regions=regions)
    return total[0], {k: jnp.reshape(v, -1)[0] for k, v in parts.items()}  # a part with no layers is 0.0

  return jax.value_and_grad(f, has_aux=True)(image)


_ref_jit = jax.jit(_ref, static_argnames=("static",))


def reference(image, params, *, content_targets, style_grams, weights, spec, layers, pooling, **kw):
  """``jax.value_and_grad`` of the untiled objective, as ``tiled_value_and_grad``'s docstring states it."""
  args = [kw.get(k) for k in ("pool_gains", "regions", "mask", "anchor")]
  return _ref_jit(image, params, content_targets, style_grams, weights, *args, static=(spec, layers, pooling))


def assert_matches(image, params, kw, tile, **extra):
  (v0, p0), g0 = reference(image, params, **kw)
  v1, p1, g1 = tiled.tiled_value_and_grad(image, params, tile=tile, **kw, **extra)
  np.testing.assert_allclose(v1, v0, rtol=RTOL)
  for k in p0:
    np.testing.assert_allclose(p1[k], p0[k], rtol=RTOL, err_msg=k)
  assert g1.shape == g0.shape
  err = float(jnp.max(jnp.abs(g1 - g0)) / jnp.max(jnp.abs(g0)))
  assert err <= RTOL, err
  return err


# Between them, every value of every LossSpec field, the three poolings and both convolution
# algorithms; masks, regions and pool gains on the deep and the shallow net.
CASES = {
  "deep-max-direct-sums": dict(
    layers=DEEP,
    spec=losses.LossSpec("none", "sum", "sum", "chw", "l1", "sum"),
    pooling="max",
    conv="direct",
    tile=24,
    hw=(37, 210),  # wide enough for windows of 192 columns (core 32 + 2 x 80) not to span it
  ),
  "deep-avg-winograd-regions-mask-gains": dict(
    layers=DEEP,
    spec=losses.LossSpec("chw", "half_sum", "mean", "none", "l2", "mean"),
    pooling="avg",
    conv="winograd",
    tile=(20, 40),
    regions=True,
    mask=True,
    gains=True,
  ),
  "shallow-avg-direct-regions-mask-gains": dict(
    layers=SHALLOW,
    spec=losses.LossSpec("hw", "mean", "half_sum", "chw", "l2", "sum"),
    pooling="avg",
    conv="direct",
    tile=(8, 12),
    hw=(45, 31),
    regions=True,
    mask=True,
    gains=True,
  ),
  "deep-maxblur-direct-odd": dict(
    layers=DEEP,
    spec=losses.LossSpec("hw", "mean", "sum", "none", "l2", "sum"),
    pooling="maxblur",
    conv="direct",
    tile=16,
    hw=(41, 250),  # odd sides: the rows max pooling drops enter maxblur's last outputs, in windows too
    gains=True,
  ),
  "shallow-max-winograd-wide-halo": dict(
    layers=SHALLOW,
    spec=losses.LossSpec("hw", "sum", "sum", "none", "l1", "mean"),
    pooling="max",
    conv="winograd",
    tile=12,
    halo=16,  # wider than the 12 needed: changes nothing
  ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_tiled_equals_whole_image(tiny_params, case):
  c = dict(CASES[case])
  params = vgg.prepare(tiny_params, c.pop("conv"), min_width=4)
  tile, halo = c.pop("tile"), c.pop("halo", None)
  image, kw = setup(params, c.pop("layers"), hw=c.pop("hw", (37, 53)), **c)
  plan = tiled.tile_plan(*image.shape[:2], tile, kw["layers"], halo=halo)
  assert plan.grid[0] > 1 and plan.grid[1] > 1
  assert_matches(image, params, kw, tile, halo=halo)


def test_tile_plan():
  plan = tiled.tile_plan(37, 210, 24, ["relu4_2", "block1_conv1", "relu5_1"])
  assert (plan.stride, plan.halo, plan.core, plan.grid) == (16, 80, (32, 32), (2, 7))
  assert plan.window == (64, 192)  # 32 + 2 x 80 columns; two cores span all rows
  assert plan.origins[:3] == ((0, 0), (0, 32), (0, 64)) and plan.origins[-1] == (32, 192)
  # windows start a halo before their cores, moved into [0, 7 x 32 - 192]
  assert [s[1] for s in plan.starts[:7]] == [0, 0, 0, 16, 32, 32, 32] and {s[0] for s in plan.starts} == {0}
  layers = ("relu1_1", "relu4_2", "relu5_1")
  assert {n: vgg.layer_shape(n, (37, 210)) for n in layers} == {
    "relu1_1": (37, 210),
    "relu4_2": (4, 26),
    "relu5_1": (2, 13),
  }
  assert {n: vgg.layer_stride(n) for n in layers} == {"relu1_1": 1, "relu4_2": 8, "relu5_1": 16}
  assert vgg.halo(["relu4_2"]) == 40 and vgg.halo(["conv1_1"]) == 1 and vgg.halo(["pool5"]) == 128
  # a core never exceeds the image (rounded up to the stride); non-square tiles
  one = tiled.tile_plan(37, 53, 1000, ["relu3_1"])
  assert one.core == one.window == (40, 56) and one.starts == ((0, 0),)  # one tile: no halo
  assert tiled.tile_plan(37, 53, (8, 20), ["relu3_1"]).core == (8, 20)
  assert tiled.tile_plan(37, 53, 24, ["relu2_1"], halo=10).halo == 10
  for bad in (2, 7):  # below the minimum (6), not a multiple of the stride (2)
    with pytest.raises(ValueError, match="halo"):
      tiled.tile_plan(37, 53, 24, ["relu2_1"], halo=bad)
  with pytest.raises(ValueError, match="tile"):
    tiled.tile_plan(37, 53, 0, ["relu2_1"])


@pytest.mark.slow
def test_a_narrower_halo_is_wrong(tiny_params, monkeypatch):
  """One stride less than the minimum halo changes the result on these images, so the
  tests do see the windows' edges."""
  c = CASES["shallow-avg-direct-regions-mask-gains"]
  image, kw = setup(
    tiny_params, SHALLOW, hw=c["hw"], spec=c["spec"], pooling="avg", regions=True, mask=True, gains=True
  )
  monkeypatch.setattr(vgg, "halo", lambda layers, pooling="max": 0)
  with pytest.raises(AssertionError):
    assert_matches(image, tiny_params, kw, 8, halo=8)


def test_bad_arguments(tiny_params):
  image = jnp.zeros((20, 24, 3))
  weights = losses.LossWeights(1.0, 1.0, 1.0, {"relu2_1": 1.0}, {"relu1_1": 1.0})
  kw = dict(content_targets={}, style_grams={}, weights=weights, spec=losses.LossSpec(), pooling="max", tile=8)
  with pytest.raises(ValueError, match="mask and anchor"):
    tiled.tiled_value_and_grad(image, tiny_params, layers=("relu2_1", "relu1_1"), mask=jnp.ones((20, 24, 1)), **kw)
  with pytest.raises(ValueError, match="not in layers"):
    tiled.tiled_value_and_grad(image, tiny_params, layers=("relu1_1",), **kw)
  with pytest.raises(ValueError, match="gram_norm"):
    kw["spec"] = losses.LossSpec(gram_norm="cc")
    tiled.tiled_value_and_grad(image, tiny_params, layers=("relu2_1", "relu1_1"), **kw)


@pytest.mark.slow
def test_outer_jit_and_memory_flat_in_image_size(tiny_params):
  """Under an outer jit (static spec, layers, pooling, tile), temporary memory does not grow
  with the image: one tile's activations are live at a time and nothing image-sized is copied."""
  clayers, slayers = {"relu2_1": 1.0}, {"relu1_1": 1.0, "relu2_1": 1.0}
  layers = ("relu2_1", "relu1_1")
  f = jax.jit(tiled.tiled_value_and_grad, static_argnames=("spec", "layers", "pooling", "tile"))
  temps = []
  for n in (64, 128):
    image = jax.ShapeDtypeStruct((n, n, 3), jnp.float32)
    targets = {"relu2_1": jax.ShapeDtypeStruct((1, n // 2, n // 2, 8), jnp.float32)}
    grams = {k: jax.ShapeDtypeStruct((1, c, c), jnp.float32) for k, c in (("relu1_1", 4), ("relu2_1", 8))}
    weights = losses.LossWeights(1.0, 1.0, 1.0, clayers, slayers)
    kw = dict(content_targets=targets, style_grams=grams, weights=weights, spec=losses.LossSpec(), pooling="max")
    mem = f.lower(image, tiny_params, layers=layers, tile=16, **kw).compile().memory_analysis()
    if mem is None:
      pytest.skip("no memory analysis on this backend")
    temps.append(mem.temp_size_in_bytes)
  assert temps[1] <= 1.1 * temps[0], temps


@pytest.mark.real_weights
def test_real_weights(real_params):
  """The gatys layers on the real network (Winograd where wide enough), 64 x 288, tile 64:
  five windows of 64 x 224, the middle one away from both side edges."""
  params = vgg.prepare(real_params, "winograd", layers=DEEP[1])
  spec = losses.LossSpec("chw", "half_sum", "sum", "none", "l1", "sum")
  image, kw = setup(params, DEEP, hw=(64, 288), spec=spec, pooling="avg", mask=True)
  plan = tiled.tile_plan(64, 288, 64, kw["layers"])
  assert plan.window == (64, 224) and [s[1] for s in plan.starts] == [0, 0, 48, 96, 96]
  assert_matches(image, params, kw, 64)


@pytest.mark.slow
@pytest.mark.parametrize("pooling,conv,gains", [("max", "direct", False), ("avg", "winograd", True)])
def test_tiled_features_equal_whole_image(tiny_params, pooling, conv, gains):
  """Targets by tiles: activations (a conv layer before its ReLU, a pool, the deep content
  layer) and Gram matrices, every normalisation, on an odd-sized image."""
  params = vgg.prepare(tiny_params, conv, min_width=4)
  image = jnp.asarray(rng_image(4, 45, 203))
  g = jnp.asarray([1.3, 0.7, 1.1, 0.9, 1.2], jnp.float32) if gains else None
  layers, gram_layers = ("conv2_2", "pool2", "relu4_2"), ("relu1_1", "relu3_1", "relu5_1")
  want = vgg.extract_features(params, image[None], layers + gram_layers, pooling=pooling, pool_gains=g)
  for norm in losses.GRAM_NORMS:
    feats, grams = tiled.tiled_features(
      image, params, layers=layers, gram_layers=gram_layers, pooling=pooling, tile=24, gram_norm=norm, pool_gains=g
    )
    for n in layers:
      assert feats[n].shape == want[n].shape
      np.testing.assert_allclose(feats[n], want[n], rtol=RTOL, atol=RTOL * float(jnp.max(jnp.abs(want[n]))))
    for n in gram_layers:
      np.testing.assert_allclose(grams[n], losses.gram_matrix(want[n], normalize=norm), rtol=RTOL, err_msg=n)


@pytest.mark.slow
def test_targets_tiled_with_the_run_and_under_auto(tiny_params, monkeypatch):
  """compute_targets runs the VGG by tiles with --tile, and under auto only where the whole
  image does not fit."""
  content = rng_image(1, *HW)
  cfg = tiny()
  whole = targets_for(tiny_params, content, STYLES, cfg, per_style=True)
  calls = []
  real = tiled.tiled_features
  monkeypatch.setattr(tiled, "tiled_features", lambda *a, **kw: calls.append(kw["tile"]) or real(*a, **kw))
  by_tile = targets_for(tiny_params, content, STYLES, cfg.set(tile=24), per_style=True)
  auto = targets_for(tiny_params, content, STYLES, cfg.set(tile="auto"), per_style=True)
  assert calls == [24, 24, 24]  # the content and both styles, and nothing under auto
  monkeypatch.setattr(memory, "available_memory", lambda device: 1)
  monkeypatch.setattr(targets_module, "TARGET_TILE", 32)
  short = targets_for(tiny_params, content, STYLES, cfg.set(tile="auto"), per_style=True)
  assert calls == [24, 24, 24, 32, 32, 32]
  for t in (by_tile, auto, short):
    for a, b in zip(jax.tree.leaves(t), jax.tree.leaves(whole), strict=True):
      np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * float(jnp.max(jnp.abs(b))))


SHARDED = textwrap.dedent(
  """
  import pickle, sys
  import jax, numpy as np
  jax.config.update("jax_numpy_rank_promotion", "raise")
  from jaxstyle.objective import tiled
  from tests.test_tiled import CASES, setup
  assert jax.device_count() == 4, jax.devices()
  c = dict(CASES["shallow-avg-direct-regions-mask-gains"])
  params = pickle.loads(open(sys.argv[2], "rb").read())  # the parent's tiny_params
  del c["conv"]
  tile, layers = c.pop("tile"), c.pop("layers")
  image, kw = setup(params, layers, balance=False, **c)
  v, p, g = tiled.tiled_value_and_grad(image, params, tile=tile, devices=jax.devices(), **kw)
  np.savez(sys.argv[1], value=v, grad=g, **p)
  """
)


@pytest.mark.slow
def test_sharded_over_four_cpu_devices_equals_one(tiny_params, tmp_path):
  """18 tiles over 4 devices (two idle slots) in a subprocess, against one device here."""
  out, params = tmp_path / "sharded.npz", tmp_path / "params.pkl"
  params.write_bytes(pickle.dumps(jax.tree.map(np.asarray, tiny_params)))  # initializing again takes seconds
  r = processes.run_script(SHARDED, out, params, devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  c = dict(CASES["shallow-avg-direct-regions-mask-gains"])
  del c["conv"]
  tile, layers = c.pop("tile"), c.pop("layers")
  image, kw = setup(tiny_params, layers, balance=False, **c)
  assert len(tiled.tile_plan(*image.shape[:2], tile, kw["layers"]).origins) % 4 == 2
  v, p, g = tiled.tiled_value_and_grad(image, tiny_params, tile=tile, **kw)
  sharded = np.load(out)
  # the same tiles summed in another order
  np.testing.assert_allclose(sharded["value"], v, rtol=1e-5)
  for k in p:
    np.testing.assert_allclose(sharded[k], p[k], rtol=1e-5, err_msg=k)
  assert np.max(np.abs(sharded["grad"] - g)) <= 1e-5 * np.max(np.abs(g))


# --------------------------------------------------------------------------- through the product

# Odd sides and a tile (24, cores of 32) that divides neither; 203 columns leave windows of
# 192 (32 + 2 x 80) narrower than the image, so halos are exercised on the gatys layers.
HW = (45, 203)
STYLES = [rng_image(2, 29, 34), rng_image(3, 40, 31)]
# A shallower objective (stride 4, halo 12) where compile time matters: tile 17 (cores of 20).
NEAR = dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu2_2",))
HW_NEAR = (37, 61)


def _regions_and_mask(h, w):
  y = np.linspace(0, 1, w, dtype=np.float32)[None, :] * np.ones((h, 1), np.float32)
  mask = np.zeros((h, w), np.float32)
  mask[h // 4 :, : 3 * w // 4] = 1.0
  mask[h // 4, :] = 0.5
  return [y, 1 - y], mask


@pytest.mark.slow
def test_objective_value_and_gradient_tiled_equal_whole(tiny_params):
  """objective(), value_and_grad_fn and jax.value_and_grad of the tiled objective (its
  custom VJP, what optax's zoom search takes) against the whole image's, with regions and
  a mask; a part's gradient is refused rather than wrong."""
  regions, mask = _regions_and_mask(*HW_NEAR)
  content = rng_image(1, *HW_NEAR)
  cfg = tiny(tv_weight=1e3, **NEAR)
  targets = targets_for(tiny_params, content, STYLES, cfg, per_style=True)
  targets = targets._replace(
    regions=jnp.asarray(np.stack(regions)), mask=jnp.asarray(mask[..., None]), anchor=jnp.asarray(content)
  )
  whole, tiles = Static.from_config(cfg), Static.from_config(cfg.set(tile=17))
  assert (whole.tile, tiles.tile, Static.from_config(cfg.set(tile="auto")).tile) == (None, 17, None)
  args = (tiny_params, targets, cfg.loss.weights())
  x = jnp.asarray(rng_image(5, *HW_NEAR))
  v0, g0 = jax.jit(objective.value_and_grad_fn(*args, form=whole.form))(x)
  vjp = jax.value_and_grad(objective.value_fn(*args, form=tiles.form, tiling=tiles.tiling))
  for f in (
    objective.value_and_grad_fn(*args, form=tiles.form, tiling=tiles.tiling),
    vjp,
  ):  # not jitted: both run the one tiled executable
    v1, g1 = f(x)
    np.testing.assert_allclose(v1, v0, rtol=RTOL)
    assert float(jnp.max(jnp.abs(g1 - g0)) / jnp.max(jnp.abs(g0))) <= RTOL
  (_, p0), (_, p1) = (objective.objective(x, *args, form=s.form, tiling=s.tiling) for s in (whole, tiles))
  for k in p0:
    np.testing.assert_allclose(p1[k], p0[k], rtol=RTOL, err_msg=k)
  with pytest.raises(NotImplementedError, match="total only"):
    jax.grad(lambda x: objective.objective(x, *args, form=tiles.form, tiling=tiles.tiling)[1]["style"])(x)


@pytest.mark.slow
def test_adam_run_tiled_equals_untiled_with_mask_and_regions(tiny_params):
  """Six Adam steps through stylize, tiled and not, on the gatys layers: the same losses and
  image; the tiles report their progress only when asked."""
  regions, mask = _regions_and_mask(*HW)
  content = rng_image(1, *HW)
  cfg = tiny(kind="adam", learning_rate=0.05, steps=6, report_every=3, tv_weight=1e2)
  run = lambda c, **kw: js.stylize(content, STYLES, c, params=tiny_params, mask=mask, regions=regions, **kw)  # noqa: E731
  seen = []
  whole, tiles = run(cfg, tile_callback=seen.append), run(cfg.set(tile=24), tile_callback=seen.append)
  n = len(tiled.tile_plan(*HW, 24, cfg.layers).origins)
  assert [s["tile"] for s in whole.scales + tiles.scales] == [None, 24]
  # every pass ends with a report: per step a value and a gradient pass, and one value pass per chunk
  ends = [s.phase for s in seen if s.done == s.total]
  assert {s.total for s in seen} == {n} and ends.count("gradient") == 6 and ends.count("value") == 6 + 2
  np.testing.assert_allclose(tiles.history["total"], whole.history["total"], rtol=1e-4)
  for k in ("content", "style", "tv", "total"):
    np.testing.assert_allclose(tiles.losses[k], whole.losses[k], atol=1e-4 * whole.losses["total"], err_msg=k)
  # Adam divides by |gradient|, so a value whose gradient is within rounding of zero may step
  # either way: about 0.1% of them differ by more than 1e-3 here (as between Winograd and
  # direct convolutions of the whole image); the rest agree to rounding.
  d = np.abs(np.asarray(tiles.image) - np.asarray(whole.image))
  assert d.mean() < 5e-5 and np.mean(d > 1e-3) < 5e-3, (d.mean(), np.mean(d > 1e-3))
  assert float(jnp.max(jnp.abs(tiles.image - jnp.asarray(content)) * (mask[..., None] == 0))) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize(
  "changes", [dict(kind="lbfgs", clip=True), dict(kind="lbfgs", line_search="zoom")], ids=["backtracking-clip", "zoom"]
)
def test_lbfgs_tiled_equals_untiled(tiny_params, changes):
  """Both line searches get the tiled value and gradient (backtracking through
  value_and_grad_fn, optax's zoom through the objective's VJP)."""
  content = rng_image(1, *HW_NEAR)
  cfg = tiny(steps=3, report_every=3, **NEAR, **changes)
  whole = js.stylize(content, STYLES[0], cfg, params=tiny_params)
  tiles = js.stylize(content, STYLES[0], cfg.set(tile=17), params=tiny_params)
  np.testing.assert_allclose(tiles.history["total"], whole.history["total"], rtol=1e-4)
  np.testing.assert_allclose(tiles.image, whole.image, atol=1e-4)


def test_tile_setting_flag_and_record():
  parse = lambda *a: cli.config_from_args(cli.build_parser().parse_args(["stylize", "c", "s", "-o", "o", *a]))  # noqa: E731
  assert parse().network.tile is None
  assert parse("--tile", "256").network.tile == 256
  assert parse("--tile", "auto").network.tile == "auto" and parse("--tile", "none").network.tile is None
  for value in (None, "auto", 192):
    want = presets.gatys(tile=value)
    assert "--tile" in fields.to_flags(want)
    assert config.StyleConfig.from_dict(json.loads(json.dumps(want.to_dict()))) == want
    command = cli.stylize_command("/c.png", ["/s.png"], "/o.png", want, None)
    assert cli.config_from_args(cli.build_parser().parse_args(shlex.split(command)[1:])) == want
  for bad in (0, -3, "big", 2.5, True):
    with pytest.raises(ValueError, match="tile must be"):
      presets.gatys(tile=bad)
  with pytest.raises(cli.CliError, match="--tile: expected a tile side in px, auto or none, got 'big'"):
    parse("--tile", "big")


@pytest.mark.slow
def test_cli_tiled_checkpoint_resume_and_record(files, capsys):
  """--tile through the CLI: a run checkpointed at step 3 and resumed equals the uninterrupted
  tiled run, and the sidecar records the tile and reproduces it."""
  c, s = files / "c.png", files / "s.png"
  base = ["stylize", c, s, "--size", "40", "--report-every", "3", "--tile", "16", "-q"]
  run = lambda *extra: cli.main([str(a) for a in [*base, *extra]])  # noqa: E731
  assert run("-o", files / "full.png", "--steps", "6") == 0
  assert run("-o", files / "half.png", "--steps", "3", "--checkpoint", files / "ck") == 0
  assert run("-o", files / "resumed.png", "--steps", "6", "--resume", files / "ck") == 0
  np.testing.assert_array_equal(images.load_image(files / "resumed.png"), images.load_image(files / "full.png"))
  rec = json.loads((files / "full.json").read_text())
  assert rec["settings"]["network"]["tile"] == 16 and [s["tile"] for s in rec["scales"]] == [16]
  assert "--tile 16" in rec["reproduce"]
  assert run("-o", files / "x.png", "--steps", "6", "--resume", files / "ck", "--tile", "none") == 2
  assert "network.tile differ" in capsys.readouterr().err


def test_cli_prints_progress_within_a_tiled_step(files, capsys):
  """Without a terminal, one line per pass of each tiled evaluation (tiles done / total)."""
  out = files / "o.png"
  args = ["stylize", files / "c.png", files / "s.png", "-o", out, "--size", "40", "--steps", "4", "--tile", "16"]
  assert cli.main([str(a) for a in [*args, "--report-every", "2"]]) == 0
  lines = [ln for ln in capsys.readouterr().err.splitlines() if " pass: tile " in ln]
  assert lines[0].startswith("0/4 steps done; value pass: tile "), lines
  ends = [tuple(map(int, ln.rsplit(" ", 1)[1].split("/"))) for ln in lines]
  assert max(ends) == ends[-1] and ends[-1][0] == ends[-1][1] >= 4  # every pass reports its last tile (40 px / 16)
  assert any(ln.startswith("0/4 steps done; gradient pass") for ln in lines)
  assert any(ln.startswith("2/4 steps done; value pass") for ln in lines)  # after the first chunk's report
  assert cli.main([str(a) for a in [*args, "-q"]]) == 0
  assert " pass: tile " not in capsys.readouterr().err


@pytest.mark.slow
def test_sigint_stops_a_tiled_run_at_a_chunk_boundary(files):
  out, ckpt = files / "out.png", files / "ckpt"
  cmd = processes.jaxstyle_command("stylize", files / "c.png", files / "s.png", "-o", out, "--size", "40")
  cmd += ["--steps", "100000", "--report-every", "1", "--tile", "16", "--checkpoint", str(ckpt)]
  run = processes.Lines(cmd)
  try:
    run.wait_for(r"^step 2/100000 ")  # a report, so a checkpoint, is written after each step
    run.proc.send_signal(signal.SIGINT)
    code, err = run.finish()
  finally:
    if run.proc.poll() is None:
      run.proc.kill()
  assert code == 130 and "SIGINT at step" in err.splitlines()[-1] and "Traceback" not in err, err
  rec = json.loads(out.with_suffix(".json").read_text())
  assert rec["status"] == "interrupted" and 1 <= rec["steps_done"] < 100000
  resume = load_checkpoint(ckpt, presets.get(presets.DEFAULT, size=40, steps=100000, report_every=1, tile=16))
  assert resume.step >= 1


SPREAD = textwrap.dedent(
  """
  import pickle, sys
  import jax, numpy as np
  jax.config.update("jax_numpy_rank_promotion", "raise")
  from jaxstyle.optim import loop as optimize
  from tests.test_tiled import spread_problem
  assert jax.local_device_count() == 4, jax.devices()
  params = pickle.loads(open(sys.argv[2], "rb").read())
  x0, targets, cfg = spread_problem(params)
  seen = []
  run = optimize.optimize(x0, params, targets, cfg.loss.weights(), cfg, tile_callback=seen.append)
  assert len(run.image.sharding.device_set) == 4, run.image.sharding  # replicated over the 4 devices
  # 6 tiles in 8 slots, two per device; every pass's end is reported (init, 3 steps' line searches, 1 evaluation)
  ends = [t.phase for t in seen if t.done == t.total]
  assert {t.total for t in seen} == {8} and ends.count("gradient") >= 4 and ends.count("value") >= 5, seen
  np.savez(sys.argv[1], image=run.image, total=run.history["total"], tile=run.tile)
  """
)


def spread_problem(params):
  """Three L-BFGS steps on a tiled image (6 tiles: two of 8 slots idle on 4 devices)."""
  cfg = tiny(steps=3, report_every=3, tile=24, **NEAR)
  content = rng_image(1, *HW_NEAR)
  return jnp.asarray(content), targets_for(params, content, STYLES[0], cfg), cfg


@pytest.mark.slow
def test_optimize_spreads_tiles_over_local_devices(tiny_params, tmp_path):
  """With four (forced host) devices a tiled single image runs its tiles on all of them (and
  reports them) and takes the same steps as on one."""
  out, params = tmp_path / "spread.npz", tmp_path / "params.pkl"
  params.write_bytes(pickle.dumps(jax.tree.map(np.asarray, tiny_params)))
  r = processes.run_script(SPREAD, out, params, devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  x0, targets, cfg = spread_problem(tiny_params)
  assert len(tiled.tile_plan(*HW_NEAR, 24, cfg.layers).origins) == 6
  one = optimize.optimize(x0, tiny_params, targets, cfg.loss.weights(), cfg)
  spread = np.load(out)
  assert int(spread["tile"]) == one.tile == 24
  np.testing.assert_allclose(spread["total"], one.history["total"], rtol=1e-5)
  np.testing.assert_allclose(spread["image"], one.image, atol=1e-5)


MULTIHOST = textwrap.dedent(
  """
  from jaxstyle.objective import tiled
  from tests.test_tiled import CASES, setup
  c = dict(CASES["shallow-avg-direct-regions-mask-gains"])
  del c["conv"]
  tile, layers = c.pop("tile"), c.pop("layers")
  image, kw = setup(params, layers, balance=False, **c)
  # every process passes the same (host-local, replicated) inputs; the mesh spans both
  v, p, g = tiled.tiled_value_and_grad(image, params, tile=tile, devices=jax.devices(), **kw)
  local = lambda a: np.asarray(a.addressable_data(0))
  np.savez(out, value=local(v), grad=local(g), devices=[d.process_index for d in g.sharding.device_set],
           **{k: local(x) for k, x in p.items()})
  """
)


@pytest.mark.slow
def test_two_processes_equal_one(tiny_params, tmp_path):
  """Two processes on 127.0.0.1 (jax.distributed, two host devices each, gloo collectives)
  split the 18 tiles over four devices in two processes; each gets the one-process value
  and gradient."""
  outs = run_two_processes(MULTIHOST, tiny_params, tmp_path)
  c = dict(CASES["shallow-avg-direct-regions-mask-gains"])
  del c["conv"]
  tile, layers = c.pop("tile"), c.pop("layers")
  image, kw = setup(tiny_params, layers, balance=False, **c)
  v, p, g = tiled.tiled_value_and_grad(image, tiny_params, tile=tile, **kw)
  for i in range(2):
    got = np.load(outs[i])
    assert sorted(got["devices"]) == [0, 0, 1, 1]  # the gradient's sharding spans both processes
    np.testing.assert_allclose(got["value"], v, rtol=1e-5)
    for k in p:
      np.testing.assert_allclose(got[k], p[k], rtol=1e-5, err_msg=k)
    assert np.max(np.abs(got["grad"] - g)) <= 1e-5 * np.max(np.abs(g))


@pytest.mark.real_weights
def test_real_weights_cli_adam_tiled_equals_untiled(real_params, shared_images, tmp_path, monkeypatch):
  """The CLI at 128 px, 10 Adam steps, whole image against --tile 64 (four tiles): the 8-bit
  outputs agree within 2/255 (512 px with --tile 192 takes about 110 s here, 30 s untiled).

  Direct convolutions in both: Winograd's own rounding, on the tiles' other grid, moves a
  few of Adam's near-zero-gradient values by up to 8/255 at 128 px, exactly as much as
  whole-image Winograd against whole-image direct does.
  """
  from jaxstyle.io import vgg_weights as weights

  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(weights.default_path()))
  c, s = shared_images / "golden_gate.jpg", shared_images / "starry_night.jpg"
  base = ["stylize", c, s, "--size", "128", "--optimizer", "adam", "--steps", "10", "--conv", "direct", "-q"]
  for tile in ("none", "64"):
    assert cli.main([str(a) for a in [*base, "-o", tmp_path / f"{tile}.png", "--tile", tile]]) == 0
  whole, tiles = images.load_image(tmp_path / "none.png"), images.load_image(tmp_path / "64.png")
  assert whole.shape == (96, 128, 3)
  assert np.max(np.abs(tiles - whole)) <= 2 / 255 + 1e-6
  rec = json.loads((tmp_path / "64.json").read_text())
  assert [s["tile"] for s in rec["scales"]] == [64]


def test_print_size_normalisers_pass_int32():
  """At 8192 x 6144, C*H*W of relu1_1 is 3.2e9: the loss from the tiles' sums normalises
  with Python floats, not int32 (that raised OverflowError)."""
  h, w, c = 8192, 6144, 64
  sums = {"content": {}, "style": {"relu1_1": jnp.full((c, c), 3.0e9)}, "tv": {"h": 1.0e6, "w": 2.0e6}}
  weights = losses.LossWeights(1.0, 1.0, 1.0, {}, {"relu1_1": 1.0})
  spec = losses.LossSpec("chw", "sum", "sum", "chw", "l1", "mean")
  f = jax.jit(
    functools.partial(
      tiled._loss_from_sums, spec=spec, hw=(h, w), sizes={"relu1_1": (h, w, c)}, guided=False, areas=None
    )
  )
  total, parts = f(sums, weights, {"relu1_1": jnp.zeros((1, c, c))})
  z = float(c * h * w)
  np.testing.assert_allclose(parts["style"], c * c * (3.0e9 / z) ** 2 / z, rtol=1e-5)
  np.testing.assert_allclose(parts["tv"], 1.0e6 / ((h - 1) * w * 3) + 2.0e6 / (h * (w - 1) * 3), rtol=1e-5)
