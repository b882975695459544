"""Compiled-once executables and the up-front memory check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import cli, compilation
from tests.conftest import CONTENT, STYLE, tiny


def test_memory_need_counts_donated_buffers_once():
  from jaxstyle.compilation import memory_need

  x = jnp.ones((100, 100), jnp.float32)
  donated = jax.jit(lambda x: x * 2, donate_argnums=0).lower(x).compile().memory_analysis()
  kept = jax.jit(lambda x: x * 2).lower(x).compile().memory_analysis()
  assert memory_need(donated) == 40_000 and memory_need(kept) == 80_000


def test_memory_is_checked_up_front(tiny_params, monkeypatch, files, capsys):
  monkeypatch.setattr(compilation, "available_memory", lambda device: 200_000)
  with pytest.raises(compilation.ResourceError, match=r"largest size that fits is about \d+ px"):
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
  a, t0 = compilation.compiled("t", f, (jnp.ones(3),), static=2.0, batched=False)
  b, t1 = compilation.compiled("t", f, (jnp.zeros(3),), static=2.0, batched=False)
  c, _ = compilation.compiled("t", f, (jnp.ones(4),), static=2.0, batched=False)
  assert a is b and t1 == 0.0 and c is not a
  np.testing.assert_array_equal(a(jnp.ones(3)), 2 * np.ones(3))
