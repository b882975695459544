"""Fast stylization of large images tile by tile, equal to the whole-image network.

Magenta's transformers (:mod:`jaxstyle.magenta`) are local except for their conditional instance norms
(CIN), whose statistics span the whole image. Given every CIN's whole-image mean and variance, the network is
a map with a finite receptive field, so a window of the image with a halo of at least that field's radius
(:func:`min_halo`) gives the whole image's output on its core. The statistics are sequential (CIN k's input
depends on the statistics of the CINs before it), so :func:`transfer_tiled` makes ``K + 1`` passes over the
tiles for ``K`` normalized layers:

1. pass ``k < K`` runs every tile's window with the known statistics of layers ``< k``, skipping the
   convolutions after layer ``k``, and returns the mean and centred sum of squares of layer ``k``'s input
   over the tile's core; the tiles' are combined in float64 on the host (Chan et al.'s parallel variance),
   which float32 sums of squares over a print-sized image would not survive;
2. the last pass runs everything and keeps each window's core.

Pass ``k`` costs the network up to layer ``k``: about ``K / 2 + 1`` whole-network evaluations in all, plus the
halos. Every tile of every pass calls the same compiled program (core, statistics and layer index are traced
arguments, see :class:`jaxstyle.magenta.TileRun`), and it sees one window: device memory is bounded by the
tile, while the image, the output and the statistics stay on the host.

Geometry, as in :mod:`jaxstyle.tiled`: the image is reflect-padded at the bottom and right to a multiple of 4
as the whole network pads it (:func:`~jaxstyle.magenta.pad_to_multiple`), and windows are cut from that. The
cores partition the padded image; cores and windows start on multiples of 4, the network's total stride, so
each layer of a window is an exact block of the same layer of the whole image. A window is its core plus the
halo on each side, moved inwards where it would pass the image's edge: there the window's own reflect padding
(and the phase form's edge padding) is the whole image's, while the wrong values that its other edges produce
stay within the halo.

:func:`stylize` picks between the whole image and tiles (``tile="auto"``: tiles only when the compiled
whole-image program would not fit in free memory).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle import compilation, magenta
from jaxstyle.compilation import AUTO_TILES

STRIDE = magenta.MULTIPLE  # two stride-2 convolutions: cores, windows and halos are multiples of it


def model_of(params: Mapping) -> nn.Module:
  """The :class:`~jaxstyle.magenta.Transformer` or :class:`~jaxstyle.magenta.MultiStyle26` whose shapes
  ``params`` has (a Transformer's CIN scales are Dense layers, MultiStyle26's are tables)."""
  if isinstance(params["expand1"]["norm"]["gamma"], Mapping):
    return magenta.transformer_of(params)
  return magenta.multistyle26_of(params)


def min_halo(model: magenta.Transformer | magenta.MultiStyle26) -> int:
  """The narrowest exact halo in input pixels: the receptive field's radius rounded up to the stride.

  ``c``, the number of wrong rows at a window's edge (its own padding there is not the image), grows by
  ``kernel // 2`` at each stride-1 convolution, becomes ``ceil((c + 1) / 2)`` at each stride-2 one (output
  ``i`` reads rows ``2i - 1 .. 2i + 1``) and ``2c + 1`` at each upsampling 3x3 one: 55 px for the arbitrary
  transformer (5 residual blocks), 63 for MultiStyle26 (6), so halos of 56 and 64.
  """
  c = 4  # contract1: 9x9
  c = -(-(c + 1) // 2)  # contract2: 3x3, stride 2
  c = -(-(c + 1) // 2)  # contract3: 3x3, stride 2
  c += 2 * model.residual_blocks  # two 3x3 per block; the skip adds nothing
  c = 2 * c + 1  # expand1: nearest x2, 3x3
  c = 2 * c + 1  # expand2: nearest x2, 3x3
  c += 4  # expand3: 9x9
  return -(-c // STRIDE) * STRIDE


class TilePlan(NamedTuple):
  """How an image is cut into tiles (input pixels, ``(rows, columns)``).

  Attributes:
    padded: the image's size reflect-padded to a multiple of 4, which the cores partition.
    halo: the margin a window has around its core where it faces another tile.
    core: each core's size, a multiple of 4; the last row and column of cores may be cut short by the image.
    window: what the network runs on: ``core + 2 * halo``, or the padded side if smaller.
    grid: the number of tiles down and across.
    cores: each tile's core ``(top, left, bottom, right)`` in the padded image, row-major over ``grid``.
    starts: each tile's window origin: ``halo`` above and left of its core, moved into
      ``[0, padded - window]``.
  """

  padded: tuple[int, int]
  halo: int
  core: tuple[int, int]
  window: tuple[int, int]
  grid: tuple[int, int]
  cores: tuple[tuple[int, int, int, int], ...]
  starts: tuple[tuple[int, int], ...]


def tile_plan(h: int, w: int, tile: int | Sequence[int], *, halo: int) -> TilePlan:
  """Cuts an ``h x w`` image into tiles for :func:`transfer_tiled`.

  Args:
    h: image height.
    w: image width.
    tile: the core side in px, or ``(rows, columns)``; rounded up to a multiple of 4, at most the padded side.
    halo: a multiple of 4 (:func:`min_halo`).

  Returns:
    The :class:`TilePlan`.
  """
  if halo % STRIDE or halo < 0:
    raise ValueError(f"halo must be a non-negative multiple of {STRIDE}, got {halo}")
  tiles = (tile, tile) if isinstance(tile, int) else tuple(tile)
  if len(tiles) != 2 or any(not isinstance(t, int) or isinstance(t, bool) or t < 1 for t in tiles):
    raise ValueError(f"tile must be a positive number of px or two, got {tile!r}")
  padded = (h + -h % STRIDE, w + -w % STRIDE)
  core = tuple(min(-(-t // STRIDE) * STRIDE, n) for t, n in zip(tiles, padded, strict=True))
  window = tuple(min(c + 2 * halo, n) for c, n in zip(core, padded, strict=True))
  grid = tuple(-(-n // c) for n, c in zip(padded, core, strict=True))
  axes = []
  for n, c, win, g in zip(padded, core, window, grid, strict=True):
    origins = [i * c for i in range(g)]
    axes.append([(o, min(o + c, n), min(max(o - halo, 0), n - win)) for o in origins])
  cores, starts = [], []
  for top, bottom, r in axes[0]:
    for left, right, c in axes[1]:
      cores.append((top, left, bottom, right))
      starts.append((r, c))
  return TilePlan(padded, halo, core, window, grid, tuple(cores), tuple(starts))


def _tile(model: nn.Module, params: Mapping, window: jax.Array, cond: jax.Array, core, moments, target):
  return model.apply({"params": params}, window, cond, tile=magenta.TileRun(core, moments, target))


# One program for every tile of every pass: the window's shape is the only static input besides the network.
_run_tile = jax.jit(_tile, static_argnums=0)


def _combine(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[jax.Array, jax.Array]:
  """The whole image's ``(mean, var)`` from the tiles' ``(count, mean, m2)``, in float64 (Chan et al.)."""
  counts = np.asarray([p[0] for p in parts], np.float64)
  means = np.stack([np.asarray(p[1], np.float64) for p in parts])
  total = counts.sum()
  mean = np.tensordot(counts, means, 1) / total
  m2 = sum(np.asarray(p[2], np.float64) for p in parts) + np.tensordot(counts, np.square(means - mean), 1)
  return jnp.asarray(mean, jnp.float32), jnp.asarray(m2 / total, jnp.float32)


def transfer_tiled(
  params: Mapping,
  x: ArrayLike,
  cond: ArrayLike,
  *,
  tile: int | Sequence[int],
  model: magenta.Transformer | magenta.MultiStyle26 | None = None,
  halo: int | None = None,
) -> jax.Array:
  """Stylizes images tile by tile, equal to the whole-image network up to float32 rounding.

  Args:
    params: :class:`~jaxstyle.magenta.Transformer` or :class:`~jaxstyle.magenta.MultiStyle26` params, or
      variables ``{"params": params}``.
    x: ``(N, H, W, 3)`` or ``(1, H, W, 3)`` RGB in [0, 1], any H, W of at least 5.
    cond: ``(N, D)`` style vectors or style weightings, used as given like ``model.apply`` does
      (:func:`jaxstyle.magenta.multistyle` normalizes weightings first).
    tile: the core side in px, or ``(rows, columns)``, rounded up to a multiple of 4; each window adds the
      halo on each side that faces another tile.
    model: the network (default: the one ``params`` fits, :func:`model_of`).
    halo: the margin in px, a multiple of 4 (default :func:`min_halo`; narrower is not exact).

  Returns:
    ``(N, H, W, 3)`` float32 RGB in (0, 1).
  """
  if "params" in params:
    params = params["params"]
  model = model_of(params) if model is None else model
  x = np.asarray(x, np.float32)
  cond = jnp.asarray(cond, jnp.float32)
  dim, what = (model.style_dim, "style vectors") if hasattr(model, "style_dim") else (model.num_styles, "weightings")
  magenta._check_body_inputs(x, cond, dim, what)
  n, h, w, _ = x.shape
  plan = tile_plan(h, w, tile, halo=min_halo(model) if halo is None else halo)
  (ph, pw), (wh, ww) = plan.padded, plan.window
  padded = np.pad(x, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="reflect")  # as pad_to_multiple
  tiles = [
    (padded[:, r : r + wh, c : c + ww], np.asarray([top - r, left - c, bottom - r, right - c], np.int32))
    for (top, left, bottom, right), (r, c) in zip(plan.cores, plan.starts, strict=True)
  ]
  # The normalized layers and their statistics' shapes, from a trace with the windows' own statistics.
  spec = jax.eval_shape(functools.partial(_tile, model), params, tiles[0][0], cond, tiles[0][1], None, 0)[1]
  moments = tuple((jnp.zeros(m.shape, m.dtype), jnp.ones(m.shape, m.dtype)) for _, m, _ in spec)
  for k in range(len(spec)):  # layer k's statistics need those of the layers before it
    target = np.int32(k)
    parts = [_run_tile(model, params, window, cond, core, moments, target)[1][k] for window, core in tiles]
    moments = (*moments[:k], _combine(jax.device_get(parts)), *moments[k + 1 :])
  out = np.empty((cond.shape[0] if n == 1 else n, ph, pw, 3), np.float32)

  def keep(y, core, r, c):
    top, left, bottom, right = core
    out[:, r + top : r + bottom, c + left : c + right] = np.asarray(y)[:, top:bottom, left:right]

  pending = None  # each window's result is copied out while the next one runs
  for (window, core), (r, c) in zip(tiles, plan.starts, strict=True):
    y = _run_tile(model, params, window, cond, core, moments, np.int32(len(spec)))[0]
    if pending is not None:
      keep(*pending)
    pending = (y, core, r, c)
  keep(*pending)
  return jnp.asarray(out[:, :h, :w])


def _whole(params: Mapping, x: jax.Array, cond: jax.Array, *, static: nn.Module) -> jax.Array:
  return static.apply({"params": params}, x, cond)


def stylize(
  params: Mapping,
  x: ArrayLike,
  cond: ArrayLike,
  *,
  tile: int | str | None,
  model: magenta.Transformer | magenta.MultiStyle26 | None = None,
) -> jax.Array:
  """The network's output for the whole image at once or by tiles, as ``tile`` says.

  Args:
    params: the network's params (as :func:`transfer_tiled`).
    x: ``(N, H, W, 3)`` or ``(1, H, W, 3)`` RGB in [0, 1].
    cond: ``(N, D)`` style vectors or weightings, used as given.
    tile: ``None``: the whole image; a side in px: :func:`transfer_tiled`; ``"auto"``: the whole image if its
      compiled program fits in free device memory (:func:`jaxstyle.compilation.memory_fit`), else the largest
      of :data:`AUTO_TILES` whose window is estimated to fit.
    model: the network (default: the one ``params`` fits).

  Returns:
    ``(N, H, W, 3)`` float32.
  """
  model = model_of(params) if model is None else model
  if tile is None:
    return magenta._apply(model, params, jnp.asarray(x, jnp.float32), jnp.asarray(cond, jnp.float32))
  if tile == "auto":
    args = (params, jnp.asarray(x, jnp.float32), jnp.asarray(cond, jnp.float32))
    exe, _ = compilation.compiled("fast", _whole, args, static=model, batched=False)
    fit = compilation.memory_fit(exe)
    if fit is None or fit[0] <= fit[2]:
      return exe(*args)
    tile = _auto_tile(fit, args[1].shape[1:3], min_halo(model))
  return transfer_tiled(params, x, cond, tile=tile, model=model)


def _auto_tile(fit: tuple[int, int, int], hw: tuple[int, int], halo: int) -> int:
  """The largest of :data:`AUTO_TILES` whose window's share of the whole image's memory fits (else the
  smallest): activations grow with the pixel count."""
  need, _, available = fit
  ph, pw = (-(-n // STRIDE) * STRIDE for n in hw)
  sides = [t for t in AUTO_TILES if t < max(ph, pw)] or [AUTO_TILES[-1]]
  for t in sides:
    window = min(t + 2 * halo, ph) * min(t + 2 * halo, pw)
    if need * min(1.0, window / (ph * pw)) <= available:
      return t
  return sides[-1]
