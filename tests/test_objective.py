"""The objective: targets computed once, the weighted loss of one image, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import objective
from jaxstyle.nets import vgg
from jaxstyle.objective import losses, targets
from jaxstyle.optim.step import Static
from tests.conftest import CONTENT, STYLE, rng_image, targets_for, tiny


def test_objective_is_the_weighted_sum_of_the_loss_parts(tiny_params):
  config = tiny(tv_weight=0.3)
  t = targets_for(tiny_params, CONTENT, STYLE, config)
  form = config.form()
  x = rng_image(7, *CONTENT.shape[:2])
  total, parts = jax.jit(lambda x: objective.objective(x, tiny_params, t, config.loss.weights(), form=form))(x)
  feats = vgg.extract_features(tiny_params, x[None], config.layers, pooling="avg")
  c = sum(0.5 * np.sum((np.asarray(feats[n]) - np.asarray(t.content[n])) ** 2) for n in ["relu4_2"])
  s = 0.0
  for name, w in config.loss.style_layers:
    f = np.asarray(feats[name], np.float64)[0]
    h, wd, ch = f.shape
    g = f.reshape(-1, ch).T @ f.reshape(-1, ch) / (ch * h * wd)
    s += w * np.sum((g - np.asarray(t.style[name][0], np.float64)) ** 2)
  tv = np.abs(np.diff(x, axis=0)).sum() + np.abs(np.diff(x, axis=1)).sum()
  np.testing.assert_allclose(parts["content"], c, rtol=1e-4)
  np.testing.assert_allclose(parts["style"], 1e3 * s, rtol=1e-3)
  np.testing.assert_allclose(parts["tv"], 0.3 * tv, rtol=1e-4)
  np.testing.assert_allclose(total, sum(parts.values()), rtol=1e-6)


@pytest.mark.slow
def test_targets_use_the_prepared_network(tiny_params):
  """Winograd-prepared params give the same targets as direct ones (the objective runs the same network)."""
  config = tiny(style_layers=("relu1_1", "relu3_1"))
  direct = targets_for(tiny_params, CONTENT, STYLE, config)
  wino = targets_for(vgg.prepare(tiny_params, "winograd", min_width=4), CONTENT, STYLE, config)
  for a, b in zip(jax.tree.leaves(direct), jax.tree.leaves(wino), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_compose_keeps_the_unmasked_region_exactly():
  mask = jnp.zeros(CONTENT.shape[:2] + (1,)).at[:, 10:].set(1.0)
  t = objective.Targets({}, {}, mask=mask, anchor=jnp.asarray(CONTENT))
  z = jnp.asarray(rng_image(3, *CONTENT.shape[:2]))
  out = objective.compose(z, t)
  np.testing.assert_array_equal(out[:, :10], CONTENT[:, :10])
  np.testing.assert_array_equal(out[:, 10:], z[:, 10:])
  batched = objective.compose(jnp.stack([z, z]), t)  # a sweep's batch axis
  np.testing.assert_array_equal(batched[1], out)


def test_blend_weights_are_normalised():
  np.testing.assert_allclose(targets.style_blend_weights((1.0, 3.0), 2), [0.25, 0.75])
  np.testing.assert_allclose(targets.style_blend_weights(None, 4), [0.25] * 4)


def test_loss_spec_comes_from_the_settings():
  config = tiny(gram_norm="hw", tv_kind="l2")
  want = losses.LossSpec(gram_norm="hw", content_reduction="half_sum", style_reduction="sum", tv_kind="l2")
  assert config.form().spec == want and Static.from_config(config).form.spec == want
  assert config.form() == objective.Form(want, "avg", ("relu4_2",), config.form().style_layers, "avg")
