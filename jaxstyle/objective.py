"""The objective: what an image is compared with (:class:`Targets`) and its weighted loss."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxstyle import losses, vgg
from jaxstyle.config import OptimizerSettings, StyleConfig
from jaxstyle.errors import InputError


class Targets(NamedTuple):
  """What the objective matches: content activations ``(1, H, W, C)`` and style Gram
  matrices ``(1, C, C)``, by canonical layer name. With a ``mask`` (``(H, W, 1)``, 1 =
  stylize), the optimized variable ``z`` becomes the image ``mask * z + (1 - mask) *
  anchor``, so the unmasked region stays the ``anchor`` (the content) exactly. With
  ``regions`` (``(K, H, W)``), style ``k`` applies in region ``k`` and ``style`` holds
  ``(1, K, C, C)`` Grams, one per style image. ``pool_gains`` (``(5,)``) rescale the
  pool outputs when the pooling is not the one the weights were calibrated with."""

  content: dict[str, jax.Array]
  style: dict[str, jax.Array]
  mask: jax.Array | None = None
  anchor: jax.Array | None = None
  regions: jax.Array | None = None
  pool_gains: jax.Array | None = None


def compose(z: jax.Array, targets: Targets) -> jax.Array:
  """The image a variable ``z`` stands for (``z`` itself without a mask)."""
  if targets.mask is None:
    return z
  lead = (1,) * (jnp.ndim(z) - 3)  # z may carry a batch axis (a sweep's images)
  mask = targets.mask.reshape(lead + targets.mask.shape)
  anchor = targets.anchor.reshape(lead + targets.anchor.shape)
  return mask * z + (1.0 - mask) * anchor


class Static(NamedTuple):
  """The hashable part of a run: what a compiled executable depends on besides shapes."""

  spec: losses.LossSpec
  pooling: str
  layers: tuple[str, ...]
  optimizer: OptimizerSettings
  chunk: int

  @classmethod
  def from_config(cls, config: StyleConfig) -> Static:
    return cls(
      spec=config.loss.spec(),
      pooling=config.network.pooling,
      layers=config.layers,
      optimizer=config.optimizer,
      chunk=int(config.run.chunk),
    )


def compute_targets(
  params: Mapping,
  content: ArrayLike,
  style: ArrayLike | Sequence[ArrayLike],
  config: StyleConfig,
  *,
  per_style: bool = False,
) -> Targets:
  """Content activations and style Grams, computed once.

  Several style images give one target: the weighted mean of their Gram matrices with
  ``config.images.style_blend`` (equal weights by default), as in jcjohnson's neural-style.

  Args:
    params: VGG19 params, prepared for the run's convolution algorithm
      (:func:`jaxstyle.vgg.prepare`) so that targets and objective see the same network.
    content: ``(H, W, 3)`` RGB in [0, 1].
    style: ``(H', W', 3)`` RGB in [0, 1], or a list of such images.
    config: the settings (layers, pooling, Gram normalisation, blend).
    per_style: keep one Gram per style image, stacked ``(1, K, C, C)``, for regions.

  Returns:
    :class:`Targets`.
  """
  styles = list(style) if isinstance(style, (list, tuple)) else [style]
  blend = style_blend_weights(config.images.style_blend, len(styles))
  key = _target_key(config)
  net = config.network
  gains = None
  if net.native_pooling is not None and net.native_pooling != net.pooling:
    gains = vgg.pool_gains(params, jnp.asarray(content)[None], native=net.native_pooling, pooling=net.pooling)
  content_feats = _content_features(params, jnp.asarray(content)[None], gains, key)
  parts = [_style_grams(params, jnp.asarray(s)[None], gains, key) for s in styles]
  if per_style:
    grams = {k: jnp.stack([g[k][0] for g in parts])[None] for k in parts[0]}
  else:
    grams = {k: sum(w * g[k] for w, g in zip(blend, parts, strict=True)) for k in parts[0]}
  return Targets(content_feats, grams, pool_gains=gains)


def style_blend_weights(blend: Sequence[float] | None, n: int) -> list[float]:
  """The blend weights of ``n`` style images, normalised to sum to 1 (``None``: equal)."""
  w = list(blend) if blend is not None else [1.0] * n
  if len(w) != n:
    raise InputError(f"style_blend has {len(w)} weights for {n} style images")
  return [v / sum(w) for v in w]


def _target_key(config: StyleConfig) -> tuple:
  return (
    tuple(vgg.canonical_layer(n) for n, _ in config.loss.content_layers),
    tuple(vgg.canonical_layer(n) for n, _ in config.loss.style_layers),
    config.network.pooling,
    config.loss.gram_norm,
  )


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


def objective(
  image: ArrayLike,
  params: Mapping,
  targets: Targets,
  weights: losses.LossWeights,
  *,
  static: Static,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted loss of one image.

  Args:
    image: ``(H, W, 3)`` RGB in [0, 1] units.
    params: VGG19 params.
    targets: from :func:`compute_targets`.
    weights: a :class:`~jaxstyle.losses.LossWeights` of scalars.
    static: the static settings.

  Returns:
    ``(total, parts)``: a scalar and a dict of weighted scalar parts.
  """
  x = compose(jnp.asarray(image), targets)[None]
  feats = vgg.extract_features(params, x, static.layers, pooling=static.pooling, pool_gains=targets.pool_gains)
  total, parts = losses.total_loss(
    feats, targets.content, targets.style, x, weights, static.spec, regions=targets.regions
  )
  return total[0], {k: v[0] for k, v in parts.items()}
