"""L-BFGS with a backtracking (Armijo) line search that stays cheap under ``jax.vmap``.

optax's ``lbfgs`` uses a zoom line search whose ``lax.cond`` branches become selects
under ``vmap``, evaluating every branch's loss and gradient: a sweep of two members then
costs ten times one. Here each step tries the full L-BFGS step with one value-and-grad
and only halves it, in a ``while_loop`` that runs while any member still needs it, when
the Armijo condition fails. The direction is optax's ``scale_by_lbfgs``; the first step
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
  d, dstate = optax.scale_by_lbfgs(memory_size=memory_size).update(g, state.direction, x)
  slope = jnp.vdot(g, d)  # > 0 for a descent direction -d
  first = state.count == 0
  bad = ~(slope > 0) | ~jnp.isfinite(slope)
  d = jnp.where(bad | first, g, d)
  slope = jnp.where(bad | first, jnp.vdot(g, g), slope)
  t0 = learning_rate * jnp.where(first | bad, jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.sum(jnp.abs(g)), 1e-30)), 1.0)

  def trial(t):
    v, gr = value_and_grad(x - t * d)
    ok = jnp.isfinite(v) & (v <= state.value - c1 * t * slope)
    return v, gr, ok

  v, gr, ok = trial(t0)

  def cond(c):
    return ~c[3] & (c[4] < max_backtracks)

  def body(c):
    t, _, _, _, k = c
    t = 0.5 * t
    v, gr, ok = trial(t)
    return t, v, gr, ok, k + 1

  t, v, gr, ok, k = jax.lax.while_loop(cond, body, (t0, v, gr, ok, jnp.int32(0)))

  # Extrapolate: a step accepted at once may be far too short (a poorly scaled
  # direction); double it while sufficient decrease holds and the slope stays steep.
  def steep(gr):
    return jnp.vdot(gr, d) > c2 * slope

  def grow_cond(c):
    return c[4] & steep(c[2]) & (c[5] < max_extrapolations)

  def grow(c):
    t, v, gr, _, _, j = c
    v2, gr2, ok2 = trial(2.0 * t)
    keep = ok2 & (v2 <= v)
    return (
      jnp.where(keep, 2.0 * t, t),
      jnp.where(keep, v2, v),
      jnp.where(keep, gr2, gr),
      ok,
      keep,
      j + 1,
    )

  t, v, gr, _, _, _ = jax.lax.while_loop(grow_cond, grow, (t, v, gr, ok, ok & (k == 0), jnp.int32(0)))
  # Failure: stay put and forget the curvature pairs, so the next step is steepest descent.
  fresh = optax.scale_by_lbfgs(memory_size=memory_size).init(x)
  x_new = jnp.where(ok, x - t * d, x)
  dstate = jax.tree.map(lambda a, b: jnp.where(ok, a, b), dstate, fresh)
  return x_new, State(
    direction=dstate,
    value=jnp.where(ok, v, state.value),
    grad=jnp.where(ok, gr, state.grad),
    count=jnp.where(ok, state.count + 1, 0),
    backtracks=state.backtracks + k,
  )
