"""`jaxstyle video --method optimize`: the temporal loss, its target, and a clip frame after frame (tiny VGG)."""

import json

import jax
import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.errors import InputError
from jaxstyle.objective import losses
from jaxstyle.objective.loss import Tiling, objective
from jaxstyle.objective.targets import Temporal
from jaxstyle.optim.stylize import stylize
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import measures
from jaxstyle.video import optimize as voptimize
from tests.conftest import assert_f32_close, rng_image, targets_for, tiny, variants
from tests.test_video import panning

STYLE = rng_image(5, 30, 30)


def np_temporal(x, previous, weight):
  x, previous, weight = (np.asarray(a, np.float64) for a in (x, previous, weight))
  n, h, w, c = x.shape
  return np.array([np.sum(weight[min(i, len(weight) - 1)] * (255 * (x[i] - previous[min(i, len(previous) - 1)])) ** 2)
                   / (h * w * c) for i in range(n)])  # fmt: skip


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
def test_temporal_loss_matches_numpy(variant):
  x = np.stack([rng_image(1, 12, 10), rng_image(2, 12, 10)])
  previous = rng_image(3, 12, 10)[None]
  weight = np.random.default_rng(0).uniform(0, 2, (1, 12, 10, 1)).astype(np.float32)
  got = variants(losses.temporal_loss)[variant](x, previous, weight)
  assert_f32_close(got, np_temporal(x, previous, weight), terms=12 * 10 * 3)


def test_objective_adds_the_temporal_part(tiny_params):
  content, image, previous = rng_image(0, 32, 40), rng_image(7, 32, 40), rng_image(8, 32, 40)
  weight = np.random.default_rng(1).uniform(0, 1e3, (32, 40, 1)).astype(np.float32)
  config = tiny()
  targets = targets_for(tiny_params, content, STYLE, config)
  plain, parts = objective(image, tiny_params, targets, config.loss.weights(), form=config.form())
  with_t, t_parts = jax.jit(objective, static_argnames="form")(
    image, tiny_params, targets._replace(temporal=Temporal(previous, weight)), config.loss.weights(), form=config.form()
  )
  want = np_temporal(image[None], previous[None], weight[None])[0]
  assert_f32_close(t_parts["temporal"], want, terms=32 * 40 * 3)
  assert_f32_close(with_t, float(plain) + want, terms=4, scale=float(with_t))
  assert {k: float(v) for k, v in t_parts.items() if k != "temporal"} == pytest.approx(
    {k: float(v) for k, v in parts.items()}, rel=1e-6
  )
  with pytest.raises(InputError, match="leave --tile out"):
    objective(image, tiny_params, targets._replace(temporal=Temporal(previous, weight)), config.loss.weights(),
              form=config.form(), tiling=Tiling(tile=16))  # fmt: skip


def test_temporal_target_is_the_previous_output_moved_with_the_frames():
  frames = panning(2, 40, 48, dx=2, dy=1)
  output = rng_image(9, 40, 48)  # an "output" of frame 0: moved as the frame moved
  target, matched = voptimize.temporal_target(frames[0], frames[1], output, flow_size=None, weight=7.0)
  assert float(matched) > 0.8
  reliable = np.asarray(target.weight[..., 0]) > 0
  assert set(np.unique(target.weight)) <= {0.0, 7.0} and reliable[4:-4, 6:-4].mean() > 0.9
  moved = np.zeros_like(output)
  moved[1:, 2:] = output[:-1, :-2]  # frame 1 is frame 0 moved by (2, 1): so is the warped output
  inner = (slice(4, -4), slice(6, -4))
  assert np.abs(np.asarray(target.previous)[inner] - moved[inner]).mean() < 0.01


def clip_config(**kw):
  return tiny(**{"steps": 20, "init": "content", **kw})


