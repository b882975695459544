"""The Gatys objective's exact value and gradient, computed tile by tile.

Nothing in the objective needs the whole image's activations at once: content and
total-variation losses are sums of local terms, and each style layer enters only through
its Gram matrix, a sum over positions. :func:`tiled_value_and_grad` therefore runs in two
passes over tiles of the image, each a ``lax.scan`` so that one tile's activations are
live at a time:

1. the VGG runs on each tile's window (the tile's core plus a halo), and every style
   layer's un-normalised Gram matrix, every content layer's squared error and the total
   variation are summed over the cores; the loss then follows from these sums, normalised
   with the full layers' sizes, and so does its gradient with respect to the sums;
2. each window's VJP is taken with those global cotangents and added into an image-sized
   gradient.

The result equals the untiled objective's up to float32 rounding. Windows are gathered
from the image itself (no padded copy), and after every convolution and pooling the maps
are zeroed where the full network has no position at that resolution, so zero padding
appears exactly where the full network's SAME padding puts it, and VALID pooling's dropped
trailing row or column stays out. A window's own edges are wrong only within the halo,
which is as wide as the deepest layer's contamination from an edge (:func:`jaxstyle.nets.vgg.halo`);
only the cores' features enter the sums. Window origins are multiples of the deepest
layer's stride, so every window pools on the same 2x2 grid as the full image. A window
that would reach past the image is moved inwards (an image edge needs no halo), and one
tile on an axis has no halo there at all.

Windows overlap, so each pixel's gradient is the sum of the VJPs of all windows that
contain it; adding whole windows' VJPs (rather than writing cores) keeps the halo at one
receptive field instead of two.

The cut is :func:`jaxstyle.runtime.tiles.plan`'s (:func:`tile_plan` gives it the VGG's stride and
halo); the VGG's layer walk is :func:`jaxstyle.nets.vgg.forward`'s, with the maps zeroed outside the image
after every convolution and pooling; the loss follows from the sums by :mod:`jaxstyle.objective.losses`'
own normalisations and reductions.

Besides: :func:`tiled_value` (pass 1 alone, for evaluations), :func:`tiled_features` (the
targets: activations and Grams of a print-sized image by the same windows), and
:func:`reporting` (tiles done within a long step, from programs compiled with ``progress``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxstyle.nets import vgg
from jaxstyle.objective import losses
from jaxstyle.runtime import tiles
from jaxstyle.runtime.tiles import TilePlan


def tile_plan(
  h: int, w: int, tile: int | Sequence[int], layers: Iterable[str], *, halo: int | None = None, pooling: str = "max"
) -> TilePlan:
  """Cuts an ``h x w`` image into tiles for :func:`tiled_value_and_grad`: :func:`jaxstyle.runtime.tiles.plan`
  with the deepest layer's stride ``S`` and :func:`jaxstyle.nets.vgg.halo` (80 px for relu5_1).

  Cores tile the image from its top-left corner; the last row and column of tiles may reach past the image,
  where they contribute nothing (the maps are zero there).

  Args:
    h: image height.
    w: image width.
    tile: core side, or ``(rows, columns)``.
    layers: every layer the objective reads (content and style), aliases allowed.
    halo: a wider halo than the minimum (a multiple of ``S``), or ``None``.
    pooling: the network's pooling (``"maxblur"`` needs a wider halo).

  Raises:
    ValueError: a halo narrower than the minimum or not a multiple of ``S``, or a tile smaller than one pixel.
  """
  names = sorted({vgg.canonical_layer(n) for n in layers}, key=vgg.layer_depth)
  if not names:
    raise ValueError("no layers given")
  stride, need = vgg.layer_stride(names[-1]), vgg.halo(names, pooling=pooling)
  if halo is None:
    halo = need
  elif halo < need or halo % stride:
    raise ValueError(f"halo must be a multiple of {stride} and at least {need}, not {halo}")
  return tiles.plan((h, w), tile, stride=stride, halo=halo)


class Problem(NamedTuple):
  """What :func:`tiled_value_and_grad` and :func:`tiled_value` compute, but for the image and the params.

  Attributes:
    content_targets: layer name to ``(1, h, w, C)`` content activations.
    style_grams: layer name to ``(1, C, C)`` target Grams, or ``(1, K, C, C)`` with regions.
    weights: a :class:`jaxstyle.objective.losses.LossWeights` of scalars; its layer names must be in ``layers``.
    spec: a :class:`jaxstyle.objective.losses.LossSpec`.
    layers: the layers the objective reads, as passed to ``extract_features``.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"`` (:func:`jaxstyle.nets.vgg.pool`).
    tile: core side in pixels, or ``(rows, columns)`` (see :func:`tile_plan`).
    pool_gains: optional ``(5,)`` factors for pool1..pool5's outputs.
    regions: optional ``(K, H', W')`` soft style regions (guided Grams).
    mask: optional ``(H, W, 1)``: 1 where the image is optimized.
    anchor: ``(H, W, 3)``, the image where ``mask`` is 0 (required with ``mask``).
    halo: a halo wider than the minimum (:func:`tile_plan`), or ``None``.
    devices: more than one device splits the tiles evenly over them in the same program (``shard_map`` over a
      1-D mesh); their sums and gradients are added with ``psum``. The devices may span several processes
      (``jax.distributed``): every process then calls this with the same arguments.
    progress: report each finished tile to the callback of :func:`reporting` (a host callback per tile).
  """

  content_targets: Mapping[str, ArrayLike]
  style_grams: Mapping[str, ArrayLike]
  weights: losses.LossWeights
  spec: losses.LossSpec
  layers: Sequence[str]
  pooling: str
  tile: int | Sequence[int]
  pool_gains: ArrayLike | None = None
  regions: ArrayLike | None = None
  mask: ArrayLike | None = None
  anchor: ArrayLike | None = None
  halo: int | None = None
  devices: Sequence[jax.Device] | None = None
  progress: bool = False


def tiled_value_and_grad(
  image: ArrayLike, params: Mapping, **problem
) -> tuple[jax.Array, dict[str, jax.Array], jax.Array]:
  """The objective of :func:`jaxstyle.objective.losses.total_loss` on one image and its gradient, tile by tile.

  Equals, up to float32 rounding, ``jax.value_and_grad`` of
  ``total_loss(extract_features(params, x[None], layers, ...), ..., x[None], weights, spec)``
  with ``x = image`` or ``mask * image + (1 - mask) * anchor``, while holding one tile's
  activations at a time (plus a few image-sized buffers). Runs as one compiled program
  (static: ``spec``, ``layers``, ``pooling``, ``tile``, ``halo``, ``devices``, ``progress``);
  it may be called under an outer ``jax.jit`` with those arguments static.

  Args:
    image: ``(H, W, 3)`` RGB in [0, 1].
    params: VGG19 params, with or without Winograd kernels (:func:`jaxstyle.nets.vgg.prepare`).
    **problem: the fields of :class:`Problem`, by name.

  Returns:
    ``(value, parts, grad)``: the scalar loss, ``{"content", "style", "tv"}`` weighted
    scalar parts, and the ``(H, W, 3)`` gradient with respect to ``image``.
  """
  return evaluate(image, params, Problem(**problem), grad=True)


def tiled_value(image: ArrayLike, params: Mapping, **problem) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The value and weighted parts of :func:`tiled_value_and_grad` without the gradient: its
  first pass only (about a third of the work). Takes the same arguments.

  Returns:
    ``(value, parts)``: the scalar loss and ``{"content", "style", "tv"}`` weighted scalar parts.
  """
  return evaluate(image, params, Problem(**problem), grad=False)


