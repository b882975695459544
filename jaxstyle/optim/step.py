"""One optimizer step on one image, the same for every optimizer, and a compiled chunk of steps.

The image is the optimization variable, ``(H, W, 3)`` RGB in [0, 1] units. Adam, optax's zoom L-BFGS and
jaxstyle's backtracking L-BFGS (:mod:`jaxstyle.optim.lbfgs`) are all ``optax.GradientTransformationExtraArgs``
driven by the same :func:`run_step`, and all get the objective's value and gradient from one function
(:func:`jaxstyle.objective.loss.value_and_grad_fn`): whole-image autodiff, or tiled the exact tile-by-tile
computation. Every piece is written for one image and ``jax.vmap``-ed for batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxstyle.objective.loss import WHOLE, Tiling, objective, value_and_grad_fn, value_fn
from jaxstyle.objective.targets import Form
from jaxstyle.optim import lbfgs
from jaxstyle.settings.style import OptimizerSettings, StyleConfig


class Static(NamedTuple):
  """The hashable part of a run: what a compiled executable depends on besides shapes.

  Attributes:
    form: the objective's form.
    optimizer: the optimizer's settings.
    chunk: most steps per compiled chunk.
    tiling: whole or tiled (a resolved ``--tile auto`` included), and the tiles' devices.
  """

  form: Form
  optimizer: OptimizerSettings
  chunk: int
  tiling: Tiling = WHOLE

  @classmethod
  def from_config(cls, config: StyleConfig) -> Static:
    """The static part of ``config``; ``tile="auto"`` gives the untiled objective, which
    :func:`jaxstyle.optim.loop.optimize` replaces with a tile when the image does not fit."""
    tile = config.network.tile
    return cls(config.form(), config.optimizer, int(config.run.chunk), Tiling(tile if isinstance(tile, int) else None))

  @property
  def tile(self) -> int | None:
    """The tile side, or ``None`` for the whole image."""
    return self.tiling.tile

  def tiled(self, tile: int | None, **placement) -> Static:
    """A copy with another tile (and ``devices``, ``progress``)."""
    return self._replace(tiling=self.tiling._replace(tile=tile, **placement))


# Which arguments carry a batch axis under vmap: images, optimizer states and loss weights do; VGG params,
# targets and the step count are shared.
BATCH_AXES = {
  "init": (0, None, None, 0),
  "chunk": (0, 0, None, None, None, 0),
}


def optimizer(settings: OptimizerSettings) -> optax.GradientTransformationExtraArgs:
  """The optax transformation for ``settings``: Adam, optax's zoom L-BFGS or :func:`jaxstyle.lbfgs.lbfgs`.

  All three take ``update(grad, state, params, value=..., grad=..., **extra_args(...))``.
  """
  if settings.kind == "adam":
    return optax.with_extra_args_support(optax.adam(settings.lr, b1=settings.b1, b2=settings.b2, eps=settings.eps))
  if settings.line_search == "zoom":
    return optax.lbfgs(learning_rate=None if settings.lr == 1.0 else settings.lr, memory_size=settings.memory)
  return lbfgs.lbfgs(memory_size=settings.memory, learning_rate=settings.lr)


def extra_args(settings: OptimizerSettings, value: Callable, value_and_grad: Callable) -> dict[str, Callable]:
  """The extra arguments of :func:`optimizer`'s ``update``: the objective, and for the
  backtracking line search the one value-and-gradient function it evaluates trials with.

  optax's zoom line search takes ``value_fn`` alone (it refuses arguments ``value_fn`` does
  not take) and differentiates it with ``jax.value_and_grad``; tiled, that is the tiled
  gradient too, since :func:`jaxstyle.objective.loss.objective`'s VJP is.
  """
  if settings.kind == "lbfgs" and settings.line_search == "zoom":
    return {"value_fn": value}
  return {"value_fn": value, "value_and_grad_fn": value_and_grad}


def _carries_value(settings: OptimizerSettings) -> bool:
  # L-BFGS states hold the loss and gradient at the iterate: a step reads them instead of
  # evaluating again (its line search already did), which also avoids
  # optax.value_and_grad_from_state's lax.cond, whose branches would both run under vmap.
  return settings.kind == "lbfgs"


def init_state(image, params, targets, weights, *, static: Static):
  """The optimizer state for one ``(H, W, 3)`` image (for L-BFGS, with the loss and
  gradient at ``image``)."""
  state = optimizer(static.optimizer).init(image)
  if _carries_value(static.optimizer):
    value, grad = value_and_grad_fn(params, targets, weights, form=static.form, tiling=static.tiling)(image)
    state = optax.tree.set(state, value=value, grad=grad)
  return state


def run_step(image, state, params, targets, weights, *, static: Static):
  """One optimizer step on one ``(H, W, 3)`` image, the same for every optimizer.

  With ``clip`` the image is projected onto [0, 1] after the step; an L-BFGS state then
  gets the loss and gradient at the projected image, so the next step starts from it.

  Returns:
    ``(image, state, value)``: ``value`` is the loss at the image the step started from.
  """
  settings = static.optimizer
  f = value_fn(params, targets, weights, form=static.form, tiling=static.tiling)
  vg = value_and_grad_fn(params, targets, weights, form=static.form, tiling=static.tiling)
  if _carries_value(settings):
    value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
  else:
    value, grad = vg(image)
  updates, state = optimizer(settings).update(grad, state, image, value=value, grad=grad, **extra_args(settings, f, vg))
  image = optax.apply_updates(image, updates)
  if settings.clip:
    image = jnp.clip(image, 0.0, 1.0)
    if _carries_value(settings):
      v, g = vg(image)
      state = optax.tree.set(state, value=v, grad=g)
  return image, state, value


def evaluate(image, params, targets, weights, *, static: Static) -> dict[str, jax.Array]:
  """The weighted loss parts of one image (a forward pass only; tile by tile when tiled)."""
  return objective(image, params, targets, weights, form=static.form, tiling=static.tiling)[1]


def run_chunk(image, state, num_steps, params, targets, weights, *, static: Static):
  """Runs ``num_steps <= static.chunk`` steps on one image in one XLA loop.

  Returns:
    ``(image, state, values, parts)``: ``values`` is ``(static.chunk,)``, the loss at
    the iterate each step started from (entries past ``num_steps`` are NaN); ``parts``
    the weighted loss parts at the returned image.
  """

  def body(i, carry):
    x, s, values = carry
    x, s, value = run_step(x, s, params, targets, weights, static=static)
    return x, s, values.at[i].set(value)

  values = jnp.full((static.chunk,), jnp.nan, jnp.float32)
  image, state, values = jax.lax.fori_loop(0, num_steps, body, (image, state, values))
  return image, state, values, evaluate(image, params, targets, weights, static=static)
