"""`jaxstyle video --resume`: an interrupted run continued to the result of an uninterrupted one, for both methods,
into a folder of PNGs (bit for bit) and into a video file (its packets copied, the rest encoded after them).

The runs are in this process (``cli.main``), interrupted by a real SIGINT sent to it after some frames are written;
the networks are tiny random ones (the fast method's through ``networks_for``, the VGG through
``$JAXSTYLE_WEIGHTS``).
"""

import json
import os
import shutil
import signal
from fractions import Fraction

import h5py
import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.cli import fast as fast_cli
from jaxstyle.cli import video as video_cli
from jaxstyle.io import images
from tests import processes
from tests.conftest import STYLE
from tests.test_video import PREDICTOR, TRANSFORMER, audio_packets, panning, write_clip

av = pytest.importorskip("av", reason="video needs PyAV (pip install 'jaxstyle[video]')")
from jaxstyle.io import video  # noqa: E402

NETWORKS_FOR = fast_cli.networks_for  # before a fixture replaces it


def times(path) -> list[float]:
  return [f.time for f in video.read_frames(path)]


# --------------------------------------------------------------------------- the writer


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".mov"])
def test_a_video_continued_plays_with_the_rate_timestamps_and_audio_of_one_written_at_once(tmp_path, suffix):
  write_clip(tmp_path / "in.mp4", panning(14, 32, 48, dx=2), rate=Fraction(30000, 1001))
  info = video.probe(tmp_path / "in.mp4")
  src = list(video.read_frames(tmp_path / "in.mp4"))
  kw = dict(rate=info.rate, time_base=info.time_base, audio_from=str(tmp_path / "in.mp4"))

  def write(path, frames, keep=0):
    with video.VideoWriter(path, keep=keep, **kw) as w:
      for f in frames:
        w.write(f.pixels, time=f.time)
    return w.frames

  whole, part = tmp_path / f"whole{suffix}", tmp_path / f"part{suffix}"
  write(whole, src)
  assert write(part, src[:6]) == 6 and video.frames_written(part) == 6
  assert write(part, src[6:], keep=6) == 14
  got = list(video.read_frames(part))
  assert len(got) == 14 == video.frames_written(part)
  np.testing.assert_allclose([f.time for f in got], times(whole), atol=1e-3)
  assert video.probe(part).rate == info.rate
  if suffix != ".webm":  # Opus only there
    assert audio_packets(part) == audio_packets(tmp_path / "in.mp4")
  for a, b in zip(got, src, strict=True):
    assert np.abs(a.pixels.astype(float) - b.pixels).mean() < 8  # a fine texture through yuv420p twice


def test_a_continued_video_must_hold_the_frames_it_keeps(tmp_path):
  frames = panning(3, 16, 16)
  with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(25)) as w:
    for f in frames:
      w.write(f)
  decoded = [f.pixels for f in video.read_frames(tmp_path / "o.mp4")]
  with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(25), keep=3):  # continued with nothing more: as it was
    pass
  assert [f.pixels.tobytes() for f in video.read_frames(tmp_path / "o.mp4")] == [p.tobytes() for p in decoded]
  before = (tmp_path / "o.mp4").read_bytes()
  with pytest.raises(video.VideoError, match="holds 3 frames, not the 5 to keep"):
    with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(25), keep=5) as w:
      w.write(frames[0])
  with pytest.raises(video.VideoError, match="other H.264 parameters"):  # another rate: other timing in the SPS
    with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(30), keep=3) as w:
      w.write(frames[0])
  assert (tmp_path / "o.mp4").read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]
  with pytest.raises(video.VideoError, match="GIF cannot be continued"):
    video.VideoWriter(tmp_path / "o.gif", rate=Fraction(25), keep=2)


# --------------------------------------------------------------------------- the command


class Written:
  """Every float frame the command hands its writer; a SIGINT to this process after the ``stop_after``-th."""

  def __init__(self, monkeypatch):
    self.outputs, self.stop_after = [], None
    original = video.VideoWriter.write

    def write(writer, pixels, *, time=None):
      self.outputs.append(np.array(pixels))
      original(writer, pixels, time=time)
      if len(self.outputs) == self.stop_after:
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(video.VideoWriter, "write", write)

  def run(self, *args, stop_after=None) -> tuple[int, list[np.ndarray]]:
    self.outputs, self.stop_after = [], stop_after
    code = cli.main([str(a) for a in args])
    return code, self.outputs


N, CUT = 5, 3
FLAGS = {
  "fast": ["--batch", "2", "--style-size", "16", "-q"],
  "optimize": ["--method", "optimize", "--preset", "gatys", "--steps", "4", "--later-steps", "2", "--flow-size",
               "none", "-q"],
}  # fmt: skip


