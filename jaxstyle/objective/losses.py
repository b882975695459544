"""Style-transfer losses: pure functions of feature dicts.

Every function takes ``(N, H, W, C)`` feature maps (or ``(N, H, W, 3)`` images) and
returns one value per batch element, shape ``(N,)``, so that a batch of images is a
batch of independent problems. Loss weights are a :class:`LossWeights` pytree, so
``jax.vmap`` over a stack of weightings runs a sweep in one program.

The formulas live here once: how a Gram matrix is normalised (:func:`gram_divisor`), how
squared errors are reduced (:func:`reduce_total`), one style layer's loss (:func:`gram_loss`)
and the weighted sum (:func:`combine`); the tiled objective (:mod:`jaxstyle.objective.tiled`)
applies the same functions to sums gathered tile by tile.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Mapping
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.objective.warp import warp

GramNorm = Literal["none", "hw", "chw"]
Reduction = Literal["sum", "mean", "half_sum"]
TVKind = Literal["l1", "l2"]
TVReduction = Literal["sum", "mean"]
LayerNorm = Literal["none", "chw"]
GRAM_NORMS: tuple[str, ...] = typing.get_args(GramNorm)
REDUCTIONS: tuple[str, ...] = typing.get_args(Reduction)
TV_KINDS: tuple[str, ...] = typing.get_args(TVKind)
TV_REDUCTIONS: tuple[str, ...] = typing.get_args(TVReduction)
LAYER_NORMS: tuple[str, ...] = typing.get_args(LayerNorm)


def gram_divisor(normalize: str, h: int, w: int, c: int) -> float:
  """``Z`` of :func:`gram_matrix`: 1, ``H*W`` or ``C*H*W``, as a Python float (``C*H*W`` passes int32 at print
  sizes)."""
  z = {"none": 1, "hw": h * w, "chw": c * h * w}.get(normalize)
  if z is None:
    raise InputError(f"normalize must be one of {GRAM_NORMS}, not {normalize!r}")
  return float(z)


def guided_normalize(g: jax.Array, area: jax.Array, c: int, normalize: str) -> jax.Array:
  """Guided Grams ``(..., K, C, C)`` divided by each region's ``area`` ``(K,)`` (``"hw"``), times ``C``
  (``"chw"``), or left as they are (``"none"``)."""
  if normalize == "none":
    return g
  if normalize not in GRAM_NORMS:
    raise InputError(f"normalize must be one of {GRAM_NORMS}, not {normalize!r}")
  z = area.reshape((1,) * (g.ndim - 3) + (-1, 1, 1))
  return g / z if normalize == "hw" else g / (c * z)


def reduce_total(total: jax.Array, count: int, reduction: str) -> jax.Array:
  """A sum of ``count`` squared errors reduced as ``reduction`` says: the sum, half of it, or the mean."""
  if reduction == "sum":
    return total
  if reduction == "half_sum":
    return 0.5 * total
  if reduction == "mean":
    return total / float(count)
  raise InputError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")


def gram_matrix(features: ArrayLike, *, normalize: str = "hw") -> jax.Array:
  """Gram matrix of feature maps: channel-by-channel inner products over positions.

  ``G[n, c, d] = sum_{h, w} F[n, h, w, c] F[n, h, w, d] / Z`` with ``Z`` given by
  ``normalize``: ``"none"`` (Z = 1, the paper's G), ``"hw"`` (Z = H*W, as in the
  TensorFlow tutorial and pastiche) or ``"chw"`` (Z = C*H*W, so that values do not
  grow with width or resolution).

  Args:
    features: ``(N, H, W, C)``.
    normalize: one of ``"none"``, ``"hw"``, ``"chw"``.

  Returns:
    ``(N, C, C)`` float32.
  """
  f = jnp.asarray(features, jnp.float32)
  n, h, w, c = f.shape
  return _gram(f.reshape(n, h * w, c), gram_divisor(normalize, h, w, c))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _gram(f: jax.Array, z: float) -> jax.Array:
  # The gradient F (G' + G'^T) / Z is written out so that it comes in F's own (N, P, C)
  # layout: autodiff's transposed product ran slower on XLA:CPU (bench/RESULTS.md). Like
  # the VGG's convolutions, this takes reverse-mode differentiation only.
  return jnp.einsum("npc,npd->ncd", f, f) / z


def _gram_fwd(f, z):
  return _gram(f, z), f


def _gram_bwd(z, f, ct):
  return (jnp.einsum("npd,ncd->npc", f, ct + jnp.swapaxes(ct, 1, 2)) / z,)


_gram.defvjp(_gram_fwd, _gram_bwd)


def guided_gram_matrix(features: ArrayLike, regions: ArrayLike, *, normalize: str = "hw") -> jax.Array:
  """Gram matrices restricted to soft regions (Gatys et al. 2017, spatial control).

  ``G[n, k, c, d] = sum_p m_k(p) F[n, p, c] F[n, p, d] / Z_k`` where ``m_k`` is region
  ``k`` resized (bilinearly) to the feature map and ``Z_k`` its area (``"hw"``), times
  ``C`` (``"chw"``), or 1 (``"none"``). With one all-ones region it equals
  :func:`gram_matrix`.

  Args:
    features: ``(N, H, W, C)``.
    regions: ``(K, H', W')`` masks in [0, 1] at any resolution.
    normalize: one of ``"none"``, ``"hw"``, ``"chw"``.

  Returns:
    ``(N, K, C, C)`` float32.
  """
  f = jnp.asarray(features, jnp.float32)
  n, h, w, c = f.shape
  r = jnp.asarray(regions, jnp.float32)
  m = jax.image.resize(r, (r.shape[0], h, w), "linear") if r.shape[1:] != (h, w) else r
  g = jnp.einsum("nhwc,khw,nhwd->nkcd", f, m, f)
  return guided_normalize(g, region_areas(m), c, normalize)


def region_areas(maps: jax.Array) -> jax.Array:
  """``(K,)`` areas of ``(K, h, w)`` region maps (at least 1e-6, so that an empty region divides safely)."""
  return jnp.maximum(jnp.sum(maps, axis=(1, 2)), 1e-6)


def _reduce(x: jax.Array, reduction: str) -> jax.Array:
  # reduction over everything but the batch axis
  return reduce_total(jnp.sum(x, axis=tuple(range(1, x.ndim))), math.prod(x.shape[1:]), reduction)


def gram_loss(g: jax.Array, target: ArrayLike, *, reduction: str) -> jax.Array:
  """One style layer's unweighted loss: the squared differences of ``(N, C', C)`` Grams and their
  ``(1, ...)`` target, reduced over the entries; ``(N,)``. :func:`style_loss` weights it and divides it by
  :func:`layer_divisor`."""
  d = g - jnp.asarray(target, jnp.float32).reshape(1, g.shape[1], g.shape[2])
  return _reduce(jnp.square(d), reduction)


def layer_divisor(layer_norm: str, h: int, w: int, c: int) -> float:
  """What a style layer's loss is divided by: 1, or its ``C*H*W`` under ``layer_norm="chw"``."""
  if layer_norm not in LAYER_NORMS:
    raise InputError(f"layer_norm must be 'none' or 'chw', not {layer_norm!r}")
  return float(h * w * c) if layer_norm == "chw" else 1.0


