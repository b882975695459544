"""The compiled optimization loop, with a tiny random-weight VGG."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import objective
from jaxstyle.optim import loop, step
from jaxstyle.optim.step import Static
from jaxstyle.settings import presets
from tests import conftest
from tests.conftest import rng_image, targets_for

CONTENT = rng_image(0, 32, 40)
STYLE = rng_image(1, 40, 32)


def tiny(**kw):
  return conftest.tiny(**{"steps": 10, "report_every": 5, **kw})


class CompileCounter:
  """Counts XLA backend compilations while active."""

  EVENT = "/jax/core/compile/backend_compile_duration"

  def __init__(self):
    self.count = 0
    self.active = False
    jax.monitoring.register_event_duration_secs_listener(self._on_event)

  def _on_event(self, name, *_, **__):
    if self.active and name == self.EVENT:
      self.count += 1


@pytest.fixture(scope="module")
def compiles():
  return CompileCounter()


@pytest.mark.parametrize(
  "config",
  [
    tiny(),
    tiny(kind="adam", learning_rate=0.05),
    presets.pytorch_course(size=None, steps=10, report_every=5, learning_rate=0.05),
    presets.tf_tutorial(size=None, steps=10, report_every=5),
  ],
  ids=["gatys-lbfgs", "adam", "pytorch-course", "tf-tutorial"],
)
def test_loss_decreases(tiny_params, config):
  r = js.stylize(CONTENT, STYLE, config, params=tiny_params)
  h = r.history["total"]
  assert h.shape == (10,)
  assert np.all(np.isfinite(h))
  assert r.losses["total"] < 0.9 * h[0]
  assert r.image.shape == CONTENT.shape
  assert float(r.image.min()) >= 0.0 and float(r.image.max()) <= 1.0


def test_history_starts_at_the_initial_loss(tiny_params):
  config = tiny(steps=3, report_every=3)
  r = js.stylize(CONTENT, STYLE, config, params=tiny_params)
  targets = targets_for(tiny_params, CONTENT, STYLE, config)
  static = Static.from_config(config)
  f0, _ = objective.objective(CONTENT, tiny_params, targets, config.loss.weights(), form=static.form)
  np.testing.assert_allclose(r.history["total"][0], f0, rtol=1e-5)
  assert list(r.history["step"]) == [3]


def test_no_recompilation_between_chunks_or_runs(tiny_params, compiles):
  config = tiny(steps=7, report_every=3, seed=5)  # chunks of 3, 3, 1: one executable
  seen = []

  def cb(p):
    seen.append((p.step, compiles.count))

  compiles.active = True
  try:
    js.stylize(CONTENT, STYLE, config, params=tiny_params, callback=cb)
    assert [s for s, _ in seen] == [3, 6, 7]
    assert seen[0][1] == seen[-1][1], "a later chunk compiled again"
    before = compiles.count
    r2 = js.stylize(CONTENT, STYLE, config, params=tiny_params)
    assert compiles.count == before, "a second run of the same shapes compiled again"
    assert r2.timings["compile_s"] == 0.0
  finally:
    compiles.active = False


def test_zero_steps_returns_the_start(tiny_params):
  r = js.stylize(CONTENT, STYLE, tiny(steps=0), params=tiny_params)
  np.testing.assert_allclose(r.image, CONTENT, atol=1e-6)
  assert r.history["total"].shape == (0,)
  assert np.isfinite(r.losses["total"])


@pytest.mark.slow
@pytest.mark.parametrize(
  "changes",
  [dict(kind="adam", learning_rate=0.5), dict(kind="lbfgs"), dict(kind="lbfgs", line_search="zoom")],
  ids=["adam", "lbfgs-backtracking", "lbfgs-zoom"],
)
def test_clip_is_honoured_by_every_optimizer(tiny_params, changes):
  """Every iterate (not only the returned image, which is always clipped) stays in [0, 1]
  with ``clip``; without it the same run leaves [0, 1], so the check can fail."""
  base = tiny(steps=4, style_weight=1e9, init="noise", **changes)
  targets = targets_for(tiny_params, CONTENT, STYLE, base)
  x0 = jnp.asarray(np.random.default_rng(0).uniform(0, 1, CONTENT.shape), jnp.float32)

  def iterate(config):
    static = Static.from_config(config)
    weights = config.loss.weights()
    state = step.init_state(x0, tiny_params, targets, weights, static=static)
    fn = jax.jit(lambda x, s: step.run_chunk(x, s, 4, tiny_params, targets, weights, static=static))
    return np.asarray(fn(x0, state)[0])

  clipped, free = iterate(base.set(clip=True)), iterate(base.set(clip=False))
  assert clipped.min() >= 0.0 and clipped.max() <= 1.0
  assert free.min() < 0.0 or free.max() > 1.0


@pytest.mark.slow
def test_reports_and_saves_do_not_shrink_chunks(tiny_params):
  """--save-every 7 --report-every 25: chunks end where either is due, not after every step."""
  from jaxstyle.runtime import compilation

  config = tiny(steps=50, report_every=25, save_every=7, chunk=50, seed=11)
  calls = []
  compilation._CACHE.clear()
  js.stylize(CONTENT, STYLE, config, params=tiny_params, callback=lambda p: calls.append((p.step, p.report, p.save)))
  assert [c[0] for c in calls] == [7, 14, 21, 25, 28, 35, 42, 49, 50]
  assert [c[0] for c in calls if c[1]] == [25, 50] and [c[0] for c in calls if c[2]] == [7, 14, 21, 28, 35, 42, 49]
  assert len(compilation._CACHE) == 2  # one init and one chunk executable serve every chunk length


def test_chunk_boundaries():
  assert loop.boundaries(0, 30, every=(25, 7), chunk=50) == [7, 14, 21, 25, 28, 30]
  assert loop.boundaries(0, 10, every=(None,), chunk=4) == [4, 8, 10]
  assert loop.boundaries(20, 30, every=(25,), chunk=50) == [25, 30]
  assert loop.boundaries(5, 5, every=(3,), chunk=50) == []


@pytest.mark.slow
@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_vmap_over_weightings_equals_loop(tiny_params, opt):
  """One batched program over three (alpha, beta, tv) settings equals three runs."""
  config = tiny(kind=opt, learning_rate=1.0 if opt == "lbfgs" else 0.05, steps=6, report_every=3)
  targets = targets_for(tiny_params, CONTENT, STYLE, config)
  members = [config.set(style_weight=s, tv_weight=t) for s, t in [(1e2, 0.0), (1e3, 1e-3), (1e4, 1e-2)]]
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[m.loss.weights() for m in members])
  x0 = np.broadcast_to(CONTENT, (3,) + CONTENT.shape)
  batch = loop.optimize(x0, tiny_params, targets, stacked, config, batched=True)
  for i, m in enumerate(members):
    one = loop.optimize(CONTENT, tiny_params, targets, m.loss.weights(), config)
    np.testing.assert_allclose(batch.history["total"][i], one.history["total"], rtol=2e-3)
    np.testing.assert_allclose(batch.losses["total"][i], one.losses["total"], rtol=2e-3)
    np.testing.assert_allclose(batch.image[i], one.image, atol=2e-3)


@pytest.mark.parametrize(
  "changes,match",
  [
    ({"style_weight": -1.0}, "style_weight"),
    ({"content_weight": float("nan")}, "content_weight"),
    ({"style_layers": ("relu9_9",)}, "unknown VGG19 layer"),
    ({"style_layers": (("relu1_1", -1.0),)}, "style_layers has weight -1.0"),
    ({"kind": "sgd"}, "kind"),
    ({"steps": -3}, "steps"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"content_layers": (), "style_layers": ()}, "at least one"),
  ],
)
def test_bad_settings_are_refused(changes, match):
  with pytest.raises(ValueError, match=match):
    presets.gatys(**changes)


def test_presets_by_name():
  for name in presets.PRESETS:
    assert presets.get(name).name == name
  with pytest.raises(ValueError, match="unknown preset"):
    presets.get("nope")
  assert presets.get("tf-tutorial").layers == ("relu5_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.mark.slow
def test_lbfgs_line_search_takes_a_value_and_grad_fn():
  """lbfgs.lbfgs evaluates trials with ``value_and_grad_fn`` when given (the tiled objective's
  route), else with ``jax.value_and_grad(value_fn)``: the same step either way."""
  import optax

  from jaxstyle.optim import lbfgs

  f = lambda x: jnp.sum((x - jnp.arange(4.0)) ** 2 * jnp.arange(1.0, 5.0))  # noqa: E731
  traced = []

  def value_and_grad(x):
    traced.append(x.shape)
    return jax.value_and_grad(f)(x)

  opt = lbfgs.lbfgs(memory_size=3)
  x = jnp.zeros(4)
  state = optax.tree.set(opt.init(x), value=f(x), grad=jax.grad(f)(x))
  by_value, _ = opt.update(None, state, x, value_fn=f)
  by_pair, _ = opt.update(None, state, x, value_fn=lambda x: jnp.float32(jnp.nan), value_and_grad_fn=value_and_grad)
  np.testing.assert_allclose(by_pair, by_value, rtol=1e-6)
  assert traced, "value_and_grad_fn was not used"
  with pytest.raises(TypeError, match="value_fn"):
    opt.update(None, state, x)


def test_every_optimizer_gets_extra_args_it_takes():
  f = g = lambda x: x  # noqa: E731
  assert step.extra_args(presets.gatys().optimizer, f, g) == {"value_fn": f, "value_and_grad_fn": g}
  assert step.extra_args(presets.gatys(line_search="zoom").optimizer, f, g) == {"value_fn": f}
