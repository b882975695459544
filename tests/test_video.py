"""Video (jaxstyle.video and jaxstyle.io.video): flow, consistency, clips in and out, `jaxstyle video`.

Clips are made here with PyAV (a panning texture with a cut, an AAC tone); the networks are tiny random ones,
except in the CLI test.
"""

import json
import signal
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.errors import InputError
from jaxstyle.fast.stylize import Networks
from jaxstyle.io import images
from jaxstyle.nets import magenta
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import fast as vfast
from jaxstyle.video import flow, measures, temporal
from jaxstyle.video import frames as frames_mod
from tests import processes
from tests.conftest import rng_image, variants

av = pytest.importorskip("av", reason="video needs PyAV (pip install 'jaxstyle[video]')")
from jaxstyle.io import video  # noqa: E402

PREDICTOR = magenta.StylePredictor(stem=4, blocks=((1, 4, 1, 1), (2, 6, 2, 2)), head=8, style_dim=5)
TRANSFORMER = magenta.Transformer(contract=(3, 4, 6), expand=(4, 3), residual_blocks=1, style_dim=5)


def texture(seed: int, h: int, w: int) -> np.ndarray:
  """A photograph-like texture: smooth random colours plus finer detail, (h, w, 3) in [0, 1]."""
  return np.clip(0.7 * rng_image(seed, h, w) + 0.3 * rng_image(seed + 100, h * 4, w * 4)[::4, ::4], 0, 1)


def panning(n: int, h: int, w: int, *, dx: int = 1, dy: int = 0, cut: int | None = None) -> np.ndarray:
  """``(n, h, w, 3)`` frames of a texture moving by (dx, dy) px a frame (frame t is the texture at -t*d);
  from ``cut`` on, another texture."""
  pad = n * max(abs(dx), abs(dy), 1)
  big = [texture(s, h + 2 * pad, w + 2 * pad) for s in (3, 7)]
  out = []
  for t in range(n):
    src = big[1 if cut is not None and t >= cut else 0]
    y0, x0 = pad - t * dy, pad - t * dx
    out.append(src[y0 : y0 + h, x0 : x0 + w])
  return np.stack(out).astype(np.float32)