def content_loss(
  features: Mapping[str, ArrayLike],
  targets: Mapping[str, ArrayLike],
  layer_weights: Mapping[str, ArrayLike],
  *,
  reduction: str = "mean",
) -> jax.Array:
  """Weighted squared error between feature maps and their targets.

  ``sum_l w_l * reduce((F_l - P_l)^2)``; the paper uses ``reduction="half_sum"``.

  Args:
    features: layer name to ``(N, H, W, C)``.
    targets: layer name to ``(N, H, W, C)`` or ``(1, H, W, C)``.
    layer_weights: layer name to a scalar weight; names absent here are ignored.
    reduction: ``"mean"``, ``"sum"`` or ``"half_sum"`` over H, W, C.

  Returns:
    ``(N,)``.
  """
  total = 0.0
  for name, w in layer_weights.items():
    d = jnp.asarray(features[name], jnp.float32) - jnp.asarray(targets[name], jnp.float32)
    total = total + jnp.asarray(w, jnp.float32) * _reduce(jnp.square(d), reduction)
  return jnp.asarray(total, jnp.float32)


def style_loss(
  features: Mapping[str, ArrayLike],
  target_grams: Mapping[str, ArrayLike],
  layer_weights: Mapping[str, ArrayLike],
  *,
  normalize: str = "hw",
  reduction: str = "mean",
  layer_norm: str = "none",
  regions: ArrayLike | None = None,
) -> jax.Array:
  """Weighted squared error between Gram matrices and target Gram matrices.

  ``sum_l w_l * reduce((G_l - A_l)^2) / Z_l`` with ``G_l = gram_matrix(F_l, normalize)``
  and ``Z_l = 1`` (``layer_norm="none"``) or the layer's ``C*H*W`` (``"chw"``, the
  PyTorch course's formula with ``normalize="none", reduction="mean"``).
  The paper's ``E_l = sum (G - A)^2 / (4 N^2 M^2)`` is ``normalize="chw"``,
  ``reduction="sum"`` and ``w_l = 1/4`` times its layer weight.

  Args:
    features: layer name to ``(N, H, W, C)``.
    target_grams: layer name to ``(1, C, C)``, one target for every image of the batch,
      made with the same ``normalize``.
    layer_weights: layer name to a scalar weight.
    normalize: Gram normalisation, see :func:`gram_matrix`.
    reduction: ``"mean"``, ``"sum"`` or ``"half_sum"`` over the ``C x C`` entries.
    layer_norm: ``"none"`` or ``"chw"``.
    regions: ``(K, H', W')`` soft masks: then each target is ``(1, K, C, C)``, one
      style's Gram per region, compared with :func:`guided_gram_matrix`; ``reduction``
      runs over all ``K x C x C`` entries together.

  Returns:
    ``(N,)``.
  """
  total = 0.0
  for name, w in layer_weights.items():
    f = jnp.asarray(features[name])
    if regions is None:
      g = gram_matrix(f, normalize=normalize)
    else:
      g = guided_gram_matrix(f, regions, normalize=normalize).reshape(f.shape[0], -1, f.shape[-1])
    z = layer_divisor(layer_norm, *f.shape[1:])
    total = total + jnp.asarray(w, jnp.float32) * gram_loss(g, target_grams[name], reduction=reduction) / z
  return jnp.asarray(total, jnp.float32)


