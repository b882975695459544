"""Tiled fast stylization (jaxstyle.fast_tiled): tiles with whole-image statistics equal the whole-image network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.fast import stylize as fast
from jaxstyle.fast import tiled as fast_tiled
from jaxstyle.fast.stylize import Networks
from jaxstyle.io import images
from jaxstyle.nets import magenta
from jaxstyle.settings.fast import FastSettings
from tests.conftest import rng_image

TRANSFORMER = magenta.Transformer(contract=(3, 4, 6), expand=(4, 3), residual_blocks=2, style_dim=5)
MULTI = magenta.MultiStyle26(contract=(4, 4, 6), expand=(4, 3), residual_blocks=1, num_styles=4)
MULTI26 = magenta.MultiStyle26(contract=(4, 4, 6), expand=(4, 3), residual_blocks=1)  # for builtin styles
MODELS = {"transformer": TRANSFORMER, "multi": MULTI, "multi26": MULTI26}
RTOL = 1e-5  # max abs difference over max abs output


@pytest.fixture(scope="module")
def params():
  return {name: magenta.init_params(jax.random.key(k), model) for k, (name, model) in enumerate(MODELS.items())}


def inputs(model, hw, images_, conds, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(0, 1, (images_, *hw, 3)).astype(np.float32)
  dim = model.style_dim if isinstance(model, magenta.Transformer) else model.num_styles
  return x, rng.uniform(0, 1, (conds, dim)).astype(np.float32)


def rel(got, want):
  return float(np.abs(np.asarray(got) - want).max() / np.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize(
  "name,hw,tile,images_,conds,narrow",
  [
    ("transformer", (130, 110), 24, 1, 2, True),  # one image, two styles; 6 x 5 tiles
    ("multi", (99, 77), 28, 1, 2, True),
    ("multi", (45, 130), (16, 44), 2, 2, False),  # two images, two styles; rectangular tiles
  ],
)
def test_tiled_equals_the_whole_image(params, name, hw, tile, images_, conds, narrow):
  model, p = MODELS[name], params[name]
  x, c = inputs(model, hw, images_, conds)
  halo = magenta.halo(model)
  plan = fast_tiled.tile_plan(*hw, tile, halo=halo)
  padded = tuple(n + -n % 4 for n in hw)
  assert min(plan.grid) >= 2 and max(w < s for w, s in zip(plan.window, padded, strict=True))  # real halos
  got = fast_tiled.transfer_tiled(p, x, c, tile=tile)
  want = np.asarray(magenta.run(model, p, jnp.asarray(x), jnp.asarray(c)))  # the untiled network
  assert got.shape == want.shape == (conds, *hw, 3)
  assert rel(got, want) < RTOL, rel(got, want)
  if narrow:  # one stride less than the receptive field's radius is measurably wrong (these cut within it)
    wrong = fast_tiled.transfer_tiled(p, x, c, tile=tile, halo=halo - fast_tiled.STRIDE)
    assert rel(wrong, want) > 1e-3, rel(wrong, want)


def test_the_halo_of_the_real_networks():
  assert magenta.halo(magenta.Transformer()) == 56 and magenta.halo(magenta.MultiStyle26()) == 64
  assert magenta.halo(TRANSFORMER) == 32 and magenta.halo(MULTI) == 24


@pytest.mark.slow
def test_one_compilation_for_every_tile_and_pass(params):
  p = params["multi"]
  x, c = inputs(MULTI, (61, 58), 1, 1, seed=2)
  before = fast_tiled._run_tile._cache_size()
  fast_tiled.transfer_tiled(p, x, c, tile=12)  # 4 x 4 tiles, 6 passes (5 norms)
  assert fast_tiled._run_tile._cache_size() == before + 1
  x2, c2 = inputs(MULTI, (63, 57), 1, 1, seed=3)  # another image with windows of the same shape
  fast_tiled.transfer_tiled({"params": p}, x2, c2, tile=12)
  assert fast_tiled._run_tile._cache_size() == before + 1


@pytest.mark.parametrize("hw,tile,halo", [((101, 87), 20, 24), ((8, 200), 7, 12), ((37, 37), 64, 8)])
def test_tile_plan_cores_partition_the_padded_image(hw, tile, halo):
  plan = fast_tiled.tile_plan(*hw, tile, halo=halo)
  ph, pw = tuple(n + -n % 4 for n in hw)
  assert ph % 4 == pw % 4 == 0 and ph - 4 < hw[0] <= ph and pw - 4 < hw[1] <= pw
  cover = np.zeros((ph, pw), int)
  for (top, left, bottom, right), (r, c) in zip(plan.boxes((ph, pw)), plan.starts, strict=True):
    cover[top:bottom, left:right] += 1
    assert all(v % 4 == 0 for v in (top, left, bottom, right, r, c))
    assert 0 <= r and r + plan.window[0] <= ph and 0 <= c and c + plan.window[1] <= pw
    # the halo is there wherever the core faces another tile; a window edge short of it is the image's edge
    assert r <= top - halo or r == 0 and r + plan.window[0] >= min(bottom + halo, ph)
    assert c <= left - halo or c == 0 and c + plan.window[1] >= min(right + halo, pw)
  assert (cover == 1).all()


@pytest.mark.slow
def test_stylize_whole_tiled_and_auto(params):
  p = params["transformer"]
  x, c = inputs(TRANSFORMER, (40, 52), 1, 1, seed=4)
  want = np.asarray(magenta.run(TRANSFORMER, p, jnp.asarray(x), jnp.asarray(c)))
  for tile in (None, "auto", 16):  # auto: this fits, so the whole image
    assert rel(fast_tiled.stylize(p, x, c, tile=tile), want) < RTOL
  # too little memory for the whole image: the largest tile whose window's share fits
  assert fast_tiled._auto_tile((1000, 900, 10**9), (8192, 8192), 56) == 2048
  assert fast_tiled._auto_tile((1000, 900, 10), (8192, 8192), 56) == 512
  assert fast_tiled._auto_tile((1000, 900, 0), (8192, 8192), 56) == 128  # none fits: the smallest


@pytest.mark.slow
def test_stylize_fast_with_tiles_equals_without(params):
  nets = Networks(transformer=params["transformer"], multistyle=params["multi26"], vector=np.linspace(-1, 1, 5))
  photos = [rng_image(0, 50, 70)]
  for extra in ({}, {"builtin": ((1, 1.0), (3, 3.0))}):
    plain = fast.stylize_fast(photos, [], FastSettings(size=None, **extra), nets)
    tiled = fast.stylize_fast(photos, [], FastSettings(size=None, tile=20, **extra), nets)
    for a, b in zip(plain, tiled, strict=True):
      np.testing.assert_allclose(b, a, atol=1e-5)


def test_tile_setting_flag():
  assert FastSettings(tile="auto").tile == "auto"
  with pytest.raises(ValueError, match="tile must be"):
    FastSettings(tile=0)


# --------------------------------------------------------------------------- the real network, through the CLI


@pytest.mark.real_weights
def test_cli_fast_tiled_equals_untiled(real_fast, tmp_path):
  images.save_image(tmp_path / "c.png", rng_image(0, 150, 200))
  images.save_image(tmp_path / "s.png", rng_image(1, 64, 64))
  base = ["fast", tmp_path / "c.png", tmp_path / "s.png", "--size", "none", "-q", "-o"]
  assert cli.main([str(a) for a in [*base, tmp_path / "whole.png"]]) == 0
  assert cli.main([str(a) for a in [*base, tmp_path / "tiled.png", "--tile", "64"]]) == 0
  want, got = (images.load_image(tmp_path / n) for n in ("whole.png", "tiled.png"))
  assert got.shape == want.shape == (150, 200, 3)
  assert np.abs(got - want).max() <= 1 / 255 + 1e-6
  assert np.abs(want - images.load_image(tmp_path / "c.png")).mean() > 0.02  # a stylization, not the content