def run_clip(params, frames, **kw):
  settings = VideoSettings(**{"method": "optimize", "flow_size": None, "later_steps": 8, **kw})
  return list(voptimize.stylize_clip(frames, [STYLE], settings, clip_config(), params=params))


def warping_errors(outs, frames, skip=()):
  return [float(measures.warping_error(outs[t], outs[t - 1], *measures.input_motion(frames[t - 1], frames[t])))
          for t in range(1, len(outs)) if t not in skip]  # fmt: skip


@pytest.mark.slow
def test_clip_is_consistent_restarts_at_a_cut_and_compiles_once(tiny_params):
  frames = panning(6, 32, 40, dx=1, cut=4)
  got = run_clip(tiny_params, frames)
  assert [i for i, f in enumerate(got) if f.shot_start] == [0, 4]
  alone = [np.asarray(stylize(f, STYLE, clip_config(size=40), params=tiny_params).image) for f in frames]
  for i in (0, 4):  # a shot's first frame is the picture `stylize` makes of it, exactly
    np.testing.assert_array_equal(got[i].output, alone[i])
  later = [f.result for i, f in enumerate(got) if not f.shot_start]
  assert all(r.steps_done == 8 and "temporal" in r.losses for r in later)
  assert all(r.timings["compile_s"] == 0 for r in later[1:])  # the later frames' programs compile once
  outs = np.stack([f.output for f in got])
  consistent, independent = warping_errors(outs, frames, skip=(4,)), warping_errors(np.stack(alone), frames, (4,))
  assert np.mean(consistent) < 0.5 * np.mean(independent), (consistent, independent)


def test_a_stop_keeps_only_whole_frames(tiny_params):
  frames = panning(3, 32, 40, dx=1)
  settings = VideoSettings(method="optimize", flow_size=None, later_steps=8)
  got, polls = [], []

  def stop():  # asked after every chunk: true from the second frame's first chunk on
    polls.append(len(got))
    return len(got) >= 1

  for frame in voptimize.stylize_clip(frames, [STYLE], settings, clip_config(report_every=2), params=tiny_params,
                                      stop=stop):  # fmt: skip
    got.append(frame)
  assert len(got) == 1 and got[0].result.status == "completed" and got[0].result.steps_done == 20
  assert polls == [0] * 10 + [1]  # the first frame ran its 10 chunks; the second stopped after its first


def test_frames_of_another_size_are_refused(tiny_params):
  frames = list(panning(2, 24, 32))
  frames.insert(1, frames[0][:20])
  with pytest.raises(InputError, match="frame 1 is 32x20 px, the clip's first 32x24"):
    run_clip(tiny_params, frames)


@pytest.mark.slow
def test_cli_video_optimize(files, capsys):
  from tests.test_video import write_clip

  write_clip(files / "in.mp4", panning(4, 32, 40, dx=1))
  run = lambda *a: cli.main([str(x) for x in a])  # noqa: E731
  out = files / "o.mp4"
  args = ["video", files / "in.mp4", files / "s.png", "-o", out, "--method", "optimize", "--preset", "gatys"]
  assert run(*args, "--steps", "6", "--later-steps", "3", "--flow-size", "none", "-q") == 0
  rec = json.loads((files / "o.json").read_text())
  assert rec["frames"] == 4 and rec["shots"] == [0] and len(rec["frame_s"]) == 4
  assert rec["recipe"]["run"]["steps"] == 6 and rec["later_recipe"]["run"]["steps"] == 3
  assert rec["recipe"]["images"]["size"] == 40 and rec["weights"]
  from jaxstyle.io import video

  assert video.count_frames(out) == 4
  capsys.readouterr()
  for bad, msg in [
    ([*args[:-4], "--steps", "5"], "--steps: recipe flags need --method optimize"),
    ([*args, "--builtin", "3"], "--builtin and --model are the fast networks'"),
  ]:
    out.unlink(missing_ok=True)
    assert run(*bad) == 2, bad
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1, err
    assert not out.exists()
