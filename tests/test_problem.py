"""Setting a run up: sizes, checks before any work, starting images."""

import numpy as np
import pytest

import jaxstyle as js
from jaxstyle.io import images
from jaxstyle.optim import problem
from tests.conftest import CONTENT, STYLE, rng_image, tiny


def test_image_too_small_for_layers(tiny_params):
  with pytest.raises(ValueError, match="too small for layer relu5_1"):
    js.stylize(rng_image(0, 8, 8), STYLE, tiny(), params=tiny_params)


def test_noise_init_is_seeded(tiny_params):
  a = js.stylize(CONTENT, STYLE, tiny(init="noise", seed=3, steps=2), params=tiny_params).image
  b = js.stylize(CONTENT, STYLE, tiny(init="noise", seed=3, steps=2), params=tiny_params).image
  c = js.stylize(CONTENT, STYLE, tiny(init="noise", seed=4, steps=2), params=tiny_params).image
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


@pytest.mark.parametrize("shape,size", [((32, 40, 3), 17), ((768, 1024, 3), 512), ((5, 3, 3), 64), ((9, 9, 3), None)])
def test_scaled_shape_is_what_resize_makes(shape, size):
  im = np.zeros(shape, np.float32)
  want = im.shape[:2] if size is None else images.resize(im, size).shape[:2]
  assert problem.scaled_shape(shape, size) == want


def test_inputs_are_checked_before_any_work():
  config = tiny(size=40)
  with pytest.raises(js.InputError, match="2 region maps for 1 style"):
    problem.check_inputs(CONTENT, [STYLE], config, regions=[CONTENT, CONTENT])
  with pytest.raises(js.InputError, match="style_blend has 2 weights for 1 style"):
    problem.check_inputs(CONTENT, [STYLE], config.set(style_blend=(1.0, 2.0)))
  with pytest.raises(js.InputError, match="at least one style"):
    problem.check_inputs(CONTENT, [], config)
  with pytest.raises(js.InputError, match="too small"):  # the coarsest scale decides
    problem.check_inputs(CONTENT, [STYLE], config.set(scales=(8, 40)))
  problem.check_inputs(CONTENT, [STYLE], config)


def test_init_image_array_is_used_and_resized():
  start = rng_image(5, 16, 20)
  x0 = problem.initial_image(CONTENT, tiny(init="/nonexistent.png"), init_image=start)
  np.testing.assert_allclose(x0, images.resize(start, CONTENT.shape[:2]))
  with pytest.raises(js.InputError, match="fast"):
    problem.initial_image(CONTENT, tiny(init="fast"))


def test_mean_init_is_the_mean_pixel_with_faint_seeded_noise():
  a = problem.initial_image(CONTENT, tiny(init="mean", seed=3))
  b = problem.initial_image(CONTENT, tiny(init="mean", seed=3))
  np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(a.reshape(-1, 3).mean(0), np.array([123.68, 116.779, 103.939]) / 256, atol=1e-5)
  assert 0 < a.std(axis=(0, 1)).max() < 1e-4
