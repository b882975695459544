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

from jaxstyle.config import OptimizerSettings
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


def memory_fit(executable, *, available: int | None = None) -> tuple[int, int, int] | None:
  """``(need, temp, available)`` bytes of a compiled executable on its first device, or
  ``None`` where the backend reports no memory analysis or no free memory.

  ``temp`` is the part of ``need`` that is neither argument nor output: the activations.
  """
  try:
    m = executable.memory_analysis()
    need, temp = memory_need(m), int(m.temp_size_in_bytes)
  except Exception:  # noqa: BLE001 - not every backend reports it
    return None
  if available is None:
    shardings = jax.tree.leaves(executable.input_shardings[0]) if executable.input_shardings else []
    # only this process's devices report memory (a sweep's mesh may span several processes)
    devices = [d for d in shardings[0].device_set if d.process_index == jax.process_index()] if shardings else []
    available = available_memory(devices[0] if devices else jax.local_devices()[0])
  return None if available is None else (need, temp, available)


def check_memory(
  executable,
  image_shape: tuple[int, ...],
  *,
  available: int | None = None,
  optimizer: OptimizerSettings | None = None,
  suggest_tile: bool = False,
) -> None:
  """Refuses up front a compiled step whose buffers exceed free device memory, in one line
  that names what would fit.

  The optimizer's own state counts: each L-BFGS correction pair holds two images (its
  memory grows by exactly that per pair), and Adam's two moments take about what
  L-BFGS's value, gradient and line search take besides its pairs. Activation memory
  grows with the pixel count, so the largest longest side that fits is estimated as
  ``side * sqrt(free / need)``.

  Args:
    executable: a compiled chunk of steps.
    image_shape: ``(..., H, W, 3)``, the optimized variable (a sweep's batch included).
    available: free bytes (default: :func:`available_memory` of the executable's device).
    optimizer: the run's optimizer settings, to name a smaller L-BFGS memory or Adam.
    suggest_tile: name ``--tile auto`` when what remains without the activations fits (for
      an untiled objective).

  Raises:
    ResourceError: it does not fit.
  """
  fit = memory_fit(executable, available=available)
  if fit is None or fit[0] <= fit[2]:
    return
  need, temp, available = fit
  raise ResourceError(_what_fits(need, temp, available, image_shape, optimizer=optimizer, tile=suggest_tile))


def _size(n: float) -> str:
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= scale:
      return f"{n / scale:.1f} {unit}"
  return f"{int(n)} bytes"


def _what_fits(need, temp, available, image_shape, *, optimizer, tile) -> str:
  h, w = image_shape[-3], image_shape[-2]
  image = 4 * math.prod(image_shape)  # float32 bytes of the variable, every member of a sweep
  held, options = "", []
  if optimizer is not None and optimizer.kind == "lbfgs":
    pair = 2 * image + 4  # two images and a scalar
    pairs = optimizer.memory * pair
    rest = need - pairs
    held = f" ({optimizer.memory} L-BFGS pairs hold {_size(pairs)} of it)"
    memory = min(optimizer.memory - 1, (available - rest) // pair)
    if memory >= 1:
      options.append(f"--lbfgs-memory {memory}")
    if rest <= available:
      options.append("--optimizer adam")
  if tile and need - temp <= available:
    options.append("--tile auto")
  side = int(max(h, w) * math.sqrt(available / need) * 0.95)
  instead = f"{', '.join(options)}, or " if options else ""
  return (
    f"a {w}x{h} px run needs about {_size(need)} but {_size(available)} is free{held}; what fits: {instead}"
    f"the largest size that fits is about {side} px (--size {side})"
  )


# Tile sides a --tile auto run tries when the whole image does not fit, largest (least halo overhead) first:
# the objective's (jaxstyle.optimize) and the fast networks' (jaxstyle.fast_tiled).
AUTO_TILES = (2048, 1024, 512, 256, 128)

# Which arguments carry the sweep axis: images, optimizer states and loss weights do;
# VGG params, targets and the step count are shared.
BATCH_AXES = {
  "init": (0, None, None, 0),
  "chunk": (0, 0, None, None, None, 0),
}
