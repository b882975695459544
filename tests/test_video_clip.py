"""`jaxstyle video --method optimize --clip N`: a window of frames optimized jointly, sharded over devices and
processes (tiny VGG)."""

import textwrap

import jax
import numpy as np
import pytest

from jaxstyle.objective import losses
from jaxstyle.objective.loss import objective
from jaxstyle.objective.targets import Coupling
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import clip as vclip
from jaxstyle.video import measures
from jaxstyle.video import optimize as voptimize
from tests import processes
from tests.conftest import assert_f32_close, rng_image, targets_for, tiny, variants
from tests.test_video import np_bilinear, panning

STYLE = rng_image(5, 30, 30)


def random_coupling(t, h, w, seed=0):
  rng = np.random.default_rng(seed)
  flows = lambda: rng.uniform(-2, 2, (t - 1, h, w, 2)).astype(np.float32)  # noqa: E731
  weights = lambda: rng.uniform(0, 3, (t - 1, h, w, 1)).astype(np.float32)  # noqa: E731
  return Coupling(flows(), weights(), flows(), weights())


def np_coupling(x, c: Coupling):
  x = np.asarray(x, np.float64)
  term = lambda a, b, wt: np.sum(wt * (255 * (a - b)) ** 2) / a.size  # noqa: E731
  back = sum(term(x[t], np_bilinear(x[t - 1], c.back[t - 1]), c.back_weight[t - 1]) for t in range(1, len(x)))
  fwd = sum(term(x[t], np_bilinear(x[t + 1], c.forward[t]), c.forward_weight[t]) for t in range(len(x) - 1))
  return back + fwd


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
def test_coupling_loss_matches_numpy(variant):
  x = np.stack([rng_image(i, 10, 12) for i in range(3)])
  c = random_coupling(3, 10, 12)
  got = variants(lambda x, c: losses.coupling_loss(x, *c))[variant](x, c)
  assert_f32_close(got, np_coupling(x, c), terms=2 * 2 * 10 * 12 * 3)


def test_a_clip_objective_is_its_frames_plus_the_coupling(tiny_params):
  frames = np.stack([rng_image(10 + i, 32, 40) for i in range(3)])
  images = np.stack([rng_image(20 + i, 32, 40) for i in range(3)])
  config = tiny()
  per = [targets_for(tiny_params, f, STYLE, config) for f in frames]
  c = random_coupling(3, 32, 40, seed=1)
  content = {k: np.concatenate([t.content[k] for t in per]) for k in per[0].content}
  targets = per[0]._replace(content=content, coupling=c)
  total, parts = jax.jit(objective, static_argnames="form")(images, tiny_params, targets, config.loss.weights(),
                                                            form=config.form())  # fmt: skip
  alone = [
    objective(x, tiny_params, t, config.loss.weights(), form=config.form()) for x, t in zip(images, per, strict=True)
  ]
  want_c = np_coupling(images, c)
  assert_f32_close(parts["temporal"], want_c, terms=2 * 2 * 32 * 40 * 3)
  for k in ("content", "style", "tv"):
    assert float(parts[k]) == pytest.approx(sum(float(p[k]) for _, p in alone), rel=1e-5)
  assert float(total) == pytest.approx(sum(float(v) for v, _ in alone) + want_c, rel=1e-5)


def window_settings(**kw):
  return VideoSettings(**{"method": "optimize", "flow_size": None, "later_steps": 6, "clip_window": 2, **kw})


def clip_config():
  return tiny(steps=10, init="content")


def clip_frames():
  return panning(4, 24, 32, dx=1)


def warping_error(outs, frames):
  return np.mean([float(measures.warping_error(outs[t], outs[t - 1], *measures.input_motion(frames[t - 1], frames[t])))
                  for t in range(1, len(outs))])  # fmt: skip


