"""Checkpoints: exact resumption, and refusal of other settings or corrupt files."""

import numpy as np
import pytest

import jaxstyle as js
from jaxstyle.io import checkpoint
from jaxstyle.optim.stylize import load_checkpoint, save_checkpoint
from tests.conftest import CONTENT, STYLE, tiny


@pytest.mark.slow
def test_resume_equals_uninterrupted(tiny_params, tmp_path):
  config = tiny()
  full = js.stylize(CONTENT, STYLE, config, params=tiny_params)
  saved = []
  first = js.stylize(
    CONTENT,
    STYLE,
    config,
    params=tiny_params,
    stop=lambda: True,
    callback=lambda p: saved.append(save_checkpoint(tmp_path, p, config)),
  )
  assert first.status == "stopped" and list(first.history["step"]) == [3]
  resume = load_checkpoint(tmp_path, config)
  assert resume.step == 3
  rest = js.stylize(CONTENT, STYLE, config, params=tiny_params, resume=resume)
  np.testing.assert_allclose(rest.image, full.image, atol=1e-6)
  np.testing.assert_allclose(rest.history["total"], full.history["total"], rtol=1e-6)
  assert list(rest.history["step"]) == [3, 6]


@pytest.mark.slow
def test_coarse_to_fine_resumes_at_the_scale_it_was_saved_at(tiny_params, tmp_path):
  """Stopped during the second scale and resumed: the same image and the same second-scale losses as
  an uninterrupted run; the first scale is not run again."""
  config = tiny(scales=(20, 40), coarse_steps=3)
  full = js.stylize(CONTENT, STYLE, config, params=tiny_params)
  js.stylize(
    CONTENT,
    STYLE,
    config,
    params=tiny_params,
    stop=lambda: bool(list(tmp_path.iterdir())),
    callback=lambda p: save_checkpoint(tmp_path, p, config) if p.scale == 1 else None,
  )
  resume = load_checkpoint(tmp_path, config)
  assert (resume.scale, resume.step) == (1, 6) and resume.image.shape == (32, 40, 3)
  rest = js.stylize(CONTENT, STYLE, config, params=tiny_params, resume=resume)
  np.testing.assert_allclose(rest.image, full.image, atol=1e-6)
  second = full.history["scale"] == 1
  np.testing.assert_allclose(rest.history["content"], full.history["content"][second], rtol=1e-6)
  assert list(rest.history["step"]) == [6, 9] and set(rest.history["scale"]) == {1}
  assert rest.steps_done == 9 and [s["size"] for s in rest.scales] == [[32, 40]]
  with pytest.raises(checkpoint.CheckpointError, match="images.scales"):
    load_checkpoint(tmp_path, tiny(steps=6))


def test_checkpoint_with_other_settings_is_refused(tiny_params, tmp_path):
  js.stylize(
    CONTENT,
    STYLE,
    tiny(),
    params=tiny_params,
    stop=lambda: True,
    callback=lambda p: save_checkpoint(tmp_path, p, tiny()),
  )
  with pytest.raises(checkpoint.CheckpointError, match="style_weight differ"):
    load_checkpoint(tmp_path, tiny(style_weight=5.0))
  load_checkpoint(tmp_path, tiny(steps=9))  # more steps is fine
  (tmp_path / "checkpoint.npz").write_bytes(b"garbage")
  with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
    load_checkpoint(tmp_path, tiny())


def test_resumable_settings_may_change_and_others_may_not(tiny_params, tmp_path):
  js.stylize(
    CONTENT, STYLE, tiny(), params=tiny_params, stop=lambda: True,
    callback=lambda p: save_checkpoint(tmp_path, p, tiny()),
  )  # fmt: skip
  load_checkpoint(tmp_path, tiny(steps=12, report_every=2, save_every=5, chunk=7))
  for changed, name in [(dict(pooling="max"), "network.pooling"), (dict(kind="adam"), "optimizer.kind")]:
    with pytest.raises(checkpoint.CheckpointError, match=name):
      load_checkpoint(tmp_path, tiny(**changed))