def write_clip(path, frames: np.ndarray, *, rate=Fraction(25), audio: bool = True) -> None:
  """An H.264 clip of ``frames`` (and a 440 Hz AAC tone as long), written with PyAV directly."""
  with av.open(str(path), "w") as c:
    v = c.add_stream("libx264", rate=rate)
    v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    v.options = {"crf": "10"}
    a = c.add_stream("aac", rate=48000, layout="mono") if audio else None
    for f in frames:
      for p in v.encode(av.VideoFrame.from_ndarray(images.to_uint8(f), format="rgb24")):
        c.mux(p)
    for p in v.encode():
      c.mux(p)
    if a is not None:
      n = int(48000 * len(frames) / rate)
      tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)[None]
      for k in range(0, n, 1024):
        frame = av.AudioFrame.from_ndarray(tone[:, k : k + 1024], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, k
        for p in a.encode(frame):
          c.mux(p)
      for p in a.encode():
        c.mux(p)


def audio_packets(path) -> list[bytes]:
  with av.open(str(path)) as c:
    return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []


# --------------------------------------------------------------------------- flow


def np_bilinear(image, fl):
  h, w = image.shape[:2]
  out = np.zeros_like(image)
  for i in range(h):
    for j in range(w):
      y = min(max(i + fl[i, j, 1], 0), h - 1)
      x = min(max(j + fl[i, j, 0], 0), w - 1)
      y0, x0 = min(int(np.floor(y)), h - 1), min(int(np.floor(x)), w - 1)
      y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
      fy, fx = y - y0, x - x0
      out[i, j] = (image[y0, x0] * (1 - fx) + image[y0, x1] * fx) * (1 - fy) + (
        image[y1, x0] * (1 - fx) + image[y1, x1] * fx
      ) * fy
  return out


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
def test_warp_matches_numpy(variant):
  rng = np.random.default_rng(0)
  image = rng.uniform(size=(7, 9, 3)).astype(np.float32)
  fl = rng.uniform(-3, 3, size=(7, 9, 2)).astype(np.float32)
  got = variants(flow.warp)[variant](image, fl)
  np.testing.assert_allclose(got, np_bilinear(image, fl), atol=1e-5)


def test_cubic_warp_is_exact_on_whole_pixels_and_on_ramps():
  image = texture(0, 12, 16)
  shift = np.zeros((12, 16, 2), np.float32) + [2.0, -1.0]
  want = np.asarray(flow.warp(image, shift))
  np.testing.assert_allclose(flow.warp(image, shift, cubic=True), want, atol=1e-6)
  ramp = np.broadcast_to(np.arange(16, dtype=np.float32)[None, :, None] / 16, (12, 16, 1))
  half = np.zeros((12, 16, 2), np.float32) + [0.5, 0.0]
  got = np.asarray(flow.warp(ramp, half, cubic=True))[:, 1:-2]  # inside: Catmull-Rom reproduces a line
  np.testing.assert_allclose(got, ramp[:, 1:-2] + 0.5 / 16, atol=1e-6)


def test_median3_matches_numpy():
  x = np.random.default_rng(1).uniform(size=(9, 11)).astype(np.float32)
  xp = np.pad(x, 1, mode="edge")
  want = np.median(np.stack([xp[i : i + 9, j : j + 11] for i in range(3) for j in range(3)]), 0)
  np.testing.assert_array_equal(flow._median3(jnp.asarray(x)), want)


@pytest.mark.parametrize("d", [(2.0, 0.0), (-1.0, 3.0)])
def test_flow_recovers_a_translation_and_its_inverse(d):
  big = texture(4, 80, 96)
  a = big[8:72, 8:88]
  b = big[8 - int(d[1]) : 72 - int(d[1]), 8 - int(d[0]) : 88 - int(d[0])]  # a(x) = b(x + d)
  both = np.asarray(flow.flows_both_ways(a, b))
  inner = (slice(6, -6), slice(6, -6))
  np.testing.assert_allclose(both[0][inner].mean((0, 1)), d, atol=0.05)
  np.testing.assert_allclose(both[1][inner].mean((0, 1)), [-d[0], -d[1]], atol=0.05)
  assert np.abs(both[0][inner] - d).max() < 0.5
  rel = np.asarray(flow.reliability(both[0], both[1]))
  assert rel[inner].mean() > 0.95
  assert np.abs(np.asarray(flow.warp(b, both[0]))[inner] - a[inner]).mean() < 0.01


@pytest.mark.slow
def test_flow_vmapped_equals_one_pair_at_a_time():
  frames = panning(3, 32, 40, dx=1, dy=1)
  one = [np.asarray(flow.optical_flow(frames[i], frames[i + 1])) for i in range(2)]
  many = np.asarray(jax.jit(jax.vmap(flow.optical_flow))(frames[:2], frames[1:]))
  np.testing.assert_allclose(many, np.stack(one), atol=1e-3)  # px, after some 300 iterations in float32


def test_reliability_marks_occlusions_and_leaving_the_frame():
  h, w = 20, 24
  fwd = np.zeros((h, w, 2), np.float32)
  back = np.zeros((h, w, 2), np.float32)
  fwd[5:10, 5:10] = [3.0, 0.0]  # a patch moves right; the flow back there says the background stayed
  fwd[:, -2:] = [4.0, 0.0]  # leaves the frame
  back[:, -2:] = [-4.0, 0.0]
  rel = np.asarray(flow.reliability(fwd, back))
  assert rel[5:10, 5:10].sum() == 0 and rel[:, -2:].sum() == 0
  assert rel[14:, :12].min() == 1.0


# --------------------------------------------------------------------------- temporal consistency


def dense_solution(p, wp, wt):
  """The normal equations ``(diag(w) + L) o = w wp + L p`` solved densely (L: the grid graph's Laplacian)."""
  h, w = wt.shape
  n = h * w
  lap = np.zeros((n, n))
  for i in range(h):
    for j in range(w):
      for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        if 0 <= i + di < h and 0 <= j + dj < w:
          k, m = i * w + j, (i + di) * w + j + dj
          lap[k, k] += 1
          lap[k, m] -= 1
  a = np.diag(wt.ravel()) + lap
  rhs = wt.ravel()[:, None] * wp.reshape(n, 3) + lap @ p.reshape(n, 3)
  return np.linalg.solve(a, rhs).reshape(h, w, 3)


@pytest.mark.parametrize("variant", ["plain", "jit", "vmap"])
def test_consistent_frame_solves_the_normal_equations(variant):
  rng = np.random.default_rng(2)
  p = rng.uniform(0.2, 0.8, (5, 6, 3)).astype(np.float32)
  wp = rng.uniform(0.2, 0.8, (5, 6, 3)).astype(np.float32)
  wt = (rng.uniform(0, 3, (5, 6)) * (rng.uniform(size=(5, 6)) > 0.3)).astype(np.float32)
  want = dense_solution(p, wp, wt)
  assert 0 < want.min() and want.max() < 1  # the clip to [0, 1] does not act
  solve = lambda a, b, c: temporal.consistent_frame(a, b, c, iterations=60)  # noqa: E731
  np.testing.assert_allclose(variants(solve)[variant](p, wp, wt), want, atol=1e-4)


def test_consistent_frame_limits():
  p, wp = texture(1, 10, 12), texture(2, 10, 12)
  np.testing.assert_allclose(temporal.consistent_frame(p, wp, np.zeros((10, 12)), iterations=5), p, atol=1e-6)
  np.testing.assert_allclose(temporal.consistent_frame(p, wp, np.full((10, 12), 1e6), iterations=5), wp, atol=1e-4)


def test_restore_detail_matches_numpy():
  p = texture(5, 24, 32)
  box = lambda x: np.asarray(temporal._box3(jnp.asarray(x)))  # noqa: E731
  soft = (0.6 * p + 0.4 * box(p)).astype(np.float32)
  hs, hp = soft - box(soft), p - box(p)
  gain = np.sqrt((hp**2).mean((0, 1)) / (hs**2).mean((0, 1)))
  assert (gain > 1.2).all()
  want = np.clip(soft + (gain - 1) * hs, 0, 1)
  np.testing.assert_allclose(temporal.restore_detail(soft, p), want, atol=1e-5)
  np.testing.assert_allclose(temporal.restore_detail(p, p), p, atol=1e-6)  # already as detailed: unchanged
  np.testing.assert_allclose(temporal.restore_detail(p, soft), p, atol=1e-6)  # never blurs


@pytest.mark.slow
def test_matched_fraction_and_cut():
  frames = panning(2, 24, 32, dx=1)
  other = panning(2, 24, 32, dx=1, cut=0)
  same = frames_mod.motion(frames[:1], frames[1:], flow_size=None)
  cut = frames_mod.motion(frames[:1], other[1:], flow_size=None)
  assert float(same.matched[0]) > 0.8 and float(cut.matched[0]) < 0.3


def test_score_clip_equals_the_per_image_measures(tiny_params):
  from jaxstyle.objective import metrics

  ins, outs = panning(3, 40, 48, dx=1), panning(3, 40, 48, dx=1, cut=0)
  style = rng_image(8, 30, 30)
  got = measures.score_clip(tiny_params, (images.to_uint8(f) for f in ins), outs, style)
  s = images.resize(style, 48)
  frames = [np.asarray(images.to_uint8(f), np.float32) / 255 for f in ins]
  want_style = [float(metrics.style_distance(tiny_params, o[None], s[None])[0]) for o in outs]
  pairs = zip(outs, frames, strict=True)
  want_content = [float(metrics.content_distance(tiny_params, o[None], f[None])[0]) for o, f in pairs]
  np.testing.assert_allclose(got["style_gram"], want_style, rtol=1e-5)
  np.testing.assert_allclose(got["content"], want_content, rtol=1e-5)
  want_warp = [float(measures.warping_error(outs[t], outs[t - 1], *measures.input_motion(frames[t - 1], frames[t])))
               for t in (1, 2)]  # fmt: skip
  np.testing.assert_allclose(got["warping_error"], want_warp, rtol=1e-5)


# --------------------------------------------------------------------------- a clip through the network


@pytest.fixture(scope="module")
def nets():
  return Networks(
    predictor=magenta.init_params(jax.random.key(1), PREDICTOR),
    transformer=magenta.init_params(jax.random.key(2), TRANSFORMER),
    predictor_model=PREDICTOR,
  )


def clip_settings(**kw):
  return VideoSettings(**{"size": None, "style_size": 16, "batch": 3, "flow_size": None, **kw})


STYLE = rng_image(5, 30, 30)


@pytest.mark.slow
def test_clip_is_consistent_restarts_at_a_cut_and_compiles_once(nets):
  frames = panning(9, 32, 40, dx=1, cut=5)
  per_frame = [o for o, _ in vfast.stylize_clip(frames, [STYLE], clip_settings(consistency=False), nets)]
  vfast._consistent_chunk._clear_cache()
  results = list(vfast.stylize_clip(frames, [STYLE], clip_settings(), nets))
  assert vfast._consistent_chunk._cache_size() == 1  # three batches (the last padded): one program
  outs, shots = np.stack([o for o, _ in results]), [i for i, (_, s) in enumerate(results) if s]
  assert shots == [0, 5]
  for i in shots:  # a shot's first frame is its own rendering, exactly
    np.testing.assert_array_equal(outs[i], per_frame[i])
  errs = lambda o: [  # noqa: E731
    float(measures.warping_error(o[t], o[t - 1], *measures.input_motion(frames[t - 1], frames[t])))
    for t in range(1, len(o))
    if t != 5
  ]
  assert np.mean(errs(outs)) < 0.7 * np.mean(errs(np.stack(per_frame)))


def test_frames_of_another_size_are_refused(nets):
  frames = list(panning(3, 24, 32))
  frames.insert(2, frames[0][:20])
  with pytest.raises(InputError, match="frame 2 is 32x20 px, the clip's first 32x24"):
    list(vfast.stylize_clip(frames, [STYLE], clip_settings(batch=2, consistency=False), nets))


@pytest.mark.slow
def test_clip_does_not_depend_on_the_batch(nets):
  frames = panning(7, 24, 32, dx=1, dy=1)
  a = np.stack([o for o, _ in vfast.stylize_clip(frames, [STYLE], clip_settings(batch=2), nets)])
  b = np.stack([o for o, _ in vfast.stylize_clip(frames, [STYLE], clip_settings(batch=7), nets)])
  np.testing.assert_allclose(a, b, atol=2e-4)


def test_a_frame_that_fails_midway_comes_after_every_whole_batch_before_it(nets):
  """The next batch is read while this one is finished: a decoding error there must not lose this one."""
  frames = panning(7, 24, 32, dx=1)

  def failing():
    yield from frames[:5]
    raise video.VideoError("frame 5 does not decode")

  got = []
  with pytest.raises(video.VideoError, match="frame 5"):
    for out, _ in vfast.stylize_clip(failing(), [STYLE], clip_settings(batch=2), nets):
      got.append(out)
  want = [o for o, _ in vfast.stylize_clip(frames[:4], [STYLE], clip_settings(batch=2), nets)]
  assert len(got) == 4  # frames 0-3 (two whole batches); frame 4's batch never completed
  np.testing.assert_array_equal(np.stack(got), np.stack(want))


# --------------------------------------------------------------------------- files


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".gif", ""])
def test_writer_keeps_frames_rate_and_audio(tmp_path, suffix):
  frames = panning(12, 48, 64, dx=2)
  write_clip(tmp_path / "in.mp4", frames, rate=Fraction(30000, 1001))
  info = video.probe(tmp_path / "in.mp4")
  assert (info.width, info.height, info.frames, info.rate, info.audio) == (64, 48, 12, Fraction(30000, 1001), True)
  out = tmp_path / f"out{suffix}"
  with video.VideoWriter(out, rate=info.rate, time_base=info.time_base, audio_from=str(tmp_path / "in.mp4")) as w:
    for f in video.read_frames(tmp_path / "in.mp4"):
      w.write(f.pixels[:47], time=f.time)  # an odd height: cropped to even in yuv420p
  got = list(video.read_frames(out))
  assert len(got) == 12
  if suffix in (".mp4", ".mkv"):
    back = video.probe(out)
    assert back.rate == info.rate and (back.width, back.height) == (64, 46)
    assert audio_packets(out) == audio_packets(tmp_path / "in.mp4")
    times, want = [f.time for f in got], [f.time for f in video.read_frames(tmp_path / "in.mp4")]
    if suffix == ".mkv":  # Matroska moves every stream by AAC's priming so that none starts before 0
      times, want = np.diff(times), np.diff(want)
    np.testing.assert_allclose(times, want, atol=1e-3)
    source = list(video.read_frames(tmp_path / "in.mp4"))[5].pixels[:46].astype(float)
    assert np.abs(got[5].pixels.astype(float) - source).mean() < 6  # a fine texture through yuv420p twice
  if suffix == "":
    assert sorted(p.name for p in out.iterdir())[:2] == ["000000.png", "000001.png"]


