"""Training a feed-forward network for one style (jaxstyle.train), on tiny random networks and images."""

import textwrap

import h5py
import jax
import numpy as np
import pytest

from jaxstyle.errors import InputError, WeightsError
from jaxstyle.fast import data
from jaxstyle.fast import train as tr
from jaxstyle.fast.model_file import flat_params, load_checkpoint, load_model, save_model
from jaxstyle.io.checkpoint import CheckpointError
from jaxstyle.io.images import save_image
from jaxstyle.nets import magenta
from jaxstyle.settings.train import TrainSettings
from tests import processes
from tests.conftest import rng_image

TINY = magenta.Transformer(contract=(4, 4, 8), expand=(4, 4), residual_blocks=1, style_dim=8)
PHOTOS = [rng_image(10 + i, 40 + 4 * i, 48) for i in range(3)]
STYLE = rng_image(1, 40, 36)
HELD_OUT = [rng_image(20, 36, 44), rng_image(21, 44, 32)]
VECTOR = np.linspace(-0.5, 0.5, 8).astype(np.float32)


def settings(**kw):
  """Every test shares these shapes and optimizer settings, so that they share one compiled step."""
  return TrainSettings(**{"size": 32, "batch": 2, "lr": 1e-2, "steps": 6, "report_every": 2, **kw})


@pytest.fixture(scope="module")
def tiny_transformer():
  return magenta.init_params(jax.random.key(0), TINY)


def run(s, tiny_params, transformer, **kw):
  return tr.train(STYLE, PHOTOS, s, vgg_params=tiny_params, transformer_params=transformer, vector=VECTOR, **kw)


def test_settings_are_declared_and_checked():
  decls = {d.field: d for d in TrainSettings.declarations()}
  assert {"preset", "train", "steps", "batch", "size", "lr", "seed", "eval_every", "checkpoint_every"} <= set(decls)
  assert decls["train"].codec.choices == ("vector", "cin", "all") and decls["train"].default == "cin"
  assert decls["style_weight"].codec.parse("none") is None and decls["lr"].flag == "--lr"
  s = settings(style_weight=5.0, tv_weight=1.0)
  assert s.config().loss.style_weight == 5.0 and s.config().loss.tv_weight == 1.0
  assert s.config().loss.gram_norm == "chw"  # the gatys preset's form
  for bad in ({"batch": 0}, {"train": "some"}, {"preset": "nope"}, {"lr": -1.0}, {"max_scale": 0.5}):
    with pytest.raises(InputError, match=next(iter(bad))):
      TrainSettings(**bad)


def test_crops_are_seeded_scaled_and_flipped():
  s = settings(batch=8)
  photos = data.prepare_photos(PHOTOS, s)
  a, b = data.sample_crops(photos, 3, s), data.sample_crops(photos, 3, s)
  assert a.shape == (8, 32, 32, 3) and a.dtype == np.float32
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, data.sample_crops(photos, 4, s))
  assert not np.array_equal(a, data.sample_crops(photos, 3, s.replace(seed=1)))
  # A photo of exactly the crop's size at scale 1: each crop is the photo or its mirror image, both seen.
  one = [rng_image(5, 32, 32)]
  flat = settings(batch=16, max_scale=1.0)
  crops = data.sample_crops(one, 0, flat)
  mirrored = [bool(np.array_equal(c, one[0][:, ::-1])) for c in crops]
  assert all(m or np.array_equal(c, one[0]) for c, m in zip(crops, mirrored, strict=True)) and 0 < sum(mirrored) < 16
  assert all(np.array_equal(c, one[0]) for c in data.sample_crops(one, 0, flat.replace(flip=False)))
  # Large photos are cut down once to max_scale * size on their short side.
  assert min(data.prepare_photos([rng_image(0, 100, 120)], s)[0].shape[:2]) == 48


def test_bad_data_is_refused_in_one_line(tmp_path):
  with pytest.raises(InputError, match="smaller than the 32 px crop") as e:
    data.prepare_photos([rng_image(0, 31, 64)], settings())
  assert "\n" not in str(e.value)
  with pytest.raises(InputError, match="no images there"):
    data.load_images(tmp_path)
  save_image(tmp_path / "a.png", rng_image(0, 20, 40))
  (tmp_path / "notes.txt").write_text("not an image")
  assert len(data.load_images(tmp_path)) == 1
  with pytest.raises(InputError, match="a.png: 40x20 px is smaller than the 32 px crop"):
    data.load_images(tmp_path, min_side=32)


