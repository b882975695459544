"""The one tile plan: how an image is cut into tiles whose windows carry a halo, for every tiled computation.

Both tiled paths use it: the objective's exact value and gradient (:mod:`jaxstyle.objective.tiled`, VGG19)
and the fast networks' exact stylization (:mod:`jaxstyle.fast.tiled`, Magenta's transformers). Each network
states its own halo (:func:`jaxstyle.nets.vgg.halo`, :func:`jaxstyle.nets.magenta.halo`) and stride; cores,
halo and window origins are multiples of that stride, so every window's layers are exact blocks of the whole
image's. A window is its core plus the halo on each side, moved inwards where it would pass the bound (an edge
of the image needs no halo), so its wrong edge values stay within the halo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class TilePlan(NamedTuple):
  """How an image is cut into tiles (input pixels, ``(rows, columns)``).

  Attributes:
    stride: the network's stride ``S``; cores, halo and origins are multiples of it.
    halo: the margin a window has around its core where it faces another tile.
    core: each tile's core size, the region whose results a tile contributes; the last row and column of cores
      may reach past the image (:meth:`boxes` clips them).
    window: what the network runs on: ``core + 2 * halo``, or the bound if smaller.
    grid: the number of tiles down and across.
    origins: each tile's core origin, row-major over ``grid``.
    starts: each tile's window origin: ``halo`` above and left of its core, moved into ``[0, bound - window]``.
  """

  stride: int
  halo: int
  core: tuple[int, int]
  window: tuple[int, int]
  grid: tuple[int, int]
  origins: tuple[tuple[int, int], ...]
  starts: tuple[tuple[int, int], ...]

  def boxes(self, hw: tuple[int, int]) -> tuple[tuple[int, int, int, int], ...]:
    """Each core as ``(top, left, bottom, right)``, clipped to an ``hw`` image."""
    return tuple((r, c, min(r + self.core[0], hw[0]), min(c + self.core[1], hw[1])) for r, c in self.origins)


def plan(
  hw: tuple[int, int],
  tile: int | Sequence[int],
  *,
  stride: int,
  halo: int,
  bound: tuple[int, int] | None = None,
) -> TilePlan:
  """Cuts an ``h x w`` image into tiles.

  Each core side is ``tile`` rounded up to a multiple of ``stride``, at most the image side rounded up
  likewise; cores tile the image from its top-left corner. A window is the core plus ``halo`` on each side, at
  most ``bound`` (default: the cores' whole span ``grid * core``, which windows then never pass; a network that
  pads the image itself passes the padded size), and starts a halo before its core, moved inwards where it
  would pass the bound.

  Args:
    hw: the image's ``(H, W)``.
    tile: core side in px, or ``(rows, columns)``.
    stride: the network's stride.
    halo: a non-negative multiple of ``stride``.
    bound: what windows must stay within.

  Raises:
    ValueError: a halo that is not a non-negative multiple of ``stride``, or a tile under one pixel.
  """
  if halo < 0 or halo % stride:
    raise ValueError(f"halo must be a non-negative multiple of {stride}, not {halo}")
  tiles = (tile, tile) if isinstance(tile, int) else tuple(tile)
  if len(tiles) != 2 or any(not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in tiles):
    raise ValueError(f"tile must be a positive number of px or a pair of them, not {tile!r}")

  def up(n: int) -> int:
    return -(-n // stride) * stride

  core = tuple(min(up(t), up(n)) for t, n in zip(tiles, hw, strict=True))
  grid = tuple(-(-n // c) for n, c in zip(hw, core, strict=True))
  bound = tuple(g * c for g, c in zip(grid, core, strict=True)) if bound is None else tuple(bound)
  window = tuple(min(c + 2 * halo, b) for c, b in zip(core, bound, strict=True))
  origins = tuple((i * core[0], j * core[1]) for i in range(grid[0]) for j in range(grid[1]))
  starts = tuple(tuple(min(max(o[k] - halo, 0), bound[k] - window[k]) for k in (0, 1)) for o in origins)
  return TilePlan(stride, halo, core, window, grid, origins, starts)
