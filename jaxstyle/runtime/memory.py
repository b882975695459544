"""Memory: what a compiled program needs, what is free, refusing up front what does not fit, and the one rule
that picks a tile when a whole image does not fit."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import jax

from jaxstyle.errors import ResourceError

# Tile sides that --tile auto tries when the whole image does not fit, largest (least halo overhead) first:
# the objective's (jaxstyle.optim) and the fast networks' (jaxstyle.fast.tiled).
AUTO_TILES = (2048, 1024, 512, 256, 128)


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
  lbfgs_pairs: int | None = None,
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
    lbfgs_pairs: the run's L-BFGS memory (``None`` for another optimizer), to name a smaller one or Adam.
    suggest_tile: name ``--tile auto`` when what remains without the activations fits (for
      an untiled objective).

  Raises:
    ResourceError: it does not fit.
  """
  fit = memory_fit(executable, available=available)
  if fit is None or fit[0] <= fit[2]:
    return
  need, temp, available = fit
  raise ResourceError(_what_fits(need, temp, available, image_shape, pairs=lbfgs_pairs, tile=suggest_tile))


def _size(n: float) -> str:
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
    if n >= scale:
      return f"{n / scale:.1f} {unit}"
  return f"{int(n)} bytes"


def _what_fits(need, temp, available, image_shape, *, pairs, tile) -> str:
  h, w = image_shape[-3], image_shape[-2]
  image = 4 * math.prod(image_shape)  # float32 bytes of the variable, every member of a sweep
  held, options = "", []
  if pairs is not None:
    pair = 2 * image + 4  # two images and a scalar
    held_bytes = pairs * pair
    rest = need - held_bytes
    held = f" ({pairs} L-BFGS pairs hold {_size(held_bytes)} of it)"
    memory = min(pairs - 1, (available - rest) // pair)
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


def auto_tiles(
  fit: tuple[int, int, int], hw: tuple[int, int], window: Callable[[int], tuple[int, int]], *, fixed: int
) -> list[int]:
  """The tiles of :data:`AUTO_TILES` worth compiling when the whole program does not fit, largest first.

  A tiled program is estimated to hold ``fixed`` bytes (what does not shrink with the tile: image-sized
  buffers) plus the whole program's temporaries scaled by the window's share of the pixels (activations grow
  with the pixel count). Those whose estimate fits in the free memory, else the smallest side: at least one.

  Args:
    fit: the whole program's :func:`memory_fit`, ``(need, temp, available)``.
    hw: the image's ``(H, W)``.
    window: a tile side to the ``(h, w)`` its windows have.
    fixed: the bytes that stay whatever the tile.
  """
  _, temp, available = fit
  h, w = hw
  sides = [t for t in AUTO_TILES if t < max(h, w)] or [AUTO_TILES[-1]]
  share = lambda t: min(1.0, math.prod(window(t)) / (h * w))  # noqa: E731
  return [t for t in sides if fixed + temp * share(t) <= available] or sides[-1:]
