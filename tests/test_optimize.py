"""The compiled optimization loop, with a tiny random-weight VGG."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import optimize, presets
from tests.conftest import rng_image

CONTENT = rng_image(0, 32, 40)
STYLE = rng_image(1, 40, 32)


def tiny(**kw):
  base = dict(size=None, steps=10, report_every=5)
  return presets.gatys(**{**base, **kw})


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
    tiny(optimizer="adam", learning_rate=0.05),
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
  targets = optimize.compute_targets(tiny_params, CONTENT, STYLE, config)
  static = optimize.Static.from_config(config)
  f0, _ = optimize.objective(CONTENT, tiny_params, targets, config.loss_weights(), static=static)
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


def test_noise_init_is_seeded(tiny_params):
  a = js.stylize(CONTENT, STYLE, tiny(init="noise", seed=3, steps=2), params=tiny_params).image
  b = js.stylize(CONTENT, STYLE, tiny(init="noise", seed=3, steps=2), params=tiny_params).image
  c = js.stylize(CONTENT, STYLE, tiny(init="noise", seed=4, steps=2), params=tiny_params).image
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_zero_steps_returns_the_start(tiny_params):
  r = js.stylize(CONTENT, STYLE, tiny(steps=0), params=tiny_params)
  np.testing.assert_allclose(r.image, CONTENT, atol=1e-6)
  assert r.history["total"].shape == (0,)
  assert np.isfinite(r.losses["total"])


def test_adam_with_clip_stays_in_range(tiny_params):
  config = tiny(optimizer="adam", learning_rate=0.5, clip=True, steps=4)
  targets = optimize.compute_targets(tiny_params, CONTENT, STYLE, config)
  image = optimize.optimize(CONTENT, tiny_params, targets, config.loss_weights(), config).image
  assert float(jnp.min(image)) >= 0.0 and float(jnp.max(image)) <= 1.0


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_vmap_over_weightings_equals_loop(tiny_params, opt):
  """One batched program over three (alpha, beta, tv) settings equals three runs."""
  config = tiny(optimizer=opt, learning_rate=1.0 if opt == "lbfgs" else 0.05, steps=6, report_every=3)
  targets = optimize.compute_targets(tiny_params, CONTENT, STYLE, config)
  members = [config.replace(style_weight=s, tv_weight=t) for s, t in [(1e2, 0.0), (1e3, 1e-3), (1e4, 1e-2)]]
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[m.loss_weights() for m in members])
  x0 = np.broadcast_to(CONTENT, (3,) + CONTENT.shape)
  batch = optimize.optimize(x0, tiny_params, targets, stacked, config, batched=True)
  for i, m in enumerate(members):
    one = optimize.optimize(CONTENT, tiny_params, targets, m.loss_weights(), config)
    np.testing.assert_allclose(batch.history["total"][i], one.history["total"], rtol=2e-3)
    np.testing.assert_allclose(batch.losses["total"][i], one.losses["total"], rtol=2e-3)
    np.testing.assert_allclose(batch.image[i], one.image, atol=2e-3)


def test_image_too_small_for_layers(tiny_params):
  with pytest.raises(ValueError, match="too small for layer relu5_1"):
    js.stylize(rng_image(0, 8, 8), STYLE, tiny(), params=tiny_params)


@pytest.mark.parametrize(
  "changes,match",
  [
    ({"style_weight": -1.0}, "style_weight"),
    ({"content_weight": float("nan")}, "content_weight"),
    ({"style_layers": ("relu9_9",)}, "unknown VGG19 layer"),
    ({"style_layer_weights": (1.0, 2.0)}, "2 values for 5 layers"),
    ({"optimizer": "sgd"}, "optimizer"),
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
