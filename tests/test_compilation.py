"""Compiled-once executables and the up-front memory check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import cli
from jaxstyle.errors import ResourceError
from jaxstyle.optim import loop
from jaxstyle.optim.step import Static
from jaxstyle.runtime import compilation, memory
from tests.conftest import CONTENT, STYLE, rng_image, targets_for, tiny


def test_memory_need_counts_donated_buffers_once():
  x = jnp.ones((100, 100), jnp.float32)
  donated = jax.jit(lambda x: x * 2, donate_argnums=0).lower(x).compile().memory_analysis()
  kept = jax.jit(lambda x: x * 2).lower(x).compile().memory_analysis()
  assert memory.memory_need(donated) == 40_000 and memory.memory_need(kept) == 80_000


@pytest.mark.slow
def test_memory_is_checked_up_front(tiny_params, monkeypatch, files, capsys):
  monkeypatch.setattr(memory, "available_memory", lambda device: 200_000)
  with pytest.raises(ResourceError, match=r"largest size that fits is about \d+ px"):
    js.stylize(CONTENT, STYLE, tiny(), params=tiny_params)
  code = cli.main(
    [
      str(a)
      for a in ["stylize", files / "c.png", files / "s.png", "-o", files / "o.png", "--size", "40", "--steps", "2"]
    ]
  )
  assert code == 2 and "--size" in capsys.readouterr().err and not (files / "o.png").exists()


def test_executables_are_kept_per_shapes_and_settings():
  f = lambda x, *, static: x * static  # noqa: E731
  a, t0 = compilation.compiled("t", f, (jnp.ones(3),), static=2.0)
  b, t1 = compilation.compiled("t", f, (jnp.zeros(3),), static=2.0)
  c, _ = compilation.compiled("t", f, (jnp.ones(4),), static=2.0)
  assert a is b and t1 == 0.0 and c is not a
  np.testing.assert_array_equal(a(jnp.ones(3)), 2 * np.ones(3))


def _need(config, params, content=CONTENT) -> tuple[int, int]:
  """Bytes the chunk of ``config`` needs and its activations' share, compiled from shapes."""
  targets = targets_for(params, content, STYLE, config)
  static = Static.from_config(config)
  args = (jnp.asarray(content), params, targets, config.loss.weights())
  exe, _ = loop._chunk_executable(static, args, batched=False, out_sharding=None)
  need, temp, _ = memory.memory_fit(exe, available=1)
  return need, temp


@pytest.mark.slow
def test_lbfgs_memory_counts_and_the_error_names_what_fits(tiny_params, monkeypatch):
  """Each L-BFGS pair holds two images; short of memory, the one-line error names the
  largest memory that fits (and it does), Adam, and a size."""
  image = 4 * CONTENT.size
  config = tiny(memory=50, steps=2)
  need, _ = _need(config, tiny_params)
  assert need - _need(config.set(memory=40), tiny_params)[0] == 10 * (2 * image + 4)  # and a scalar per pair
  free = need - 10 * (2 * image + 4) - image  # 39 pairs fit, not 40
  monkeypatch.setattr(memory, "available_memory", lambda device: free)
  with pytest.raises(ResourceError) as e:
    js.stylize(CONTENT, STYLE, config, params=tiny_params)
  msg = str(e.value)
  assert "\n" not in msg and "50 L-BFGS pairs hold" in msg and "--size" in msg, msg
  assert "--lbfgs-memory 39" in msg and "--optimizer adam" in msg, msg
  js.stylize(CONTENT, STYLE, config.set(memory=39), params=tiny_params)
  js.stylize(CONTENT, STYLE, config.set(kind="adam"), params=tiny_params)
  adam, temp = _need(config.set(kind="adam"), tiny_params)
  monkeypatch.setattr(memory, "available_memory", lambda device: adam - image)  # not even Adam
  with pytest.raises(ResourceError) as e:
    js.stylize(CONTENT, STYLE, config, params=tiny_params)
  msg = str(e.value)
  assert "--lbfgs-memory" not in msg and "--optimizer adam" not in msg and "--tile" not in msg, msg
  assert "largest size that fits" in msg
  monkeypatch.setattr(memory, "available_memory", lambda device: adam - temp // 2)  # a tile might
  with pytest.raises(ResourceError, match="what fits: --tile auto, or the largest size") as e:
    js.stylize(CONTENT, STYLE, config.set(kind="adam"), params=tiny_params)
  assert "L-BFGS" not in str(e.value)


@pytest.mark.slow
def test_tile_auto_tiles_only_what_does_not_fit(tiny_params, monkeypatch):
  """--tile auto keeps the whole image where it fits; where it does not, it takes the largest
  tile that fits (here 32 of 64 and 32 px) and the run equals the untiled one."""
  content = rng_image(3, 200, 232)
  config = tiny(kind="adam", steps=2, report_every=2)
  whole = js.stylize(content, STYLE, config, params=tiny_params)
  auto = js.stylize(content, STYLE, config.set(tile="auto"), params=tiny_params)
  assert [s["tile"] for s in auto.scales] == [None] and auto.timings["compile_s"] == 0.0  # the same executable
  need, _ = _need(config, tiny_params, content)
  tiles = {t: _need(config.set(tile=t), tiny_params, content)[0] for t in (64, 32)}
  assert tiles[32] < tiles[64] and tiles[32] < need, (tiles, need)
  free = (tiles[32] + min(need, tiles[64])) // 2
  monkeypatch.setattr(memory, "available_memory", lambda device: free)
  monkeypatch.setattr(memory, "AUTO_TILES", (64, 32))
  auto = js.stylize(content, STYLE, config.set(tile="auto"), params=tiny_params)
  assert [s["tile"] for s in auto.scales] == [32]
  np.testing.assert_allclose(auto.history["total"], whole.history["total"], rtol=1e-4)
  monkeypatch.setattr(memory, "available_memory", lambda device: tiles[32] // 2)
  with pytest.raises(ResourceError, match="largest size that fits") as e:
    js.stylize(content, STYLE, config.set(tile="auto"), params=tiny_params)
  assert "--tile" not in str(e.value)
