"""What an image is compared with: the objective's form, and the content and style targets computed once.

:class:`Form` is the hashable description of an objective (its loss forms, pooling and layers), shared by
optimization and by training: what compiled programs depend on besides shapes and weights. :class:`Targets`
holds the arrays: the content's activations and the style's Gram matrices, plus an optional mask, region
maps and pool gains. :func:`compute_targets` makes them, whole or tile by tile for print-sized images.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.nets import vgg
from jaxstyle.objective import losses, tiled
from jaxstyle.runtime import compilation, memory


class Form(NamedTuple):
  """The hashable form of an objective.

  Attributes:
    spec: the loss forms (:class:`~jaxstyle.objective.losses.LossSpec`).
    pooling: the VGG's pooling, ``"max"``, ``"avg"`` or ``"maxblur"``.
    content_layers: canonical names of the content layers.
    style_layers: canonical names of the style layers.
    native_pooling: the pooling the weights were calibrated for; when it is not ``pooling``, pool outputs are
      rescaled by gains measured on the content (:func:`jaxstyle.nets.vgg.pool_gains`).
  """

  spec: losses.LossSpec
  pooling: str
  content_layers: tuple[str, ...]
  style_layers: tuple[str, ...]
  native_pooling: str | None = None

  @property
  def layers(self) -> tuple[str, ...]:
    """Every layer the objective reads: content then style, each once."""
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))

  @property
  def rescaled(self) -> bool:
    """Whether pool outputs are rescaled (a pooling other than the native one)."""
    return self.native_pooling is not None and self.native_pooling != self.pooling


class Temporal(NamedTuple):
  """A temporal target (Ruder et al. 2016): the previous output warped into this frame, ``(H, W, 3)``, and
  the per-pixel weight of the difference to it, ``(H, W, 1)`` (the temporal weight times the reliability)."""

  previous: jax.Array
  weight: jax.Array


class Coupling(NamedTuple):
  """The temporal terms between the frames of a clip optimized jointly (a ``(T, H, W, 3)`` variable): flows
  from each frame to the one before (``back``, ``(T-1, H, W, 2)``, frames 1..T-1) and to the one after
  (``forward``, frames 0..T-2), each with its per-pixel weight ``(T-1, H, W, 1)`` (the temporal weight times
  the reliability; 0 across a scene cut). See :func:`jaxstyle.objective.losses.coupling_loss`."""

  back: jax.Array
  back_weight: jax.Array
  forward: jax.Array
  forward_weight: jax.Array


class Targets(NamedTuple):
  """What the objective matches: content activations ``(1, H, W, C)`` (``(N, ...)`` for a batch of contents)
  and style Gram matrices ``(1, C, C)``, by canonical layer name. With a ``mask`` (``(H, W, 1)``, 1 =
  stylize), the optimized variable ``z`` becomes the image ``mask * z + (1 - mask) * anchor``, so the
  unmasked region stays the ``anchor`` (the content) exactly. With ``regions`` (``(K, H, W)``), style ``k``
  applies in region ``k`` and ``style`` holds ``(1, K, C, C)`` Grams, one per style image. ``pool_gains``
  (``(5,)``) rescale the pool outputs when the pooling is not the one the weights were calibrated with.
  ``temporal`` (a :class:`Temporal`) adds Ruder et al.'s temporal term for a video frame (for a clip: its first
  frame, against the output before the clip). For a clip optimized jointly, ``content`` holds one row per frame
  (``(T, h, w, C)``) and ``coupling`` (a :class:`Coupling`) ties neighbouring frames."""

  content: dict[str, jax.Array]
  style: dict[str, jax.Array]
  mask: jax.Array | None = None
  anchor: jax.Array | None = None
  regions: jax.Array | None = None
  pool_gains: jax.Array | None = None
  temporal: Temporal | None = None
  coupling: Coupling | None = None


def compose(z: jax.Array, targets: Targets) -> jax.Array:
  """The image a variable ``z`` stands for (``z`` itself without a mask)."""
  if targets.mask is None:
    return z
  lead = (1,) * (jnp.ndim(z) - 3)  # z may carry a batch axis (a sweep's images, a clip's frames)
  mask = targets.mask.reshape(lead + targets.mask.shape)
  anchor = targets.anchor  # one image, or a clip's frames (each keeps its own)
  anchor = anchor if anchor.ndim == jnp.ndim(z) else anchor.reshape(lead + anchor.shape)
  return mask * z + (1.0 - mask) * anchor


def compute_targets(
  params: Mapping,
  content: ArrayLike,
  style: ArrayLike | Sequence[ArrayLike],
  form: Form,
  *,
  blend: Sequence[float] | None = None,
  tile: int | str | None = None,
  per_style: bool = False,
) -> Targets:
  """Content activations and style Grams, computed once.

  Several style images give one target: the weighted mean of their Gram matrices with ``blend`` (equal
  weights by default), as in jcjohnson's neural-style. With ``tile`` the VGG runs tile by tile
  (:func:`jaxstyle.objective.tiled.tiled_features`; ``"auto"``: only for an image whose whole forward pass does
  not fit in memory), so that print-sized content and style images fit too. Pool gains (a pooling other than
  the native one) are measured on the whole content image.

  Args:
    params: VGG19 params, prepared for the run's convolution algorithm
      (:func:`jaxstyle.nets.vgg.prepare`) so that targets and objective see the same network.
    content: ``(H, W, 3)`` RGB in [0, 1].
    style: ``(H', W', 3)`` RGB in [0, 1], or a list of such images.
    form: the objective's form.
    blend: weights of several style images (normalised to sum to 1; ``None``: equal).
    tile: ``None``, a tile side in px, or ``"auto"``.
    per_style: keep one Gram per style image, stacked ``(1, K, C, C)``, for regions.

  Returns:
    :class:`Targets`.
  """
  gains = None
  if form.rescaled:
    gains = vgg.pool_gains(params, jnp.asarray(content)[None], native=form.native_pooling, pooling=form.pooling)
  return Targets(
    content_targets(params, content, form, gains=gains, tile=tile),
    style_targets(params, style, form, blend=blend, gains=gains, tile=tile, per_style=per_style),
    pool_gains=gains,
  )


def content_targets(
  params: Mapping, content: ArrayLike, form: Form, *, gains: ArrayLike | None = None, tile: int | str | None = None
) -> dict[str, jax.Array]:
  """The content layers' activations of one ``(H, W, 3)`` image, ``(1, h, w, C)`` each (see
  :func:`compute_targets`)."""
  return _targets_of(_content_features, params, jnp.asarray(content), gains, _target_key(form), tile, grams=False)


def style_targets(
  params: Mapping,
  style: ArrayLike | Sequence[ArrayLike],
  form: Form,
  *,
  blend: Sequence[float] | None = None,
  gains: ArrayLike | None = None,
  tile: int | str | None = None,
  per_style: bool = False,
) -> dict[str, jax.Array]:
  """The style layers' Gram matrices of one or several ``(H, W, 3)`` images, blended (``(1, C, C)`` each) or,
  with ``per_style``, stacked (``(1, K, C, C)``); see :func:`compute_targets`."""
  styles = list(style) if isinstance(style, (list, tuple)) else [style]
  weights = style_blend_weights(blend, len(styles))
  key = _target_key(form)
  parts = [_targets_of(_style_grams, params, jnp.asarray(s), gains, key, tile, grams=True) for s in styles]
  if per_style:
    return {k: jnp.stack([g[k][0] for g in parts])[None] for k in parts[0]}
  return {k: sum(w * g[k] for w, g in zip(weights, parts, strict=True)) for k in parts[0]}


def style_blend_weights(blend: Sequence[float] | None, n: int) -> list[float]:
  """The blend weights of ``n`` style images, normalised to sum to 1 (``None``: equal)."""
  w = list(blend) if blend is not None else [1.0] * n
  if len(w) != n:
    raise InputError(f"style_blend has {len(w)} weights for {n} style images")
  return [v / sum(w) for v in w]


def _target_key(form: Form) -> tuple:
  # what the targets' programs depend on: fewer recompilations than the whole form
  return (form.content_layers, form.style_layers, form.pooling, form.spec.gram_norm)


# Tile side of the targets' forward pass under --tile auto, when the whole image does not fit:
# a forward pass holds little more than two maps of one window.
TARGET_TILE = 512
_WHOLE: dict = {}  # (fn, key, signature) -> the whole-image executable


def _targets_of(fn, params, image, gains, key, tile, *, grams: bool) -> dict[str, jax.Array]:
  """``fn`` (:func:`_content_features` or :func:`_style_grams`) of one ``(H, W, 3)`` image, or its tiled equal
  when ``tile`` is set (``"auto"``: when the whole image does not fit)."""
  batch = image[None]
  if tile == "auto":
    sig = (fn, key, compilation.signature((params, batch, gains)))
    if sig not in _WHOLE:
      _WHOLE[sig] = fn.lower(params, batch, gains, key).compile()
    fit = memory.memory_fit(_WHOLE[sig])
    if fit is None or fit[0] <= fit[2]:
      return _WHOLE[sig](params, batch, gains)
    tile = TARGET_TILE
  if tile is None:
    return fn(params, batch, gains, key)
  content_layers, style_layers, pooling, gram_norm = key
  if grams:
    return tiled.tiled_features(
      batch[0], params, gram_layers=style_layers, pooling=pooling, tile=tile, gram_norm=gram_norm, pool_gains=gains
    )[1]
  return tiled.tiled_features(batch[0], params, layers=content_layers, pooling=pooling, tile=tile, pool_gains=gains)[0]


@functools.partial(jax.jit, static_argnums=3)
def _content_features(params, content, gains, key) -> dict[str, jax.Array]:
  content_layers, _, pooling, _ = key
  if not content_layers:
    return {}
  return vgg.extract_features(params, content, content_layers, pooling=pooling, pool_gains=gains)


@functools.partial(jax.jit, static_argnums=3)
def _style_grams(params, style, gains, key) -> dict[str, jax.Array]:
  _, style_layers, pooling, gram_norm = key
  if not style_layers:
    return {}
  feats = vgg.extract_features(params, style, style_layers, pooling=pooling, pool_gains=gains)
  return {k: losses.gram_matrix(v, normalize=gram_norm) for k, v in feats.items()}