@pytest.mark.slow
def test_frame_range_and_its_audio(tmp_path):
  write_clip(tmp_path / "in.mp4", panning(20, 32, 32), rate=Fraction(25))
  part = list(video.read_frames(tmp_path / "in.mp4", start=5, count=10))
  assert [f.index for f in part] == list(range(5, 15)) and part[0].time == pytest.approx(0.2)
  with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(25), audio_from=str(tmp_path / "in.mp4"),
                         start_time=0.2, end_time=0.6) as w:  # fmt: skip
    for f in part:
      w.write(f.pixels, time=f.time)
  assert [round(f.time, 3) for f in video.read_frames(tmp_path / "o.mp4")][:2] == [0.0, 0.04]
  with av.open(str(tmp_path / "o.mp4")) as c:
    a = c.streams.audio[0]
    t = [float(p.pts * a.time_base) for p in c.demux(a) if p.size]
  assert 0 <= t[0] < 0.03 and 0.35 < t[-1] < 0.4  # 0.2 .. 0.6 s of the source, moved to start at 0


def test_bad_clips(tmp_path):
  (tmp_path / "text.mp4").write_text("not a video")
  (tmp_path / "empty").mkdir()
  for path, msg in [
    (tmp_path / "nope.mp4", "no such file"),
    (tmp_path / "text.mp4", "not a readable video"),
    (tmp_path / "empty", "no frames"),
  ]:
    with pytest.raises(video.VideoError, match=msg):
      video.probe(path)