SHARDED = textwrap.dedent(
  """
  import sys, jax, numpy as np
  jax.config.update("jax_numpy_rank_promotion", "raise")
  from jaxstyle.nets import vgg
  from jaxstyle.video import clip as vclip
  from tests.test_video_clip import STYLE, clip_config, clip_frames, window_settings
  assert len(jax.devices()) == 2
  params = vgg.init_params(jax.random.key(0), widths=(4, 8, 8, 8, 8))
  got = vclip.stylize_clip(clip_frames(), [STYLE], window_settings(), clip_config(), params=params)
  np.save(sys.argv[1], np.stack([f.output for f in got]))
  """
)


@pytest.mark.slow
def test_windows_are_consistent_and_sharded_equal_one_device(tiny_params, tmp_path):
  frames = clip_frames()  # two windows of two: the second joins the first's last output
  got = list(vclip.stylize_clip(frames, [STYLE], window_settings(), clip_config(), params=tiny_params))
  assert [f.shot_start for f in got] == [True, False, False, False]
  outs = np.stack([f.output for f in got])
  seq = np.stack([f.output for f in voptimize.stylize_clip(frames, [STYLE], window_settings(clip_window=None),
                                                           clip_config(), params=tiny_params)])  # fmt: skip
  assert warping_error(outs, frames) <= warping_error(seq, frames)
  assert [f.resume is not None for f in got] == [False, True, False, True]  # a window's end is a resume point
  again = vclip.stylize_clip(frames[2:], [STYLE], window_settings(), clip_config(), params=tiny_params,
                             resume=got[1].resume)  # fmt: skip
  np.testing.assert_array_equal(np.stack([f.output for f in again]), outs[2:])
  r = processes.run_script(SHARDED, tmp_path / "two.npy", devices=2)
  assert r.returncode == 0, r.stderr[-3000:]
  np.testing.assert_allclose(np.load(tmp_path / "two.npy"), outs, atol=2e-4)


@pytest.mark.slow
def test_two_processes_equal_one(tiny_params, tmp_path):
  """One window of four frames over the four devices of two processes (a frame each)."""
  script = textwrap.dedent(
    """
    from jaxstyle.video import clip as vclip
    from tests.test_video_clip import STYLE, clip_config, clip_frames, window_settings
    got = vclip.stylize_clip(clip_frames(), [STYLE], window_settings(clip_window=4), clip_config(), params=params)
    np.save(out, np.stack([f.output for f in got]))
    """
  )
  outs = processes.run_two_processes(script, tiny_params, tmp_path)
  # the one-process run in a fresh process too: the suite's long-lived process once crashed compiling it (XLA)
  alone = SHARDED.replace("== 2", "== 1").replace("window_settings()", "window_settings(clip_window=4)")
  r = processes.run_script(alone, tmp_path / "one.npy", devices=1)
  assert r.returncode == 0, r.stderr[-3000:]
  one = np.load(tmp_path / "one.npy")
  a, b = (np.load(f"{p}.npy") for p in outs)  # np.save adds the suffix
  np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(a, one, atol=2e-4)


@pytest.mark.slow
def test_cli_video_clip(files, capsys):
  import json

  from jaxstyle import cli
  from tests.test_video import write_clip

  write_clip(files / "in.mp4", clip_frames(), audio=False)
  run = lambda *a: cli.main([str(x) for x in a])  # noqa: E731
  args = ["video", files / "in.mp4", files / "s.png", "-o", files / "out", "--preset", "gatys", "--clip", "2"]
  assert run(*args, "--method", "optimize", "--steps", "4", "--later-steps", "2", "--flow-size", "none", "-q") == 0
  rec = json.loads((files / "out" / "video.json").read_text())
  assert rec["frames"] == 4 and rec["settings"]["clip_window"] == 2 and len(rec["frame_s"]) == 4
  assert sorted(p.name for p in (files / "out").glob("*.png")) == [f"{i:06d}.png" for i in range(4)]
  capsys.readouterr()
  assert run("video", files / "in.mp4", files / "s.png", "-o", files / "o.mp4", "--clip", "2") == 2
  err = capsys.readouterr().err
  assert "--clip optimizes windows of frames: it needs --method optimize" in err and err.count("\n") == 1