@pytest.mark.slow
def test_loss_decreases_and_evaluations_are_reported(tiny_params, tiny_transformer):
  seen = []
  s = settings(steps=10, eval_every=5)
  r = run(s, tiny_params, tiny_transformer, eval_images=HELD_OUT, callback=seen.append)
  loss = r.history["loss"]
  assert r.steps_done == 10 and loss.shape == (10,) and np.all(np.isfinite(loss))
  assert loss[-3:].mean() < 0.6 * loss[:3].mean(), loss
  assert [e["step"] for e in r.evals] == [5, 10]
  assert r.evals[1]["total"] < r.evals[0]["total"]
  assert [p.step for p in seen] == [2, 4, 5, 6, 8, 10] and seen[-1].eval == r.evals[1] and seen[0].eval is None
  assert seen[-1].loss == loss[-1] and seen[-1].eta == 0 and seen[-1].steps_per_second > 0
  # The reported evaluation is evaluate() of the returned network on the held-out images at `size`.
  obj, static = tr.make_objective(tiny_params, STYLE, s)
  again = tr.evaluate(r.transformer_params, r.vector, HELD_OUT, obj, static, size=s.size)
  assert again == pytest.approx({k: v for k, v in r.evals[1].items() if k != "step"}, rel=1e-5)
  start = tr.evaluate(tiny_transformer, VECTOR, HELD_OUT, obj, static, size=s.size)
  assert r.evals[1]["total"] < start["total"]


@pytest.mark.slow
@pytest.mark.parametrize("subset", ["vector", "cin", "all"])
def test_only_the_chosen_subset_changes(tiny_params, tiny_transformer, subset):
  r = run(settings(steps=2, train=subset), tiny_params, tiny_transformer)
  assert not np.array_equal(r.vector, VECTOR)
  before = flat_params(tiny_transformer)
  after = flat_params(r.transformer_params)
  changed = {k for k in before if not np.array_equal(before[k], after[k])}
  cin = {k for k in before if "/norm/" in k}
  assert changed == {"vector": set(), "cin": cin, "all": set(before)}[subset]


def test_resume_equals_uninterrupted(tiny_params, tiny_transformer, tmp_path):
  s = settings(checkpoint_every=2)
  whole = run(s, tiny_params, tiny_transformer)
  path = tmp_path / "ckpt.npz"
  calls = []
  first = run(s, tiny_params, tiny_transformer, checkpoint=path, stop=lambda: calls.append(1) or len(calls) == 3)
  assert first.stopped and first.steps_done == 3
  ckpt = load_checkpoint(path)
  assert ckpt.step == 3 and ckpt.settings == s.to_dict() and len(ckpt.history["loss"]) == 3
  resumed = run(s, tiny_params, tiny_transformer, resume=path)
  assert resumed.steps_done == 6 and not resumed.stopped
  np.testing.assert_array_equal(resumed.history["loss"], whole.history["loss"])
  np.testing.assert_array_equal(resumed.vector, whole.vector)
  for k, v in flat_params(whole.transformer_params).items():
    np.testing.assert_array_equal(flat_params(resumed.transformer_params)[k], v, err_msg=k)
  # Intervals and steps may change on resume; what defines the run may not, nor the images.
  run(s.replace(steps=4, report_every=1), tiny_params, tiny_transformer, resume=path)
  with pytest.raises(CheckpointError, match="lr differ"):
    run(s.replace(lr=1e-3), tiny_params, tiny_transformer, resume=path)
  with pytest.raises(CheckpointError, match="other style images"):
    tr.train(
      STYLE[::-1], PHOTOS, s, vgg_params=tiny_params, transformer_params=tiny_transformer, vector=VECTOR, resume=path
    )
  path.write_bytes(b"garbage")
  with pytest.raises(CheckpointError, match="corrupt checkpoint"):
    load_checkpoint(path)