def total_variation(images: ArrayLike, *, kind: str = "l1", reduction: str = "sum") -> jax.Array:
  """Total variation of images: differences between neighbouring pixels.

  ``kind="l1", reduction="sum"`` equals ``tf.image.total_variation``.

  Args:
    images: ``(N, H, W, C)``.
    kind: ``"l1"`` (absolute differences) or ``"l2"`` (squared differences).
    reduction: ``"sum"`` or ``"mean"``; ``"mean"`` averages each direction over its
      own number of differences and adds the two.

  Returns:
    ``(N,)``.
  """
  x = jnp.asarray(images, jnp.float32)
  dh = x[:, 1:, :, :] - x[:, :-1, :, :]
  dw = x[:, :, 1:, :] - x[:, :, :-1, :]
  if kind == "l1":
    dh, dw = jnp.abs(dh), jnp.abs(dw)
  elif kind == "l2":
    dh, dw = jnp.square(dh), jnp.square(dw)
  else:
    raise InputError(f"kind must be one of {TV_KINDS}, not {kind!r}")
  if reduction not in TV_REDUCTIONS:
    raise InputError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
  return _reduce(dh, reduction) + _reduce(dw, reduction)


def temporal_loss(images: ArrayLike, previous: ArrayLike, weight: ArrayLike) -> jax.Array:
  """Ruder et al. (2016)'s temporal loss: the weighted mean squared difference to the previous output warped
  into this frame, ``sum c (x - w)^2 / (H W C)``, in the VGG's 0-255 pixel units (so that their weights,
  given beside neural-style's content and style weights, carry over).

  Args:
    images: ``(N, H, W, 3)`` in [0, 1].
    previous: ``(N, H, W, 3)`` or ``(1, H, W, 3)``, the previous output warped into each image.
    weight: ``(N, H, W, 1)`` or ``(1, H, W, 1)``, the per-pixel weight (the temporal weight times the
      motion's reliability).

  Returns:
    ``(N,)``.
  """
  x = jnp.asarray(images, jnp.float32)
  d = 255.0 * (x - jnp.asarray(previous, jnp.float32))
  total = jnp.sum(jnp.asarray(weight, jnp.float32) * jnp.square(d), axis=(1, 2, 3))
  return total / float(x.shape[1] * x.shape[2] * x.shape[3])


