"""L-BFGS with a backtracking (Armijo) line search that stays cheap under ``jax.vmap``.

optax's ``lbfgs`` uses a zoom line search whose ``lax.cond`` branches become selects
under ``vmap``, evaluating every branch's loss and gradient: a sweep of two members then
costs ten times one. Here each step tries the full L-BFGS step with one value-and-grad
and only halves it, in a ``while_loop`` that runs while any member still needs it, when
the Armijo condition fails. All trials share that one loop, so the objective appears
once in the compiled step. The direction is optax's ``scale_by_lbfgs``; the first step
is scaled by ``min(1, 1/|g|_1)``, as torch's L-BFGS does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class State(NamedTuple):
  """L-BFGS memory plus the loss and gradient at the current iterate."""

  direction: optax.OptState
  value: jax.Array
  grad: jax.Array
  count: jax.Array
  backtracks: jax.Array


class _Search(NamedTuple):
  """The line search's loop state."""

  t_try: jax.Array  # the next trial step
  t: jax.Array  # the accepted step, with its loss and gradient
  v: jax.Array
  gr: jax.Array
  ok: jax.Array
  k: jax.Array  # failed trials (halvings)
  j: jax.Array  # doublings tried
  grow: jax.Array  # the next trial is a doubling
  done: jax.Array


def init(x: jax.Array, value: jax.Array, grad: jax.Array, *, memory_size: int = 10) -> State:
  """State at ``x`` whose loss and gradient are ``value`` and ``grad``."""
  direction = optax.scale_by_lbfgs(memory_size=memory_size).init(x)
  return State(direction, jnp.asarray(value, jnp.float32), grad, jnp.int32(0), jnp.int32(0))


def step(
  x: jax.Array,
  state: State,
  value_and_grad: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
  *,
  memory_size: int = 10,
  learning_rate: float = 1.0,
  max_backtracks: int = 20,
  max_extrapolations: int = 10,
  c1: float = 1e-4,
  c2: float = 0.9,
) -> tuple[jax.Array, State]:
  """One L-BFGS step from ``x``.

  Args:
    x: the iterate (any shape).
    state: from :func:`init` or the previous step.
    value_and_grad: ``x -> (scalar loss, gradient like x)``.
    memory_size: L-BFGS correction pairs (must match :func:`init`).
    learning_rate: scales every trial step.
    max_backtracks: halvings before the step is given up (then ``x`` is kept and the
      memory reset, so the next step is steepest descent).
    max_extrapolations: doublings of an accepted step while the loss still falls
      steeply along it (weak Wolfe curvature condition unmet).
    c1: Armijo's sufficient-decrease constant.
    c2: the curvature constant of the weak Wolfe condition.

  Returns:
    ``(x_new, state)``; ``state.value`` and ``state.grad`` are at ``x_new``.
  """
  g = state.grad
  d, dstate, slope, t0 = _direction(x, state, memory_size=memory_size, learning_rate=learning_rate)
  res = _line_search(x, d, slope, t0, state, value_and_grad, max_backtracks, max_extrapolations, c1, c2)
  t, v, gr, ok, k = res.t, res.v, res.gr, res.ok, jnp.minimum(res.k, max_backtracks)
  # Failure: stay put and forget the curvature pairs, so the next step is steepest descent.
  fresh = optax.scale_by_lbfgs(memory_size=memory_size).init(x)
  x_new = jnp.where(ok, x - t * d, x)
  dstate = jax.tree.map(lambda a, b: jnp.where(ok, a, b), dstate, fresh)
  return x_new, State(
    direction=dstate,
    value=jnp.where(ok, v, state.value),
    grad=jnp.where(ok, gr, g),
    count=jnp.where(ok, state.count + 1, 0),
    backtracks=state.backtracks + k,
  )