def test_save_and_load_model(tiny_transformer, tmp_path):
  s = settings()
  path = save_model(tmp_path / "m.h5", tiny_transformer, VECTOR, settings=s, style_path="x/starry.jpg", steps_done=6)
  params, vector, attrs = load_model(path, with_attrs=True)
  np.testing.assert_array_equal(vector, VECTOR)
  for k, v in flat_params(tiny_transformer).items():
    np.testing.assert_array_equal(flat_params(params)[k], v)
  assert attrs["format"] == "jaxstyle-magenta-trained" and attrs["format_version"] == 1
  assert attrs["style"] == "starry" and attrs["settings"] == s.to_dict() and attrs["steps_done"] == 6
  assert TrainSettings.from_dict(attrs["settings"]) == s
  with pytest.raises(WeightsError, match="no trained model"):
    load_model(tmp_path / "missing.h5")
  (tmp_path / "junk.h5").write_bytes(b"not hdf5")
  with pytest.raises(WeightsError, match="corrupt or truncated"):
    load_model(tmp_path / "junk.h5")
  with h5py.File(path, "a") as f:
    f["vector"][...] = np.nan
  with pytest.raises(WeightsError, match="vector"):
    load_model(path)
  with h5py.File(path, "a") as f:
    del f["transformer/expand3/kernel"]
    f["transformer/expand3/kernel"] = np.zeros((3, 3, 4, 3), np.float32)
  with pytest.raises(WeightsError, match="expand3/kernel is float32") as e:
    load_model(path)
  assert "\n" not in str(e.value)
  with h5py.File(path, "a") as f:
    f.attrs["format"] = "jaxstyle-magenta-arbitrary"
  with pytest.raises(WeightsError, match="not a jaxstyle-magenta-trained file"):
    load_model(path)


SHARDED = textwrap.dedent(
  """
  import jax, numpy as np
  from jaxstyle.nets import magenta, vgg
  from jaxstyle.fast import train as tr
  from jaxstyle.errors import InputError
  from jaxstyle.settings.train import TrainSettings
  from tests.test_train import HELD_OUT, PHOTOS, STYLE, TINY, VECTOR
  assert jax.device_count() == 4, jax.devices()
  vp = vgg.init_params(jax.random.key(0), widths=(4, 8, 8, 8, 8))
  tp = magenta.init_params(jax.random.key(0), TINY)
  s = TrainSettings(size=32, batch=4, lr=1e-2, steps=3, train="cin")
  kw = dict(vgg_params=vp, transformer_params=tp, vector=VECTOR)
  four = tr.train(STYLE, PHOTOS, s, **kw)
  one = tr.train(STYLE, PHOTOS, s, devices=jax.devices()[:1], **kw)
  assert four.timings["devices"] == 4 and one.timings["devices"] == 1
  np.testing.assert_allclose(four.history["loss"], one.history["loss"], rtol=1e-5)
  np.testing.assert_allclose(four.vector, one.vector, rtol=1e-4, atol=1e-5)
  # Outputs, not raw params, are compared: some params have an exactly zero true gradient (the residual blocks'
  # last CIN beta: expand1's CIN cancels any per-channel offset), and Adam, dividing by the gradient's own
  # scale, turns reduction-order noise there into steps of up to lr. (With train="all" the tiny network has
  # such near-zero directions that matter, and 4 and 1 devices drift apart by a few percent in 3 steps.)
  for im in HELD_OUT:
    a = magenta.transfer(four.transformer_params, im, four.vector)
    np.testing.assert_allclose(a, magenta.transfer(one.transformer_params, im, one.vector), atol=1e-4)
    assert np.abs(a - magenta.transfer(tp, im, VECTOR)).max() > 0.1  # while training moved them far
  try:
    tr.train(STYLE, PHOTOS, s.replace(batch=6), **kw)
  except InputError as e:
    assert "batch 6 is not a multiple of the 4 devices; use 8" in str(e), e
  else:
    raise AssertionError("batch 6 on 4 devices was accepted")
  print("OK", four.history["loss"])
  """
)


@pytest.fixture(scope="module", autouse=True)
def four_devices():
  """The 4-device run, started when the module starts so that it compiles while the other tests run."""
  proc = processes.start_script(SHARDED, devices=4)
  yield proc
  if proc.poll() is None:
    proc.kill()
    proc.communicate()


def test_four_devices_equal_one(four_devices):
  out, err = four_devices.communicate(timeout=600)
  assert four_devices.returncode == 0, err[-3000:]
  assert "OK" in out
