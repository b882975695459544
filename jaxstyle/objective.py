"""The objective: what an image is compared with (:class:`Targets`), its weighted loss, and
the one value-and-gradient every optimizer uses (whole-image autodiff, or the exact tiled
computation of :mod:`jaxstyle.tiled` when ``Static.tile`` is set)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero
from jax.typing import ArrayLike

from jaxstyle import compilation, losses, tiled, vgg
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
  """The hashable part of a run: what a compiled executable depends on besides shapes.

  Attributes:
    spec, pooling, layers: the objective's form.
    optimizer: the optimizer's settings.
    chunk: most steps per compiled chunk.
    tile: ``None`` for the whole-image objective, or the tile side in px of
      :func:`jaxstyle.tiled.tiled_value_and_grad` (a resolved ``--tile auto`` included).
    devices: with a tile, the devices its tiles are spread over (``None``: one).
    progress: with a tile, report every tile to :func:`jaxstyle.tiled.reporting`'s callback.
  """

  spec: losses.LossSpec
  pooling: str
  layers: tuple[str, ...]
  optimizer: OptimizerSettings
  chunk: int
  tile: int | None = None
  devices: tuple[jax.Device, ...] | None = None
  progress: bool = False

  @classmethod
  def from_config(cls, config: StyleConfig) -> Static:
    """The static part of ``config``; ``tile="auto"`` gives the untiled objective, which
    :func:`jaxstyle.optimize.optimize` replaces with a tile when the image does not fit."""
    tile = config.network.tile
    return cls(
      spec=config.loss.spec(),
      pooling=config.network.pooling,
      layers=config.layers,
      optimizer=config.optimizer,
      chunk=int(config.run.chunk),
      tile=tile if isinstance(tile, int) else None,
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
  With ``config.network.tile`` the VGG runs tile by tile (:func:`jaxstyle.tiled.tiled_features`;
  ``auto``: only for an image whose whole forward pass does not fit in memory), so that
  print-sized content and style images fit too. Pool gains (a pooling other than the
  native one) are measured on the whole content image.

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
  content_feats = _targets_of(_content_features, params, jnp.asarray(content), gains, key, net.tile, grams=False)
  parts = [_targets_of(_style_grams, params, jnp.asarray(s), gains, key, net.tile, grams=True) for s in styles]
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


# Tile side of the targets' forward pass under --tile auto, when the whole image does not fit:
# a forward pass holds little more than two maps of one window.
TARGET_TILE = 512
_WHOLE: dict = {}  # (fn, key, signature) -> the whole-image executable


def _targets_of(fn, params, image, gains, key, tile, *, grams: bool) -> dict[str, jax.Array]:
  """``fn`` (:func:`_content_features` or :func:`_style_grams`) of one ``(H, W, 3)`` image,
  or its tiled equal when ``tile`` is set (``"auto"``: when the whole image does not fit)."""
  if tile == "auto":
    sig = (fn, key, compilation._signature((params, image, gains)))
    if sig not in _WHOLE:
      _WHOLE[sig] = fn.lower(params, image[None], gains, key).compile()
    fit = compilation.memory_fit(_WHOLE[sig])
    if fit is None or fit[0] <= fit[2]:
      return _WHOLE[sig](params, image[None], gains)
    tile = TARGET_TILE
  if tile is None:
    return fn(params, image[None], gains, key)
  content_layers, style_layers, pooling, gram_norm = key
  if grams:
    return tiled.tiled_features(
      image, params, gram_layers=style_layers, pooling=pooling, tile=tile, gram_norm=gram_norm, pool_gains=gains
    )[1]
  return tiled.tiled_features(image, params, layers=content_layers, pooling=pooling, tile=tile, pool_gains=gains)[0]


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
  """The weighted loss of one image: of the whole image's activations, or tile by tile
  when ``static.tile`` is set (the same value up to float32 rounding).

  Differentiable in ``total`` either way; tiled, its VJP is the tiled gradient (a
  ``jax.custom_vjp``), so ``jax.value_and_grad`` of it (optax's zoom line search) holds one
  tile's activations at a time too.

  Args:
    image: ``(H, W, 3)`` RGB in [0, 1] units.
    params: VGG19 params.
    targets: from :func:`compute_targets`.
    weights: a :class:`~jaxstyle.losses.LossWeights` of scalars.
    static: the static settings.

  Returns:
    ``(total, parts)``: a scalar and a dict of weighted scalar parts.
  """
  if static.tile is not None:
    return _tiled_objective(static)(jnp.asarray(image), params, targets, weights)
  x = compose(jnp.asarray(image), targets)[None]
  feats = vgg.extract_features(params, x, static.layers, pooling=static.pooling, pool_gains=targets.pool_gains)
  total, parts = losses.total_loss(
    feats, targets.content, targets.style, x, weights, static.spec, regions=targets.regions
  )
  return total[0], {k: v[0] for k, v in parts.items()}


def value_and_grad_fn(
  params: Mapping, targets: Targets, weights: losses.LossWeights, *, static: Static
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
  """The objective's value and gradient as one function of the image, the only one the
  optimizers call: ``jax.value_and_grad`` of :func:`objective`, or with ``static.tile`` the
  tiled computation directly (two passes over tiles, no whole-image activations).

  Returns:
    ``f(image) -> (value, grad)`` for an ``(H, W, 3)`` image: a scalar and ``(H, W, 3)``.
  """
  if static.tile is None:
    return jax.value_and_grad(value_fn(params, targets, weights, static=static))

  def f(image):
    value, _, grad = tiled.tiled_value_and_grad(image, params, **_tiled_args(targets, weights, static))
    return value, grad

  return f


def value_fn(
  params: Mapping, targets: Targets, weights: losses.LossWeights, *, static: Static
) -> Callable[[jax.Array], jax.Array]:
  """``f(image) -> total``: :func:`objective`'s total as a differentiable function of the image."""
  return lambda image: objective(image, params, targets, weights, static=static)[0]


def _tiled_args(targets: Targets, weights: losses.LossWeights, static: Static) -> dict:
  """The keyword arguments of :func:`jaxstyle.tiled.tiled_value_and_grad` for this objective."""
  return dict(
    content_targets=targets.content,
    style_grams=targets.style,
    weights=weights,
    spec=static.spec,
    layers=static.layers,
    pooling=static.pooling,
    tile=static.tile,
    pool_gains=targets.pool_gains,
    regions=targets.regions,
    mask=targets.mask,
    anchor=targets.anchor,
    devices=static.devices,
    progress=static.progress,
  )


@functools.lru_cache(maxsize=64)
def _tiled_objective(static: Static) -> Callable:
  """``f(image, params, targets, weights) -> (total, parts)`` by tiles, whose VJP in ``total``
  is the tiled gradient: the forward pass of ``jax.value_and_grad`` runs both passes over
  the tiles, a plain call only the first. Differentiating a part is refused (the tiled
  gradient is the total's only)."""

  @jax.custom_vjp
  def f(image, params, targets, weights):
    return tiled.tiled_value(image, params, **_tiled_args(targets, weights, static))

  def fwd(image, params, targets, weights):
    image, params, targets, weights = _primal_values((image, params, targets, weights))
    total, parts, grad = tiled.tiled_value_and_grad(image, params, **_tiled_args(targets, weights, static))
    return (total, parts), grad

  def bwd(grad, cotangents):
    ct_total, ct_parts = cotangents
    if not all(isinstance(c, SymbolicZero) for c in jax.tree.leaves(ct_parts, is_leaf=_is_zero)):
      raise NotImplementedError("the tiled objective is differentiable in its total only, not in its parts")
    image_ct = None if isinstance(ct_total, SymbolicZero) else ct_total * grad
    return image_ct, None, None, None  # params, targets and weights are constants here

  f.defvjp(fwd, bwd, symbolic_zeros=True)
  return f


def _is_zero(x) -> bool:
  return isinstance(x, SymbolicZero)


def _primal_values(tree):
  # with symbolic_zeros=True, fwd receives every leaf wrapped with whether it is perturbed
  return jax.tree.map(lambda a: a.value, tree, is_leaf=lambda a: isinstance(a, CustomVJPPrimal))