def _direction(x, state: State, *, memory_size: int, learning_rate: float):
  """The search direction ``d`` (the step is ``-t d``), the memory after it, the slope ``g . d`` and the first
  trial step: the L-BFGS direction, or the gradient at the first step and wherever L-BFGS's is not a descent
  direction, then scaled by ``min(1, 1/|g|_1)`` as torch does."""
  g = state.grad
  d, dstate = optax.scale_by_lbfgs(memory_size=memory_size).update(g, state.direction, x)
  slope = jnp.vdot(g, d)  # > 0 for a descent direction -d
  first = state.count == 0
  bad = ~(slope > 0) | ~jnp.isfinite(slope)
  d = jnp.where(bad | first, g, d)
  slope = jnp.where(bad | first, jnp.vdot(g, g), slope)
  t0 = learning_rate * jnp.where(first | bad, jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.sum(jnp.abs(g)), 1e-30)), 1.0)
  return d, dstate, slope, t0


def _line_search(x, d, slope, t0, state: State, value_and_grad, max_backtracks, max_extrapolations, c1, c2) -> _Search:
  """The accepted step along ``-d``, its loss and gradient, in one ``while_loop`` that evaluates every trial, so
  the objective is traced (and compiled) once per step.

  Phase 0 halves the step until Armijo holds; a step accepted at once may be far too short (a poorly scaled
  direction), so phase 1 doubles it while sufficient decrease holds, the loss still falls and the slope stays
  steep (weak Wolfe curvature condition unmet)."""

  def trial(t):
    v, gr = value_and_grad(x - t * d)
    ok = jnp.isfinite(v) & (v <= state.value - c1 * t * slope)
    return v, gr, ok

  def body(c: _Search) -> _Search:
    v2, gr2, ok2 = trial(c.t_try)
    acc0 = ~c.grow & ok2  # phase 0: accept on Armijo, else halve until max_backtracks
    keep = c.grow & ok2 & (v2 <= c.v)  # phase 1: keep a doubled step that still decreases the loss
    take = acc0 | keep
    t = jnp.where(take, c.t_try, c.t)
    v = jnp.where(take, v2, c.v)
    gr = jnp.where(take, gr2, c.gr)
    k = c.k + (~c.grow & ~ok2)
    j = c.j + c.grow
    grow_next = (acc0 & (c.k == 0)) | keep
    more = grow_next & (jnp.vdot(gr, d) > c2 * slope) & (j < max_extrapolations)
    done = jnp.where(c.grow, ~more, (acc0 & ~more) | (~ok2 & (k > max_backtracks)))
    t_try = jnp.where(more, 2.0 * t, 0.5 * c.t_try)
    return _Search(t_try, t, v, gr, c.ok | acc0, k, j, more, done)

  no, zero = jnp.bool_(False), jnp.int32(0)
  start = _Search(t0, jnp.zeros((), jnp.float32), state.value, state.grad, no, zero, zero, no, no)
  return jax.lax.while_loop(lambda c: ~c.done, body, start)


def lbfgs(
  *, memory_size: int = 10, learning_rate: float = 1.0, **search: float
) -> optax.GradientTransformationExtraArgs:
  """This L-BFGS as an optax transformation, called like ``optax.lbfgs``.

  ``update(grad, state, params, value=..., grad=..., value_fn=...)`` returns the step as
  updates; an extra ``value_and_grad_fn=`` (``x -> (value, grad)``) replaces
  ``jax.value_and_grad(value_fn)`` in the line search, e.g. an objective computed tile by
  tile. The state keeps the loss and gradient at the iterate (``optax.tree.get(state,
  "value")``); :func:`init` leaves them unknown (``inf`` and zeros) until the caller sets
  them with ``optax.tree.set``, as for ``optax.lbfgs``.

  Args:
    memory_size: correction pairs.
    learning_rate: scales every trial step.
    **search: ``max_backtracks``, ``max_extrapolations``, ``c1``, ``c2`` of :func:`step`.
  """

  def init_fn(params):
    return init(params, jnp.inf, jnp.zeros_like(params), memory_size=memory_size)

  def update_fn(updates, state, params, *, value_fn=None, value_and_grad_fn=None, **extra):
    del updates, extra  # the state holds the gradient at params
    if value_and_grad_fn is None:
      if value_fn is None:
        raise TypeError("lbfgs update needs value_fn= or value_and_grad_fn=")
      value_and_grad_fn = jax.value_and_grad(value_fn)
    x_new, state = step(
      params, state, value_and_grad_fn, memory_size=memory_size, learning_rate=learning_rate, **search
    )
    return x_new - params, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
