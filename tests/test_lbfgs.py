"""The vmap-friendly L-BFGS: convergence, line search, vmap == loop, under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxstyle.optim import lbfgs
from tests.conftest import assert_f32_close


def quadratic(a, b):
  return lambda x: 0.5 * jnp.sum(a * x * x) - jnp.sum(b * x)


def run(f, x, steps):
  vg = jax.value_and_grad(f)
  state = lbfgs.init(x, *vg(x))

  def body(c, _):
    x, s = c
    x, s = lbfgs.step(x, s, vg)
    return (x, s), s.value

  (x, state), values = jax.lax.scan(body, (x, state), None, length=steps)
  return x, state, values


def test_solves_a_quadratic():
  a = jnp.logspace(0, 1, 20)
  b = jnp.linspace(-1, 1, 20)
  x, state, values = jax.jit(lambda x: run(quadratic(a, b), x, 40))(jnp.zeros(20))
  np.testing.assert_allclose(x, b / a, rtol=1e-4, atol=1e-5)
  assert np.all(np.diff(np.asarray(values)) <= 1e-6)  # Armijo: never increases


def test_within_twice_optax_lbfgs_gap_on_an_ill_conditioned_quadratic():
  a = jnp.logspace(0, 3, 20)
  b = jnp.linspace(-1, 1, 20)
  f = quadratic(a, b)
  _, ours, _ = jax.jit(lambda x: run(f, x, 60))(jnp.zeros(20))
  opt = optax.lbfgs()
  vg = optax.value_and_grad_from_state(f)

  def body(c, _):
    x, s = c
    v, g = vg(x, state=s)
    u, s = opt.update(g, s, x, value=v, grad=g, value_fn=f)
    return (optax.apply_updates(x, u), s), None

  (x_ref, _), _ = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, length=60))(jnp.zeros(20))
  best = float(f(b / a))
  assert float(ours.value) - best <= 2.0 * (float(f(x_ref)) - best) + 1e-6  # same league as optax's zoom


def test_rosenbrock_needs_and_gets_backtracking():
  f = lambda x: jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
  x, state, _ = jax.jit(lambda x: run(f, x, 300))(jnp.full(4, -1.2))
  np.testing.assert_allclose(x, np.ones(4), atol=1e-3)
  assert int(state.backtracks) > 0


def test_vmap_equals_loop():
  a = jnp.stack([jnp.logspace(0, 2, 8), jnp.logspace(0, 1, 8), jnp.ones(8)])
  b = jnp.linspace(-1, 1, 8)

  def solve(ai, x0):
    return run(quadratic(ai, b), x0, 15)[0]

  x0 = jnp.stack([jnp.zeros(8), jnp.ones(8), -jnp.ones(8)])
  batched = jax.jit(jax.vmap(solve))(a, x0)
  for i in range(3):
    assert_f32_close(batched[i], jax.jit(solve)(a[i], x0[i]), terms=8, stages=15)  # 15 steps of 8-term dot products


def test_failed_line_search_keeps_the_iterate_and_resets_memory():
  x0 = jnp.array([1.0, 1.0])
  # Finite with a non-zero gradient at x0, NaN a hair along the descent direction: every trial fails.
  f = lambda x: jnp.where(jnp.sum(x) < jnp.sum(x0) - 1e-6, jnp.nan, jnp.sum(x**2))
  vg = jax.value_and_grad(f)
  v0, g0 = vg(x0)
  assert np.isfinite(float(v0)) and float(jnp.abs(g0).sum()) > 0
  state = lbfgs.init(x0, v0, g0)
  x1, s1 = jax.jit(lambda x, s: lbfgs.step(x, s, vg, max_backtracks=5))(x0, state)
  np.testing.assert_array_equal(x1, x0)
  assert int(s1.count) == 0 and int(s1.backtracks) == 5
  np.testing.assert_array_equal(s1.grad, g0)  # the state still describes x0


def test_as_an_optax_transformation_it_takes_the_same_steps():
  a, b = jnp.logspace(0, 1, 6), jnp.linspace(-1, 1, 6)
  f = quadratic(a, b)
  opt = lbfgs.lbfgs(memory_size=10)
  x = jnp.zeros(6)
  state = optax.tree.set(opt.init(x), value=f(x), grad=jax.grad(f)(x))
  want, _, _ = run(f, x, 5)

  @jax.jit
  def step(x, state):
    value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
    updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=f)
    return optax.apply_updates(x, updates), state

  for _ in range(5):
    x, state = step(x, state)
  np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)