@pytest.fixture(scope="module")
def written(tiny_weights_file):
  """The command with tiny networks (the fast method's through ``networks_for``, the VGG through
  ``$JAXSTYLE_WEIGHTS``), its float frames recorded."""
  import jax

  from jaxstyle.fast.stylize import Networks
  from jaxstyle.nets import magenta

  nets = Networks(
    predictor=magenta.init_params(jax.random.key(1), PREDICTOR),
    transformer=magenta.init_params(jax.random.key(2), TRANSFORMER),
    predictor_model=PREDICTOR,
  )
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
    mp.setattr(fast_cli, "networks_for", lambda *a, **k: nets)
    yield Written(mp)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
  """A folder holding ``in.mp4`` (a panning texture with a cut, an AAC tone) and a style ``s.png``."""
  d = tmp_path_factory.mktemp("clip")
  write_clip(d / "in.mp4", panning(N, 24, 32, dx=1, cut=CUT), rate=Fraction(30000, 1001))
  images.save_image(d / "s.png", STYLE)
  return d


@pytest.fixture(scope="module")
def uninterrupted(written, clip):
  """``get(method, name, *flags)``: the output ``name`` of an uninterrupted run and the float frames it handed
  its writer (each run once)."""
  runs = {}

  def get(method, name, *flags):
    if (method, name) not in runs:
      code, floats = written.run(*command(clip, method), *flags, "-o", clip / name)
      assert code == 0
      runs[method, name] = clip / name, floats
    return runs[method, name]

  return get


def command(clip, method) -> list:
  return ["video", clip / "in.mp4", clip / "s.png", *FLAGS[method]]


def interrupt_and_resume(written, args, out, stop_after, want) -> int:
  """Runs ``args`` into ``out`` interrupted after ``stop_after`` frames are written, then again with --resume;
  the float frames of both runs together must be ``want``, bit for bit. Returns how many the first run made."""
  code, first = written.run(*args, "-o", out, stop_after=stop_after)
  assert code == 130 and os.path.isfile(video_cli.state_path(str(out)))
  assert video.frames_written(out) == len(first)
  code, rest = written.run(*args, "-o", out, "--resume")
  assert code == 0 and not os.path.exists(video_cli.state_path(str(out)))
  assert len(first) + len(rest) == len(want)
  for a, b in zip(first + rest, want, strict=True):
    np.testing.assert_array_equal(a, b)
  return len(first)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fast", "optimize"])
def test_a_resumed_folder_equals_the_uninterrupted_one_file_for_file(written, clip, uninterrupted, method):
  whole, want = uninterrupted(method, f"whole_{method}")
  out = clip / f"frames_{method}"
  done = interrupt_and_resume(written, command(clip, method), out, 3 if method == "fast" else 2, want)
  assert done == (4 if method == "fast" else 2)  # the fast method stops at a batch's end (batches of 2)
  names = sorted(os.listdir(whole))
  assert names == sorted(os.listdir(out)) and len(names) == N + 1
  for name in names[:-1]:
    assert (out / name).read_bytes() == (whole / name).read_bytes(), name
  a, b = (json.loads((d / "video.json").read_text()) for d in (out, whole))
  assert a["frames"] == b["frames"] == N and a["shots"] == b["shots"] == [0, CUT] and a["resumed_at"] == done


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fast", "optimize"])
def test_a_resumed_video_plays_like_the_uninterrupted_one(written, clip, uninterrupted, method):
  """At --quality 0 (lossless H.264) the decoded frames equal the uninterrupted run's too; at other qualities they
  differ as two encoders' rate controls do (test_a_video_continued_plays_...)."""
  whole, want = uninterrupted(method, f"whole_{method}.mp4", "--quality", "0")
  out = clip / f"o_{method}.mp4"
  interrupt_and_resume(written, [*command(clip, method), "--quality", "0"], out, 2, want)
  got = list(video.read_frames(out))
  assert len(got) == N and video.probe(out).rate == Fraction(30000, 1001)
  np.testing.assert_allclose([f.time for f in got], times(clip / "in.mp4"), atol=1e-4)
  assert audio_packets(out) == audio_packets(clip / "in.mp4")
  for a, b in zip(got, video.read_frames(whole), strict=True):
    assert a.time == b.time
    np.testing.assert_array_equal(a.pixels, b.pixels)
  rec = json.loads((clip / f"o_{method}.json").read_text())
  assert rec["frames"] == N and rec["interrupted"] is None and rec["resumed_at"] == 2 and rec["shots"] == [0, CUT]
  if method == "optimize":
    assert len(rec["frame_s"]) == N


