"""The weighted loss of an image, and the one value-and-gradient every optimizer uses.

:func:`objective` is the loss of one image against :class:`~jaxstyle.objective.targets.Targets`: the VGG's
activations of the whole image through :func:`jaxstyle.objective.losses.total_loss`, or, with a
:class:`Tiling`, the same value computed tile by tile (:mod:`jaxstyle.objective.tiled`), whose memory is
bounded by the tile. :func:`batch_loss` is the same objective for a batch of images, each against its own
content (training a feed-forward network).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.nets import vgg
from jaxstyle.objective import losses, tiled
from jaxstyle.objective.targets import Form, Targets, compose


class Tiling(NamedTuple):
  """How the objective is computed: whole (``tile=None``) or tile by tile.

  Attributes:
    tile: the tile side in px of :func:`jaxstyle.objective.tiled.tiled_value_and_grad`, or ``None``.
    devices: with a tile, the devices its tiles are spread over (``None``: one).
    progress: with a tile, report every tile to :func:`jaxstyle.objective.tiled.reporting`'s callback.
  """

  tile: int | None = None
  devices: tuple[jax.Device, ...] | None = None
  progress: bool = False


WHOLE = Tiling()


def objective(
  image: ArrayLike,
  params: Mapping,
  targets: Targets,
  weights: losses.LossWeights,
  *,
  form: Form,
  tiling: Tiling = WHOLE,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted loss of one image: of the whole image's activations, or tile by tile when
  ``tiling.tile`` is set (the same value up to float32 rounding).

  Differentiable in ``total`` either way; tiled, its VJP is the tiled gradient (a ``jax.custom_vjp``), so
  ``jax.value_and_grad`` of it (optax's zoom line search) holds one tile's activations at a time too.

  Args:
    image: ``(H, W, 3)`` RGB in [0, 1] units, or a clip's ``(T, H, W, 3)`` frames optimized jointly (then the
      sum over its frames, and ``targets.coupling``'s terms between them).
    params: VGG19 params.
    targets: from :func:`~jaxstyle.objective.targets.compute_targets`.
    weights: a :class:`~jaxstyle.objective.losses.LossWeights` of scalars.
    form: the objective's form.
    tiling: whole or tiled.

  Returns:
    ``(total, parts)``: a scalar and a dict of weighted scalar parts.
  """
  if tiling.tile is not None:
    _untiled_only(targets)
    return _tiled_objective(form, tiling)(jnp.asarray(image), params, targets, weights)
  z = jnp.asarray(image)
  x = compose(z, targets) if z.ndim == 4 else compose(z, targets)[None]
  total, parts = _loss(x, params, targets, weights, form)
  total, parts = jnp.sum(total), {k: jnp.sum(v) for k, v in parts.items()}  # one frame's sum is that frame's
  if targets.coupling is None:
    return total, parts
  c = losses.coupling_loss(x, *targets.coupling)
  return total + c, {**parts, "temporal": parts.get("temporal", 0.0) + c}


def batch_loss(
  images: ArrayLike,
  contents: ArrayLike,
  params: Mapping,
  targets: Targets,
  weights: losses.LossWeights,
  *,
  form: Form,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The objective of each image of a batch against its own content: the content targets are the contents'
  activations (held constant), the style targets ``targets.style``.

  Args:
    images: ``(N, H, W, 3)``, e.g. a network's outputs.
    contents: ``(N, H, W, 3)``, what they were made from.
    params: VGG19 params.
    targets: the style targets (``content`` is not read; no mask or regions).
    weights: the loss weights.
    form: the objective's form.

  Returns:
    ``(total, parts)``: ``(N,)`` and the weighted ``(N,)`` parts.
  """
  content = {}
  if form.content_layers:
    feats = vgg.extract_features(
      params, contents, form.content_layers, pooling=form.pooling, pool_gains=targets.pool_gains
    )
    content = jax.lax.stop_gradient(feats)
  return _loss(jnp.asarray(images), params, targets._replace(content=content), weights, form)


def _loss(x: jax.Array, params: Mapping, targets: Targets, weights: losses.LossWeights, form: Form):
  feats = vgg.extract_features(params, x, form.layers, pooling=form.pooling, pool_gains=targets.pool_gains)
  total, parts = losses.total_loss(
    feats, targets.content, targets.style, x, weights, form.spec, regions=targets.regions
  )
  if targets.temporal is None:
    return total, parts
  t = losses.temporal_loss(x[:1], targets.temporal.previous[None], targets.temporal.weight[None])
  t = jnp.pad(t, (0, x.shape[0] - 1))  # a clip's first frame alone has an output before it
  return total + t, {**parts, "temporal": t}


def value_and_grad_fn(
  params: Mapping, targets: Targets, weights: losses.LossWeights, *, form: Form, tiling: Tiling = WHOLE
) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
  """The objective's value and gradient as one function of the image, the only one the optimizers call:
  ``jax.value_and_grad`` of :func:`objective`, or tiled the tiled computation directly (two passes over the
  tiles, no whole-image activations).

  Returns:
    ``f(image) -> (value, grad)`` for an ``(H, W, 3)`` image: a scalar and ``(H, W, 3)``.
  """
  if tiling.tile is None:
    return jax.value_and_grad(value_fn(params, targets, weights, form=form, tiling=tiling))
  _untiled_only(targets)

  def f(image):
    value, _, grad = tiled.evaluate(image, params, _problem(targets, weights, form, tiling), grad=True)
    return value, grad

  return f


def value_fn(
  params: Mapping, targets: Targets, weights: losses.LossWeights, *, form: Form, tiling: Tiling = WHOLE
) -> Callable[[jax.Array], jax.Array]:
  """``f(image) -> total``: :func:`objective`'s total as a differentiable function of the image."""
  return lambda image: objective(image, params, targets, weights, form=form, tiling=tiling)[0]


def _untiled_only(targets: Targets) -> None:
  if targets.temporal is not None or targets.coupling is not None:
    raise InputError("a video frame's temporal term runs on whole frames; leave --tile out")


def _problem(targets: Targets, weights: losses.LossWeights, form: Form, tiling: Tiling) -> tiled.Problem:
  """This objective as :mod:`jaxstyle.objective.tiled` computes it."""
  return tiled.Problem(
    content_targets=targets.content,
    style_grams=targets.style,
    weights=weights,
    spec=form.spec,
    layers=form.layers,
    pooling=form.pooling,
    tile=tiling.tile,
    pool_gains=targets.pool_gains,
    regions=targets.regions,
    mask=targets.mask,
    anchor=targets.anchor,
    devices=tiling.devices,
    progress=tiling.progress,
  )


@functools.lru_cache(maxsize=64)
def _tiled_objective(form: Form, tiling: Tiling) -> Callable:
  """``f(image, params, targets, weights) -> (total, parts)`` by tiles, whose VJP in ``total`` is the tiled
  gradient: the forward pass of ``jax.value_and_grad`` runs both passes over the tiles, a plain call only the
  first. Differentiating a part is refused (the tiled gradient is the total's only)."""

  @jax.custom_vjp
  def f(image, params, targets, weights):
    return tiled.evaluate(image, params, _problem(targets, weights, form, tiling), grad=False)

  def fwd(image, params, targets, weights):
    image, params, targets, weights = _primal_values((image, params, targets, weights))
    total, parts, grad = tiled.evaluate(image, params, _problem(targets, weights, form, tiling), grad=True)
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