@pytest.mark.slow
def test_truncated_clip_stops_at_its_last_whole_frame_and_the_partial_output_plays(tmp_path):
  write_clip(tmp_path / "in.mkv", panning(40, 64, 64, dx=2), audio=False)  # Matroska: its index is not needed
  data = (tmp_path / "in.mkv").read_bytes()
  (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
  n = 0
  with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(25)) as w:
    try:
      for f in video.read_frames(tmp_path / "cut.mkv"):
        w.write(f.pixels)
        n += 1
    except video.VideoError as e:
      assert f"frame {n} " in str(e)
  assert 0 < n < 40
  assert video.count_frames(tmp_path / "o.mp4") == n
  with pytest.raises(video.VideoError, match="not a readable video"):  # an MP4 cut in half has lost its index
    (tmp_path / "cut.mp4").write_bytes(b"\0\0\0\x18ftypisom" + data[20:200])
    video.probe(tmp_path / "cut.mp4")


# --------------------------------------------------------------------------- the command


@pytest.mark.real_weights
def test_cli_video(real_fast, real_params, tmp_path, capsys):
  write_clip(tmp_path / "in.mp4", panning(10, 48, 64, dx=1, cut=6))
  images.save_image(tmp_path / "s.png", rng_image(1, 64, 64))
  run = lambda *a: cli.main([str(x) for x in a])  # noqa: E731
  assert run("video", tmp_path / "in.mp4", tmp_path / "s.png", "-o", tmp_path / "o.mp4", "--start", "1", "-q") == 0
  rec = json.loads((tmp_path / "o.json").read_text())
  assert rec["frames"] == 9 and rec["shots"] == [1, 6] and rec["settings"]["start"] == 1
  assert video.count_frames(tmp_path / "o.mp4") == 9
  assert len(audio_packets(tmp_path / "o.mp4")) > 0
  capsys.readouterr()
  assert run("score", tmp_path / "in.mp4", tmp_path / "s.png", tmp_path / "o.mp4", "--start", "1", "--json") == 0
  score = json.loads(capsys.readouterr().out)["scores"][0]
  assert score["frames"] == 9 and len(score["per_frame"]["warping_error"]) == 8
  assert 0 < score["warping_error"] < 1 and 0 < score["style_gram"] < 2 and 0 < score["content"] < 2
  assert run("video", tmp_path / "in.mp4", "--builtin", "3", "-o", tmp_path / "frames", "--frames", "3", "-q") == 0
  assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["000000.png", "000001.png", "000002.png",
                                                                      "video.json"]  # fmt: skip
  capsys.readouterr()
  (tmp_path / "bad.mp4").write_text("x")
  for bad, msg in [
    (["video", tmp_path / "nope.mp4", tmp_path / "s.png", "-o", tmp_path / "x.mp4"], "no such file"),
    (["video", tmp_path / "bad.mp4", tmp_path / "s.png", "-o", tmp_path / "x.mp4"], "not a readable video"),
    (["video", tmp_path / "in.mp4", tmp_path / "in.mp4", "-o", tmp_path / "x.mp4"], "in.mp4"),
    (["video", tmp_path / "in.mp4", tmp_path / "s.png", "-o", tmp_path / "x.png"], "not a video file name"),
    (["video", tmp_path / "in.mp4", tmp_path / "s.png", "-o", tmp_path / "x.mp4", "--start", "50"], "past the"),
    (["video", tmp_path / "in.mp4", "-o", tmp_path / "x.mp4"], "give STYLE image(s)"),
    (["video", tmp_path / "in.mp4", "--builtin", "3", "-o", tmp_path / "frames"], "already holds frames"),
  ]:
    assert run(*bad) == 2, bad
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.slow
@pytest.mark.real_weights
def test_cli_video_interrupted_keeps_a_playable_clip(real_fast, tmp_path):
  write_clip(tmp_path / "in.mp4", panning(60, 48, 64, dx=1))
  images.save_image(tmp_path / "s.png", rng_image(1, 64, 64))
  run = processes.Lines(processes.jaxstyle_command("video", tmp_path / "in.mp4", tmp_path / "s.png", "-o",
                                                   tmp_path / "o.mp4", "--batch", "2"))  # fmt: skip
  run.wait_for(r"frame 6/60")
  run.proc.send_signal(signal.SIGINT)
  code, err = run.finish()
  assert code == 130 and "SIGINT at frame" in err and "Traceback" not in err, err
  rec = json.loads((tmp_path / "o.json").read_text())
  assert 6 <= rec["frames"] < 60 and rec["interrupted"] == "SIGINT"
  assert video.count_frames(tmp_path / "o.mp4") == rec["frames"]


def resident_mib() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.slow
def test_memory_does_not_grow_with_the_clip(nets, tmp_path):
  n, h, w = 160, 240, 320
  with video.VideoWriter(tmp_path / "in.mp4", rate=Fraction(25)) as out:
    for f in panning(n, h, w, dx=1):
      out.write(f)
  rss = {}
  with video.VideoWriter(tmp_path / "o.mp4", rate=Fraction(25)) as out:
    frames = (f.pixels for f in video.read_frames(tmp_path / "in.mp4"))
    for i, (o, _) in enumerate(vfast.stylize_clip(frames, [STYLE], clip_settings(batch=4), nets)):
      out.write(o)
      if i + 1 in (40, n):
        rss[i + 1] = resident_mib()
  assert video.count_frames(tmp_path / "o.mp4") == n
  # Holding the clip would take 120 more frames in and out at 0.9 MiB each in float32 (216 MiB).
  assert rss[n] - rss[40] < 25, rss