def coupling_loss(
  frames: ArrayLike, back: ArrayLike, back_weight: ArrayLike, forward: ArrayLike, forward_weight: ArrayLike
) -> jax.Array:
  """The temporal terms between neighbouring frames of a clip optimized jointly: each frame against the one
  before it and the one after it warped into it (bilinearly, differentiable in both frames), as
  :func:`temporal_loss` measures each, summed over the frames.

  Args:
    frames: ``(T, H, W, 3)`` in [0, 1].
    back: ``(T-1, H, W, 2)`` flows from frame t to frame t-1, t = 1..T-1.
    back_weight: ``(T-1, H, W, 1)``.
    forward: ``(T-1, H, W, 2)`` flows from frame t to frame t+1, t = 0..T-2.
    forward_weight: ``(T-1, H, W, 1)``.

  Returns:
    a scalar.
  """
  x = jnp.asarray(frames, jnp.float32)
  before = jax.vmap(warp)(x[:-1], back)  # frame t-1 seen from frame t
  after = jax.vmap(warp)(x[1:], forward)  # frame t+1 seen from frame t
  return jnp.sum(temporal_loss(x[1:], before, back_weight)) + jnp.sum(temporal_loss(x[:-1], after, forward_weight))


class LossWeights(NamedTuple):
  """The weights of a style-transfer objective, a pytree.

  Stack each leaf along a new leading axis to describe a sweep (see ``jax.vmap``).

  Attributes:
    content: alpha, the content weight.
    style: beta, the style weight.
    tv: the total-variation weight.
    content_layers: layer name to weight within the content loss.
    style_layers: layer name to weight within the style loss.
  """

  content: ArrayLike
  style: ArrayLike
  tv: ArrayLike
  content_layers: Mapping[str, ArrayLike]
  style_layers: Mapping[str, ArrayLike]


class LossSpec(NamedTuple):
  """The static (non-differentiable, hashable) form of the objective: how each term is normalised and reduced
  (:func:`gram_matrix`'s ``normalize``, :func:`content_loss`'s and :func:`style_loss`'s reductions, the style
  layer normalisation, :func:`total_variation`'s kind and reduction)."""

  gram_norm: GramNorm = "hw"
  content_reduction: Reduction = "mean"
  style_reduction: Reduction = "mean"
  style_layer_norm: LayerNorm = "none"
  tv_kind: TVKind = "l1"
  tv_reduction: TVReduction = "sum"


_DEFAULT_SPEC = LossSpec()


def total_loss(
  features: Mapping[str, ArrayLike],
  content_targets: Mapping[str, ArrayLike],
  style_grams: Mapping[str, ArrayLike],
  images: ArrayLike,
  weights: LossWeights,
  spec: LossSpec = _DEFAULT_SPEC,
  *,
  regions: ArrayLike | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """``alpha * content + beta * style + tv_weight * TV``.

  Args:
    features: the images' activations, ``(N, H, W, C)`` per layer.
    content_targets: the content image's activations, ``(1, H, W, C)`` per layer.
    style_grams: the style image's Gram matrices, ``(1, C, C)`` per layer.
    images: ``(N, H, W, 3)`` the images themselves, for the TV term.
    weights: a :class:`LossWeights`.
    spec: a :class:`LossSpec`.
    regions: optional ``(K, H, W)`` style regions (see :func:`style_loss`); then
      ``style_grams`` hold ``(1, K, C, C)``.

  Returns:
    ``(total, parts)``: ``total`` is ``(N,)``; ``parts`` maps ``"content"``,
    ``"style"`` and ``"tv"`` to their weighted ``(N,)`` values.
  """
  c = content_loss(features, content_targets, weights.content_layers, reduction=spec.content_reduction)
  s = style_loss(
    features,
    style_grams,
    weights.style_layers,
    normalize=spec.gram_norm,
    reduction=spec.style_reduction,
    layer_norm=spec.style_layer_norm,
    regions=regions,
  )
  tv = total_variation(images, kind=spec.tv_kind, reduction=spec.tv_reduction)
  return combine(c, s, tv, weights)


def combine(content: jax.Array, style: jax.Array, tv: jax.Array, weights: LossWeights):
  """``alpha * content + beta * style + tv_weight * TV`` and its weighted parts (``(N,)`` or scalars each)."""
  parts = {
    "content": jnp.asarray(weights.content, jnp.float32) * content,
    "style": jnp.asarray(weights.style, jnp.float32) * style,
    "tv": jnp.asarray(weights.tv, jnp.float32) * tv,
  }
  return parts["content"] + parts["style"] + parts["tv"], parts
