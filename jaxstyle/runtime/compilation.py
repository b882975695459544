"""Compiling once: ahead-of-time executables kept per shapes and settings, and the on-disk cache."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxstyle.io.files import cache_dir

_CACHE: dict[Any, Any] = {}


def signature(args) -> tuple:
  """What an executable depends on in ``args``: the tree, each leaf's shape, dtype and sharding."""
  leaves, tree = jax.tree.flatten(args)
  return tree, tuple((np.shape(x), getattr(x, "dtype", type(x)), getattr(x, "sharding", None)) for x in leaves)


def compiled(
  name: str,
  fn: Callable,
  args: tuple,
  *,
  static: Any,
  in_axes: tuple | None = None,
  donate: tuple[int, ...] = (),
  out_sharding=None,
) -> tuple[Callable, float]:
  """Ahead-of-time compiles ``fn(*args, static=static)``, vmapped over ``in_axes`` when given; returns the
  executable and the seconds spent.

  ``out_sharding`` pins every output (all carry the batch axis when vmapped), or each output (a pytree of
  shardings), so that a chunk's outputs can be fed straight back in. Executables are kept per name, shapes,
  shardings and static settings, so a second run of the same kind compiles nothing (and reports 0 s).
  """
  pins, pins_tree = jax.tree.flatten(out_sharding)  # one sharding, or one per output
  key = (name, static, in_axes, tuple(pins), pins_tree, signature(args))
  if key in _CACHE:
    return _CACHE[key], 0.0
  f = lambda *a: fn(*a, static=static)  # noqa: E731
  if in_axes is not None:
    f = jax.vmap(f, in_axes=in_axes)
  t0 = time.perf_counter()
  exe = jax.jit(f, donate_argnums=donate, out_shardings=out_sharding).lower(*args).compile()
  _CACHE[key] = exe
  return exe, time.perf_counter() - t0


def enable_disk_cache() -> str | None:
  """Keeps compiled programs on disk so a second run of the same shapes starts fast.

  ``$JAXSTYLE_COMPILATION_CACHE`` names the folder (default ``~/.cache/jaxstyle/xla``); an empty value turns
  the cache off. Programs that compile faster than ``$JAXSTYLE_COMPILATION_CACHE_MIN_S`` (0.2 s) are not
  worth a disk entry.
  """
  path = os.environ.get("JAXSTYLE_COMPILATION_CACHE", str(cache_dir() / "xla"))
  if not path:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update(
    "jax_persistent_cache_min_compile_time_secs", float(os.environ.get("JAXSTYLE_COMPILATION_CACHE_MIN_S", 0.2))
  )
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path
