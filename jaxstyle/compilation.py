"""Compiling once: ahead-of-time executables kept per shapes and settings, and the
up-front check that a compiled step fits in the device's memory."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxstyle.errors import ResourceError

_CACHE: dict[Any, Any] = {}


def _signature(args) -> tuple:
  leaves, tree = jax.tree.flatten(args)
  return tree, tuple((np.shape(x), getattr(x, "dtype", type(x)), getattr(x, "sharding", None)) for x in leaves)


def compiled(
  name: str, fn: Callable, args: tuple, *, static: Any, batched: bool, donate=(), out_sharding=None
) -> tuple[Callable, float]:
  """Ahead-of-time compiles ``fn(*args, static=static)``, vmapped over ``BATCH_AXES[name]``
  when ``batched``; returns the executable and the seconds spent.

  ``out_sharding`` pins every output (all carry the batch axis when batched) so that a
  chunk's outputs can be fed straight back in. Executables are kept per shapes,
  shardings and static settings, so a second run of the same kind compiles nothing.
  """
  key = (name, static, batched, out_sharding, _signature(args))
  if key in _CACHE:
    return _CACHE[key], 0.0
  f = lambda *a: fn(*a, static=static)  # noqa: E731
  if batched:
    f = jax.vmap(f, in_axes=BATCH_AXES[name])
  t0 = time.perf_counter()
  exe = jax.jit(f, donate_argnums=donate, out_shardings=out_sharding).lower(*args).compile()
  _CACHE[key] = exe
  return exe, time.perf_counter() - t0


def memory_need(stats) -> int:
  """Bytes a compiled executable holds while it runs: arguments, outputs and temporaries,
  counting once the outputs that reuse donated arguments' buffers."""
  return int(
    stats.temp_size_in_bytes
    + stats.argument_size_in_bytes
    + stats.output_size_in_bytes
    - getattr(stats, "alias_size_in_bytes", 0)
  )


def available_memory(device: jax.Device) -> int | None:
  """Free bytes on ``device``: the allocator's limit on accelerators, free RAM on CPU."""
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:  # MemAvailable counts reclaimable cache, unlike sysconf's free pages
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return None


def check_memory(executable, image_shape: tuple[int, ...], *, available: int | None = None) -> None:
  """Refuses up front a compiled step whose buffers exceed free device memory.

  Activation memory grows with the pixel count, so the largest longest side that fits
  is estimated as ``side * sqrt(free / need)``.
  """
  try:
    m = executable.memory_analysis()
    need = memory_need(m)
  except Exception:  # noqa: BLE001 - not every backend reports it
    return
  if available is None:
    devices = executable.input_shardings[0][0].device_set if executable.input_shardings else None
    available = available_memory(next(iter(devices)) if devices else jax.devices()[0])
  if available is None or need <= available:
    return
  h, w = image_shape[-3], image_shape[-2]
  side = int(max(h, w) * math.sqrt(available / need) * 0.95)
  raise ResourceError(
    f"a {w}x{h} px run needs about {need / 2**30:.1f} GiB but {available / 2**30:.1f} GiB is free; "
    f"the largest size that fits is about {side} px (--size {side})"
  )


# Which arguments carry the sweep axis: images, optimizer states and loss weights do;
# VGG params, targets and the step count are shared.
BATCH_AXES = {
  "init": (0, None, None, 0),
  "chunk": (0, 0, None, None, None, 0),
}
