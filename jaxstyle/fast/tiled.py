"""Fast stylization of large images tile by tile, equal to the whole-image network.

Magenta's transformers (:mod:`jaxstyle.nets.magenta`) are local except for their conditional instance norms
(CIN), whose statistics span the whole image. Given every CIN's whole-image mean and variance, the network is
a map with a finite receptive field, so a window of the image with a halo of at least that field's radius
(:func:`jaxstyle.nets.magenta.halo`) gives the whole image's output on its core. The statistics are
sequential (CIN k's input depends on the statistics of the CINs before it), so :func:`transfer_tiled` makes
``K + 1`` passes over the tiles for ``K`` normalized layers:

1. pass ``k < K`` runs every tile's window with the known statistics of layers ``< k``, skipping the
   convolutions after layer ``k``, and returns the mean and centred sum of squares of layer ``k``'s input
   over the tile's core; the tiles' are combined in float64 on the host (Chan et al.'s parallel variance),
   which float32 sums of squares over a print-sized image would not survive;
2. the last pass runs everything and keeps each window's core.

Pass ``k`` costs the network up to layer ``k``: about ``K / 2 + 1`` whole-network evaluations in all, plus the
halos. Every tile of every pass calls the same compiled program (core, statistics and layer index are traced
arguments, see :class:`jaxstyle.nets.magenta.TileRun`), and it sees one window: device memory is bounded by the
tile, while the image, the output and the statistics stay on the host.

Geometry: the image is reflect-padded at the bottom and right to a multiple of 4 as the whole network pads it
(:func:`~jaxstyle.nets.magenta.pad_to_multiple`), and cut by :func:`jaxstyle.runtime.tiles.plan`, the plan of
every tiled computation, within that padded image. The cores partition it; cores and windows start on
multiples of 4, the network's total stride, so each layer of a window is an exact block of the same layer of
the whole image. A window is its core plus the
halo on each side, moved inwards where it would pass the image's edge: there the window's own reflect padding
(and the phase form's edge padding) is the whole image's, while the wrong values that its other edges produce
stay within the halo.

:func:`stylize` picks between the whole image and tiles (``tile="auto"``: tiles only when the compiled
whole-image program would not fit in free memory).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.nets import magenta
from jaxstyle.runtime import compilation, memory, tiles
from jaxstyle.runtime.tiles import TilePlan

STRIDE = magenta.MULTIPLE  # two stride-2 convolutions: cores, windows and halos are multiples of it


def tile_plan(h: int, w: int, tile: int | Sequence[int], *, halo: int) -> TilePlan:
  """Cuts an ``h x w`` image into tiles for :func:`transfer_tiled`: :func:`jaxstyle.runtime.tiles.plan` of the
  image reflect-padded to a multiple of 4, windows within that padded image.

  Args:
    h: image height.
    w: image width.
    tile: the core side in px, or ``(rows, columns)``; rounded up to a multiple of 4, at most the padded side.
    halo: a multiple of 4 (:func:`jaxstyle.nets.magenta.halo`).
  """
  padded = (h + -h % STRIDE, w + -w % STRIDE)
  return tiles.plan(padded, tile, stride=STRIDE, halo=halo, bound=padded)


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
    model: the network (default: the one ``params`` fits, :func:`jaxstyle.nets.magenta.model_of`).
    halo: the margin in px, a multiple of 4 (default :func:`jaxstyle.nets.magenta.halo`; narrower is not exact).

  Returns:
    ``(N, H, W, 3)`` float32 RGB in (0, 1).
  """
  if "params" in params:
    params = params["params"]
  model = magenta.model_of(params) if model is None else model
  x = np.asarray(x, np.float32)
  cond = jnp.asarray(cond, jnp.float32)
  dim, what = (model.style_dim, "style vectors") if hasattr(model, "style_dim") else (model.num_styles, "weightings")
  magenta.check_inputs(x, cond, dim, what)
  n, h, w, _ = x.shape
  plan = tile_plan(h, w, tile, halo=magenta.halo(model) if halo is None else halo)
  (ph, pw), (wh, ww) = (h + -h % STRIDE, w + -w % STRIDE), plan.window
  padded = np.pad(x, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="reflect")  # as pad_to_multiple
  windows = [
    (padded[:, r : r + wh, c : c + ww], np.asarray([top - r, left - c, bottom - r, right - c], np.int32))
    for (top, left, bottom, right), (r, c) in zip(plan.boxes((ph, pw)), plan.starts, strict=True)
  ]
  # The normalized layers and their statistics' shapes, from a trace with the windows' own statistics.
  spec = jax.eval_shape(functools.partial(_tile, model), params, windows[0][0], cond, windows[0][1], None, 0)[1]
  moments = tuple((jnp.zeros(m.shape, m.dtype), jnp.ones(m.shape, m.dtype)) for _, m, _ in spec)
  for k in range(len(spec)):  # layer k's statistics need those of the layers before it
    target = np.int32(k)
    parts = [_run_tile(model, params, window, cond, core, moments, target)[1][k] for window, core in windows]
    moments = (*moments[:k], _combine(jax.device_get(parts)), *moments[k + 1 :])
  out = np.empty((cond.shape[0] if n == 1 else n, ph, pw, 3), np.float32)

  def keep(y, core, r, c):
    top, left, bottom, right = core
    out[:, r + top : r + bottom, c + left : c + right] = np.asarray(y)[:, top:bottom, left:right]

  pending = None  # each window's result is copied out while the next one runs
  for (window, core), (r, c) in zip(windows, plan.starts, strict=True):
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
      compiled program fits in free device memory (:func:`jaxstyle.runtime.memory.memory_fit`), else the largest
      tile whose window is estimated to fit (:func:`jaxstyle.runtime.memory.auto_tiles`).
    model: the network (default: the one ``params`` fits).

  Returns:
    ``(N, H, W, 3)`` float32.
  """
  model = magenta.model_of(params) if model is None else model
  if tile is None:
    return magenta.run(model, params, jnp.asarray(x, jnp.float32), jnp.asarray(cond, jnp.float32))
  if tile == "auto":
    args = (params, jnp.asarray(x, jnp.float32), jnp.asarray(cond, jnp.float32))
    exe, _ = compilation.compiled("fast", _whole, args, static=model)
    fit = memory.memory_fit(exe)
    if fit is None or fit[0] <= fit[2]:
      return exe(*args)
    tile = _auto_tile(fit, args[1].shape[1:3], magenta.halo(model))
  return transfer_tiled(params, x, cond, tile=tile, model=model)


def _auto_tile(fit: tuple[int, int, int], hw: tuple[int, int], halo: int) -> int:
  """The largest tile whose window's share of the whole program's memory fits: all of the network's memory is
  activations, which grow with the pixel count (the image and the output stay on the host)."""
  need, _, available = fit
  padded = tuple(-(-n // STRIDE) * STRIDE for n in hw)
  window = lambda t: tile_plan(*padded, t, halo=halo).window  # noqa: E731
  return memory.auto_tiles((need, need, available), padded, window, fixed=0)[0]