@pytest.mark.slow
def test_a_resume_that_does_not_fit_gets_one_line_and_changes_nothing(written, clip, tmp_path, capsys):
  shutil.copy(clip / "in.mp4", tmp_path / "in.mp4")
  args = ["video", tmp_path / "in.mp4", clip / "s.png", *FLAGS["fast"]]
  out, state = tmp_path / "o.mp4", tmp_path / "o.state.npz"
  assert written.run(*args, "-o", out, stop_after=1)[0] == 130
  kept = {p: p.read_bytes() for p in (out, state)}
  write_clip(tmp_path / "other.mp4", panning(N, 24, 32, dx=2))
  for bad, msg in [
    (
      [*args, "-o", out, "--resume", "--temporal-weight", "2"],
      "other settings (video.temporal_weight differ)",
    ),
    ([*args, "-o", out, "--resume", "--quality", "20"], "(video.quality differ)"),
    (["video", tmp_path / "other.mp4", *args[2:], "-o", out, "--resume"], "(input differ)"),
    ([*args, "-o", tmp_path / "new.mp4", "--resume"], "nothing to resume"),
    ([*args, "-o", tmp_path / "new.gif", "--resume"], "--resume cannot continue a GIF"),
  ]:
    capsys.readouterr()
    assert written.run(*bad)[0] == 2, bad
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1, err
    assert {p: p.read_bytes() for p in kept} == kept
  shutil.copy(tmp_path / "other.mp4", tmp_path / "in.mp4")  # the same name, other frames
  assert written.run(*args, "-o", out, "--resume")[0] == 2
  assert "made from another clip (its frame 1 differs)" in capsys.readouterr().err
  assert {p: p.read_bytes() for p in kept} == kept
  out.unlink()
  assert written.run(*args, "-o", out, "--resume")[0] == 2
  assert "o.mp4: no such file" in capsys.readouterr().err
  assert written.run(*args, "-o", out)[0] == 0  # without --resume: a new run, the state replaced, then removed
  assert not state.exists() and video.frames_written(out) == N


@pytest.mark.slow
def test_a_resume_with_other_vgg_weights_is_refused(written, clip, tmp_path, tiny_weights_file, capsys):
  other = tmp_path / "other_vgg19.h5"
  shutil.copy(tiny_weights_file, other)
  with h5py.File(other, "r+") as f:  # one bias changed: the same layout, other pictures
    name = next(k for k in _datasets(f) if k.endswith("bias"))
    f[name][...] = f[name][...] + 1.0
  args = [*command(clip, "optimize"), "-o", tmp_path / "o"]
  assert written.run(*args, stop_after=1)[0] == 130
  capsys.readouterr()
  assert written.run(*args, "--weights", other, "--resume")[0] == 2
  err = capsys.readouterr().err
  assert "weights_sha256" in err and err.count("\n") == 1, err
  assert written.run(*args, "--weights", tiny_weights_file, "--resume")[0] == 0  # the same file, named: goes on


def _datasets(group) -> list[str]:
  out = []
  group.visititems(lambda name, obj: out.append(name) if hasattr(obj, "shape") else None)
  return out


@pytest.mark.slow
def test_a_process_stopped_by_sigint_then_resumed_equals_one_run_in_this_process(written, tmp_path, monkeypatch):
  """The whole path through processes: a tiny trained network (``--model``), a real SIGINT to a running
  ``jaxstyle video``, ``--resume`` in another process, PNGs equal to those of an uninterrupted run here."""
  import jax

  from jaxstyle.fast.model_file import save_model
  from jaxstyle.nets import magenta
  from jaxstyle.settings.train import TrainSettings

  vector = np.random.default_rng(0).normal(size=TRANSFORMER.style_dim).astype(np.float32)
  save_model(tmp_path / "m.h5", magenta.init_params(jax.random.key(2), TRANSFORMER), vector, settings=TrainSettings())
  n = 60
  write_clip(tmp_path / "in.mp4", panning(n, 24, 32, dx=1), audio=False)
  args = ["video", tmp_path / "in.mp4", "--model", tmp_path / "m.h5", *FLAGS["fast"][:-1]]  # the programs of above
  monkeypatch.setattr(fast_cli, "networks_for", NETWORKS_FOR)  # this process too: the network of --model
  assert written.run(*args, "-o", tmp_path / "whole", "-q")[0] == 0
  run = processes.Lines(processes.jaxstyle_command(*args, "-o", tmp_path / "frames"))
  run.wait_for(r"frame 4/60")
  run.proc.send_signal(signal.SIGINT)
  code, err = run.finish()
  done = video.frames_written(tmp_path / "frames")
  assert code == 130 and "SIGINT at frame" in err and done % 2 == 0 and 4 <= done < n, err
  resumed = processes.run(processes.jaxstyle_command(*args, "-o", tmp_path / "frames", "--resume", "-q"))
  assert resumed.returncode == 0, resumed.stderr
  names = sorted(os.listdir(tmp_path / "whole"))
  assert names == sorted(os.listdir(tmp_path / "frames")) and len(names) == n + 1
  for name in names[:-1]:
    assert (tmp_path / "frames" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