def tiled_features(
  image: ArrayLike,
  params: Mapping,
  *,
  layers: Sequence[str] = (),
  gram_layers: Sequence[str] = (),
  pooling: str,
  tile: int | Sequence[int],
  gram_norm: str = "none",
  pool_gains: ArrayLike | None = None,
  halo: int | None = None,
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """Activations and Gram matrices of one image, tile by tile (a forward pass that holds one
  window's activations at a time): the targets of a print-sized run.

  Equals, up to float32 rounding, ``vgg.extract_features(params, image[None], layers, ...)``
  and ``losses.gram_matrix(extract_features(..., gram_layers, ...)[n], normalize=gram_norm)``.

  Args:
    image: ``(H, W, 3)`` RGB in [0, 1].
    params: VGG19 params, with or without Winograd kernels.
    layers: layers whose activations are returned, ``(1, h, w, C)`` each.
    gram_layers: layers whose Gram matrices are returned, ``(1, C, C)`` each.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"`` (:func:`jaxstyle.nets.vgg.pool`).
    tile: core side in pixels, or ``(rows, columns)`` (see :func:`tile_plan`).
    gram_norm: ``"none"``, ``"hw"`` or ``"chw"`` (:func:`jaxstyle.objective.losses.gram_matrix`).
    pool_gains: optional ``(5,)`` factors for pool1..pool5's outputs.
    halo: a halo wider than the minimum, or ``None``.

  Returns:
    ``(features, grams)``, keyed by the names given.
  """
  if gram_norm not in losses.GRAM_NORMS:
    raise ValueError(f"gram_norm must be one of {losses.GRAM_NORMS}, not {gram_norm!r}")
  _check_pooling(pooling)
  if not layers and not gram_layers:
    return {}, {}
  tile = tile if isinstance(tile, int) else tuple(int(t) for t in tile)
  return _features(
    image,
    params,
    pool_gains,
    layers=tuple(layers),
    gram_layers=tuple(gram_layers),
    pooling=pooling,
    tile=tile,
    gram_norm=gram_norm,
    halo=halo,
  )


@functools.partial(jax.jit, static_argnames=("layers", "gram_layers", "pooling", "tile", "gram_norm", "halo"))
def _features(image, params, gains, *, layers, gram_layers, pooling, tile, gram_norm, halo):
  # tiled_features after its checks: one scan over the tiles writes each core's activations
  # into the full maps and adds its Gram.
  image = jnp.asarray(image, jnp.float32)
  gains = None if gains is None else jnp.asarray(gains, jnp.float32)
  h, w = image.shape[:2]
  canon = {n: vgg.canonical_layer(n) for n in (*layers, *gram_layers)}
  plan = tile_plan(h, w, tile, canon.values(), halo=halo, pooling=pooling)
  width = {n: _width(params, c) for n, c in canon.items()}

  def body(carry, item):
    feats, grams = carry
    org, start = item
    f = _window_features(_window(image, start, plan)[0], org, start, (h, w), params, gains, plan=plan,
                         wanted=canon.values(), pooling=pooling)  # fmt: skip
    feats, grams = dict(feats), dict(grams)
    for n in layers:
      core, s = f[canon[n]][0], vgg.layer_stride(canon[n])
      r, c = org[0] // s + jnp.arange(core.shape[0]), org[1] // s + jnp.arange(core.shape[1])
      feats[n] = feats[n].at[r[:, None], c[None, :]].set(core, mode="drop")  # rows past the layer are dropped
    for n in gram_layers:
      grams[n] = grams[n] + _raw_gram(f[canon[n]][0])  # zero outside the image
    return (feats, grams), None

  feats = {n: jnp.zeros((*vgg.layer_shape(canon[n], (h, w)), width[n]), jnp.float32) for n in layers}
  grams = {n: jnp.zeros((width[n], width[n]), jnp.float32) for n in gram_layers}
  (feats, grams), _ = lax.scan(body, (feats, grams), _origins_and_starts(plan))
  out = {}
  for n, g in grams.items():
    lh, lw = vgg.layer_shape(canon[n], (h, w))
    out[n] = (g / losses.gram_divisor(gram_norm, lh, lw, width[n]))[None]
  return {n: f[None] for n, f in feats.items()}, out


def evaluate(image: ArrayLike, params: Mapping, problem: Problem, *, grad: bool):
  """:func:`tiled_value_and_grad` (``grad``) or :func:`tiled_value` of a :class:`Problem`, after checking it."""
  _check(problem)
  tile = problem.tile if isinstance(problem.tile, int) else tuple(int(t) for t in problem.tile)
  devices = None if problem.devices is None or len(problem.devices) < 2 else tuple(problem.devices)
  p = problem
  arrays = (p.content_targets, p.style_grams, p.weights, p.pool_gains, p.regions, p.mask, p.anchor)
  static = dict(spec=p.spec, layers=tuple(p.layers), pooling=p.pooling, tile=tile, halo=p.halo, devices=devices)
  return _tiled(image, params, *arrays, **static, grad=grad, progress=bool(p.progress))


def _check(p: Problem) -> None:
  if (p.mask is None) != (p.anchor is None):
    raise ValueError("mask and anchor go together")
  known = set(p.layers)
  for name in (*p.weights.content_layers, *p.weights.style_layers):
    if name not in known:
      raise ValueError(f"layer {name!r} has a weight but is not in layers {tuple(p.layers)}")
  spec = p.spec
  if spec.gram_norm not in losses.GRAM_NORMS:
    raise ValueError(f"gram_norm must be one of {losses.GRAM_NORMS}, not {spec.gram_norm!r}")
  for r in (spec.content_reduction, spec.style_reduction):
    if r not in losses.REDUCTIONS:
      raise ValueError(f"reduction must be one of {losses.REDUCTIONS}, not {r!r}")
  if spec.style_layer_norm not in losses.LAYER_NORMS:
    raise ValueError(f"style_layer_norm must be 'none' or 'chw', not {spec.style_layer_norm!r}")
  if spec.tv_kind not in losses.TV_KINDS or spec.tv_reduction not in losses.TV_REDUCTIONS:
    raise ValueError(f"tv_kind must be one of {losses.TV_KINDS} and tv_reduction 'sum' or 'mean'")
  _check_pooling(p.pooling)


def _check_pooling(pooling: str) -> None:
  if pooling not in vgg.POOLINGS:
    raise ValueError(f"pooling must be one of {vgg.POOLINGS}, not {pooling!r}")


# --------------------------------------------------------------------------- progress


PHASES = ("value", "gradient")


class TileProgress(NamedTuple):
  """Tiles finished within one pass of one evaluation of the objective.

  Attributes:
    phase: ``"value"`` (pass 1: features and their sums) or ``"gradient"`` (pass 2: the
      windows' VJPs); a value-and-gradient runs both, a value only the first.
    done: tiles of this pass finished, ``1..total``.
    total: tiles in the pass (padded up to a multiple of the device count); with devices
      in several processes, the tiles of this process's devices.
  """

  phase: str
  done: int
  total: int


class _Reporter:
  """Counts the per-tile host callbacks of programs compiled with ``progress=True`` and
  passes a throttled :class:`TileProgress` on to the callback of :func:`reporting`."""

  def __init__(self):
    self.lock = threading.Lock()  # several devices' callbacks may arrive at once
    self.fn: Callable[[TileProgress], None] | None = None
    self.every = 1.0
    self.last = -math.inf
    self.counts = [0, 0]

  def tile_done(self, phase: int, total: int, _token) -> None:
    with self.lock:
      if self.fn is None:
        return
      self.counts[phase] += 1
      done = self.counts[phase]
      if done >= total:
        self.counts[phase] = 0
      now = time.monotonic()
      if done < total and now - self.last < self.every:
        return
      self.last, fn = now, self.fn
    fn(TileProgress(PHASES[phase], done, total))


_REPORTER = _Reporter()


@contextlib.contextmanager
def reporting(callback: Callable[[TileProgress], None] | None, *, every: float = 1.0) -> Iterator[None]:
  """While active, programs compiled with ``progress=True`` send :class:`TileProgress` to
  ``callback``: at the end of every pass and otherwise at most once per ``every`` seconds.

  The callback runs on a runtime thread while the step goes on; keep it short (print a
  line). One callback at a time per process: nesting replaces the outer one until exit.

  Args:
    callback: receives :class:`TileProgress`; ``None`` reports nothing.
    every: the least seconds between two reports within a pass.
  """
  r = _REPORTER
  with r.lock:
    saved = (r.fn, r.every, r.last, list(r.counts))
    r.fn, r.every, r.last, r.counts = callback, float(every), -math.inf, [0, 0]
  try:
    yield
  finally:
    with r.lock:
      r.fn, r.every, r.last, r.counts = saved[0], saved[1], saved[2], saved[3]


def _report(phase: int, total: int, result) -> None:
  """A host callback after a tile; it reads a scalar of the tile's ``result`` so that it
  runs once the tile is computed, not anywhere in the loop's iteration."""
  token = sum(jnp.ravel(leaf)[0] for leaf in jax.tree.leaves(result))
  jax.debug.callback(functools.partial(_REPORTER.tile_done, phase, total), token)


class _Ctx(NamedTuple):
  """The replicated inputs of a tile's computation (nothing here is padded or copied)."""

  image: jax.Array  # (H, W, 3)
  mask: jax.Array | None  # (H, W, 1)
  anchor: jax.Array | None  # (H, W, 3)
  params: Mapping
  gains: jax.Array | None  # (5,)
  targets: dict[str, jax.Array]  # name -> (h, w, C) content activations
  maps: dict[str, jax.Array] | None  # name -> (K, h, w) regions resized to the layer


class _Tiles(NamedTuple):
  """The scanned arrays of the tiles: core and window origins ``(T, 2)`` and a weight ``(T,)`` (0 for the
  copies of tile 0 that pad ``T`` to a multiple of the device count)."""

  origins: jax.Array
  starts: jax.Array
  live: jax.Array


def _span(start: jax.Array, size: int, full: int) -> tuple[jax.Array, jax.Array]:
  """Indices ``start + arange(size)`` clipped into ``[0, full)``, and which were inside."""
  at = start + jnp.arange(size)
  return jnp.clip(at, 0, full - 1), (at >= 0) & (at < full)


def _take(a: jax.Array, rows: jax.Array, cols: jax.Array, axis: int) -> jax.Array:
  """``a``'s block at ``rows`` x ``cols`` along axes ``axis``, ``axis + 1``: a tile-sized gather."""
  return jnp.take(jnp.take(a, rows, axis=axis), cols, axis=axis + 1)


def _inside(rows_ok: jax.Array, cols_ok: jax.Array) -> jax.Array:
  """``(h, w, 1)`` float, 1 where both the row and the column exist."""
  return (rows_ok[:, None] & cols_ok[None, :]).astype(jnp.float32)[:, :, None]


def _window(image: jax.Array, start: jax.Array, plan: TilePlan) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The image under a window (at clipped indices where it reaches past the image), and its rows and columns."""
  h, w = image.shape[:2]
  rows, _ = _span(start[0], plan.window[0], h)
  cols, _ = _span(start[1], plan.window[1], w)
  return _take(image, rows, cols, 0), rows, cols


def _width(params: Mapping, layer: str) -> int:
  return int(params[f"conv{layer[4]}_1"]["kernel"].shape[-1])


def _raw_gram(f: jax.Array) -> jax.Array:
  """The un-normalised Gram matrix ``(C, C)`` of an ``(h, w, C)`` map."""
  return losses.gram_matrix(f.reshape(-1, f.shape[-1])[None, None], normalize="none")[0]


def _origins_and_starts(plan: TilePlan) -> tuple[jax.Array, jax.Array]:
  return (jnp.asarray(plan.origins, jnp.int32).reshape(-1, 2), jnp.asarray(plan.starts, jnp.int32).reshape(-1, 2))


def _window_features(
  x: jax.Array,
  org: jax.Array,
  start: jax.Array,
  hw: tuple[int, int],
  params: Mapping,
  gains: jax.Array | None,
  *,
  plan: TilePlan,
  wanted: Iterable[str],
  pooling: str,
) -> dict[str, tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
  """The VGG on one window, and the core of each wanted layer.

  Every map is zeroed outside the image after each convolution and pooling (:func:`jaxstyle.nets.vgg.forward`'s
  ``after``), so the window's convolutions see the full network's SAME padding at the image border (and their
  own zero padding only at the window's edges, which the halo keeps away from the core), and VALID pooling's
  dropped trailing row or column stays out.

  Args:
    x: ``(window_h, window_w, 3)`` RGB in [0, 1] under the window.
    org: ``(2,)`` int, the core's origin in the image.
    start: ``(2,)`` int, the window's origin in the image.
    hw: the image's ``(H, W)``.
    params: VGG19 params.
    gains: optional ``(5,)`` pool gains.
    plan: the tiling.
    wanted: canonical layer names.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"`` (:func:`jaxstyle.nets.vgg.pool`).

  Returns:
    canonical name to ``(core, rows, cols, inside)``: the core's ``(core_h / s, core_w / s, C)``
    activations at that layer's stride ``s`` (zero outside the image), their rows and
    columns in the full layer (clipped into it), and ``(.., .., 1)`` 1 where they exist.
  """
  (n0, n1), (w0, w1) = plan.core, plan.window

  def outside_zeroed(y: jax.Array, s: int) -> jax.Array:
    _, ro = _span(start[0] // s, w0 // s, hw[0] // s)
    _, co = _span(start[1] // s, w1 // s, hw[1] // s)
    return y * _inside(ro, co)[None]

  feats = vgg.forward(
    outside_zeroed(vgg.preprocess(x[None]), 1),
    wanted,
    conv=lambda name, y: vgg.apply_conv(params[name], y),
    pooling=pooling,
    pool_gains=gains,
    after=lambda name, y: outside_zeroed(y, vgg.layer_stride(name)),
  )
  out = {}
  for name, y in feats.items():
    s = vgg.layer_stride(name)
    k0, k1 = n0 // s, n1 // s
    core = lax.dynamic_slice(y[0], ((org[0] - start[0]) // s, (org[1] - start[1]) // s, 0), (k0, k1, y.shape[-1]))
    lr, lr_ok = _span(org[0] // s, k0, hw[0] // s)
    lc, lc_ok = _span(org[1] // s, k1, hw[1] // s)
    out[name] = (core, lr, lc, _inside(lr_ok, lc_ok))
  return out


def _tile_stats(
  window: jax.Array,
  org: jax.Array,
  start: jax.Array,
  ctx: _Ctx,
  *,
  plan: TilePlan,
  content: tuple[tuple[str, str], ...],
  style: tuple[tuple[str, str], ...],
  pooling: str,
  tv_kind: str,
) -> dict:
  """One tile's contributions, summed over its core: squared content errors, un-normalised
  Grams and total-variation terms.

  Args:
    window: ``(window_h, window_w, 3)`` the image under the window (at clipped indices
      where the window reaches past the image); the variable of pass 2's VJP.
    org: ``(2,)`` int, the core's origin in the image.
    start: ``(2,)`` int, the window's origin in the image.
    ctx: the replicated inputs.
    plan: the tiling.
    content: (name as given, canonical name) of each content layer.
    style: the same for each style layer.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"`` (:func:`jaxstyle.nets.vgg.pool`).
    tv_kind: ``"l1"`` or ``"l2"``.

  Returns:
    ``{"content": {name: ()}, "style": {name: (C, C) or (K, C, C)}, "tv": {"h": (), "w": ()}}``.
  """
  hw = ctx.image.shape[:2]
  x = window
  if ctx.mask is not None:
    rows, _ = _span(start[0], plan.window[0], hw[0])
    cols, _ = _span(start[1], plan.window[1], hw[1])
    m = _take(ctx.mask, rows, cols, 0)
    x = m * x + (1.0 - m) * _take(ctx.anchor, rows, cols, 0)
  out = {"content": {}, "style": {}, "tv": _tile_tv(x, org, start, hw, plan, tv_kind)}
  wanted = {c for _, c in content + style}
  feats = _window_features(x, org, start, hw, ctx.params, ctx.gains, plan=plan, wanted=wanted, pooling=pooling)
  for given, canon in content:
    f, lr, lc, ok = feats[canon]
    t = _take(ctx.targets[given], lr, lc, 0)
    out["content"][given] = jnp.sum(jnp.square(f - t) * ok)
  for given, canon in style:
    f, lr, lc, _ = feats[canon]  # zero outside the image already
    if ctx.maps is None:
      out["style"][given] = _raw_gram(f)
    else:
      fl = f.reshape(-1, f.shape[-1])
      m = _take(ctx.maps[given], lr, lc, 1).reshape(ctx.maps[given].shape[0], -1)
      out["style"][given] = jnp.einsum("pc,kp,pd->kcd", fl, m, fl)
  return out


def _tile_tv(x, org, start, hw, plan: TilePlan, tv_kind: str) -> dict[str, jax.Array]:
  """The total variation's terms of a tile's core: the differences from each core pixel to its lower and right
  neighbours, where both are in the image (a window holds the neighbours its core needs)."""
  (n0, n1), (w0, w1) = plan.core, plan.window
  r = start[0] + jnp.arange(w0)
  c = start[1] + jnp.arange(w1)
  r_core, c_core = (r >= org[0]) & (r < org[0] + n0), (c >= org[1]) & (c < org[1] + n1)
  dh = (x[1:] - x[:-1]) * _inside(r_core[:-1] & (r[1:] < hw[0]), c_core & (c < hw[1]))
  dw = (x[:, 1:] - x[:, :-1]) * _inside(r_core & (r < hw[0]), c_core[:-1] & (c[1:] < hw[1]))
  f = jnp.abs if tv_kind == "l1" else jnp.square
  return {"h": jnp.sum(f(dh)), "w": jnp.sum(f(dw))}


def _loss_from_sums(sums, weights, style_grams, areas, *, spec, hw, sizes, guided):
  """The objective from the tiles' summed statistics, by :mod:`jaxstyle.objective.losses`' formulas with the
  full layers' sizes."""
  c = jnp.float32(0.0)
  for name, w in weights.content_layers.items():
    red = losses.reduce_total(sums["content"][name], math.prod(sizes[name]), spec.content_reduction)
    c = c + jnp.asarray(w, jnp.float32) * red
  st = jnp.float32(0.0)
  for name, w in weights.style_layers.items():
    g = sums["style"][name]
    h, wd, ch = sizes[name]
    if not guided:
      g = (g / losses.gram_divisor(spec.gram_norm, h, wd, ch))[None]
    else:
      g = losses.guided_normalize(g, areas[name], ch, spec.gram_norm).reshape(1, -1, ch)
    z = losses.layer_divisor(spec.style_layer_norm, h, wd, ch)
    st = (
      st + jnp.asarray(w, jnp.float32) * losses.gram_loss(g, style_grams[name], reduction=spec.style_reduction)[0] / z
    )
  tv = losses.reduce_total(sums["tv"]["h"], (hw[0] - 1) * hw[1] * 3, spec.tv_reduction) + losses.reduce_total(
    sums["tv"]["w"], hw[0] * (hw[1] - 1) * 3, spec.tv_reduction
  )
  return losses.combine(c, st, tv, weights)


def _context(image, params, content_targets, gains, regions, mask, anchor, *, plan, content, style):
  """The replicated inputs (:class:`_Ctx`), with the region maps resized to each style layer, and the regions'
  areas per layer (``None`` without regions)."""
  h, w = image.shape[:2]
  maps, areas = None, None
  if regions is not None:
    r = jnp.asarray(regions, jnp.float32)
    maps, areas = {}, {}
    for name, c in style:
      lh, lw = vgg.layer_shape(c, (h, w))
      # resized on the whole map, exactly as losses.guided_gram_matrix does
      m = jax.image.resize(r, (r.shape[0], lh, lw), "linear") if r.shape[1:] != (lh, lw) else r
      maps[name], areas[name] = m, losses.region_areas(m)
  as32 = lambda a: None if a is None else jnp.asarray(a, jnp.float32)  # noqa: E731
  targets = {n: jnp.asarray(content_targets[n], jnp.float32)[0] for n, _ in content}
  return _Ctx(image, as32(mask), as32(anchor), params, as32(gains), targets, maps), areas


def _tile_arrays(plan: TilePlan, devices) -> tuple[_Tiles, int]:
  """The tiles as scanned arrays, padded to a multiple of the device count with copies of tile 0 of weight 0,
  and how many of them this process's devices run (a process hears only its own devices' callbacks)."""
  n_dev = 1 if devices is None else len(devices)
  n = len(plan.origins)
  extra = -(-n // n_dev) * n_dev - n
  orgs = np.array(plan.origins + plan.origins[:1] * extra, np.int32).reshape(-1, 2)
  starts = np.array(plan.starts + plan.starts[:1] * extra, np.int32).reshape(-1, 2)
  live = np.array([1.0] * n + [0.0] * extra, np.float32)
  mine = n_dev if devices is None else sum(d.process_index == jax.process_index() for d in devices)
  return _Tiles(jnp.asarray(orgs), jnp.asarray(starts), jnp.asarray(live)), (n + extra) // n_dev * mine


def _sums_pass(stats, ctx: _Ctx, tiles_: _Tiles, *, plan: TilePlan, progress: bool, total: int):
  """Pass 1: every tile's statistics, summed (one tile's activations live at a time)."""
  shapes = jax.eval_shape(stats, jax.ShapeDtypeStruct((*plan.window, 3), jnp.float32), tiles_.origins[0],
                          tiles_.starts[0], ctx)  # fmt: skip

  def body(acc, item):
    org, start, on = item
    s = stats(_window(ctx.image, start, plan)[0], org, start, ctx)
    if progress:
      _report(0, total, s)
    return jax.tree.map(lambda a, b: a + on * b, acc, s), None

  zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
  return lax.scan(body, zeros, (tiles_.origins, tiles_.starts, tiles_.live))[0]


def _grad_pass(stats, ctx: _Ctx, ct, tiles_: _Tiles, *, plan: TilePlan, progress: bool, total: int):
  """Pass 2: each window's VJP with the global cotangents ``ct`` of the sums, added into the image's gradient."""

  def body(g, item):
    org, start, on = item
    win, rows, cols = _window(ctx.image, start, plan)
    _, vjp = jax.vjp(lambda v: stats(v, org, start, ctx), win)
    (gw,) = vjp(ct)
    if progress:
      _report(1, total, gw)
    # windows overlap: each adds its whole VJP (zero at clipped indices outside the image)
    return g.at[rows[:, None], cols[None, :]].add(on * gw), None

  return lax.scan(body, jnp.zeros_like(ctx.image), (tiles_.origins, tiles_.starts, tiles_.live))[0]


def _over_devices(fn, devices, replicated_args: int):
  """``fn`` with the tiles (its last argument) split over ``devices`` and the results added (``psum``)."""
  mesh = jax.sharding.Mesh(np.asarray(devices), ("tiles",))
  specs = (P(),) * replicated_args + (_Tiles(P("tiles"), P("tiles"), P("tiles")),)
  return jax.shard_map(lambda *a: lax.psum(fn(*a), "tiles"), mesh=mesh, in_specs=specs, out_specs=P(), check_vma=False)


@functools.partial(
  jax.jit, static_argnames=("spec", "layers", "pooling", "tile", "halo", "devices", "grad", "progress")
)
def _tiled(image, params, content_targets, style_grams, weights, gains, regions, mask, anchor, *, spec, layers,
           pooling, tile, halo, devices, grad, progress):  # fmt: skip
  # tiled_value_and_grad (grad) or tiled_value after their checks; every argument after the * is static.
  image = jnp.asarray(image, jnp.float32)
  h, w = image.shape[:2]
  plan = tile_plan(h, w, tile, layers, halo=halo, pooling=pooling)
  canon = {n: vgg.canonical_layer(n) for n in layers}
  content = tuple((n, canon[n]) for n in weights.content_layers)
  style = tuple((n, canon[n]) for n in weights.style_layers)
  ctx, areas = _context(image, params, content_targets, gains, regions, mask, anchor, plan=plan, content=content,
                        style=style)  # fmt: skip
  stats = functools.partial(_tile_stats, plan=plan, content=content, style=style, pooling=pooling, tv_kind=spec.tv_kind)
  tiles_, total = _tile_arrays(plan, devices)
  first = functools.partial(_sums_pass, stats, plan=plan, progress=progress, total=total)
  second = functools.partial(_grad_pass, stats, plan=plan, progress=progress, total=total)
  if devices is not None:
    first, second = _over_devices(first, devices, 1), _over_devices(second, devices, 2)
  sums = first(ctx, tiles_)
  sizes = {name: (*vgg.layer_shape(c, (h, w)), _width(params, c)) for name, c in content + style}
  loss = functools.partial(_loss_from_sums, spec=spec, hw=(h, w), sizes=sizes, guided=regions is not None)
  if not grad:
    return loss(sums, weights, style_grams, areas)
  (value, parts), ct = jax.value_and_grad(lambda s: loss(s, weights, style_grams, areas), has_aux=True)(sums)
  return value, parts, second(ctx, ct, tiles_)
