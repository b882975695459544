"""The web workbench's functions called in this process on tiny networks: each tab returns what the library
returns, streams its live picture (or its clip's progress), stops, and turns a bad upload into one line in the
page."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio")

from jaxstyle import cli  # noqa: E402
from jaxstyle.cli import common  # noqa: E402
from jaxstyle.fast import stylize as fast  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.io import video as videoio  # noqa: E402
from jaxstyle.optim.stylize import stylize  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402
from jaxstyle.settings.fast import FastSettings  # noqa: E402
from jaxstyle.ui import app as workbench  # noqa: E402
from jaxstyle.ui import instant, paint, sweep, video  # noqa: E402
from jaxstyle.ui.context import Context  # noqa: E402
from jaxstyle.ui.jobs import Session  # noqa: E402
from tests.test_ui_helpers import clip_frames, inputs, tiny_fast, write_clip  # noqa: E402, F401

PAINT = dict(preset="gatys", ratio_log10=-3.0, size=40, steps=6, coarse=False, coarse_steps=0, colour="none",
             preview_every=3)  # fmt: skip


@pytest.fixture
def ctx(tmp_path, tiny_params, tiny_fast, tiny_weights_file):  # noqa: F811
  return Context(
    outputs=tmp_path / "outputs", params=tiny_params, networks=tiny_fast, weights_path=str(tiny_weights_file)
  )


def test_instant_writes_the_librarys_pixels(ctx, inputs, tiny_fast):  # noqa: F811
  content, style = images.load_image(inputs["content"]), images.load_image(inputs["style"])
  got = instant.run_fast(ctx, inputs["content"], inputs["style"], None, strength=1.0, size=40)
  want = fast.stylize_fast([content], [style], FastSettings(size=40), tiny_fast)[0]
  np.testing.assert_array_equal(images.load_image(got), images.load_image(_png(want, ctx.outputs / "want.png")))
  assert Path(got).is_relative_to(ctx.outputs)


def test_instant_blends_two_styles_and_two_builtin_styles(ctx, inputs, tiny_fast):  # noqa: F811
  c, s, s2 = (images.load_image(inputs[k]) for k in ("content", "style", "style2"))
  got = instant.run_fast(ctx, inputs["content"], inputs["style"], inputs["style2"], blend=0.25, size=40)
  want = fast.stylize_fast([c], [s, s2], FastSettings(size=40, style_blend=(0.75, 0.25)), tiny_fast)[0]
  np.testing.assert_array_equal(images.load_image(got), images.load_image(_png(want, ctx.outputs / "a.png")))
  got = instant.run_fast(ctx, inputs["content"], None, None, "built-in", 3, 12, 0.5, 0.5, "luminance", 40)
  settings = FastSettings(size=40, builtin=((3, 0.5), (12, 0.5)), strength=0.5, preserve_color="luminance")
  want = fast.stylize_fast([c], [], settings, tiny_fast)[0]
  np.testing.assert_array_equal(images.load_image(got), images.load_image(_png(want, ctx.outputs / "b.png")))


def _png(image, path: Path) -> str:
  path.parent.mkdir(parents=True, exist_ok=True)
  images.save_image(path, image)
  return str(path)


@pytest.mark.parametrize(
  "upload, message",
  [
    ("notes", "the content: not an image Pillow can read"),
    ("bomb", "the content: too many pixels (possible decompression bomb)"),
    (None, "upload the content"),
  ],
)
def test_a_bad_upload_is_one_line_in_the_page(ctx, inputs, upload, message):  # noqa: F811
  path = inputs[upload] if upload else None
  assert _message(lambda: instant.run_fast(ctx, path, inputs["style"], None, size=40)).startswith(message)
  assert _message(lambda: next(paint.run_paint(ctx, inputs["content"], inputs["notes"], **PAINT))).startswith(
    "the style: not an image"
  )
  empty = Path(inputs["content"]).with_name("empty.png")
  empty.write_bytes(b"")
  run = paint.run_paint(ctx, inputs["content"], inputs["style"], **PAINT, mask=str(empty))
  assert _message(lambda: next(run)) == "the mask: empty file"


def _message(fn) -> str:
  """The message of the ``gr.Error`` that ``fn()`` raises."""
  with pytest.raises(gr.Error) as e:
    fn()
  return e.value.message


def test_bad_settings_and_small_images_are_one_line(ctx, inputs):  # noqa: F811
  assert "relu9_9" in _message(lambda: paint.config_for("gatys", -3, 64, 5, False, 0, "none", "relu9_9:1"))
  assert _message(lambda: sweep.parse_grid("1e-3,abc", "")).startswith("ratios: expected")
  assert _message(lambda: sweep.parse_grid("", "")).startswith("give at least one")
  tiny = Path(inputs["content"]).with_name("tiny.png")
  images.save_image(tiny, np.zeros((2, 40, 3), np.float32))
  assert "too small" in _message(lambda: next(paint.run_paint(ctx, str(tiny), inputs["style"], **PAINT)))


@pytest.mark.parametrize("name", ["jaxstyle", "gatys", "neural-style", "pytorch-course", "tf-tutorial"])
def test_a_presets_own_controls_give_the_preset(name):
  ratio, size, steps, coarse, coarse_steps = paint.preset_controls(name)
  got = paint.config_for(name, ratio, size, steps, coarse, coarse_steps, "none", preview_every=25)
  want = presets.get(name).resolve()
  assert got.loss == want.loss and got.images.scales == want.images.scales and got.run.steps == want.run.steps


def test_paint_streams_its_iterate_then_the_result_its_record_and_command(ctx, inputs, tiny_params):  # noqa: F811
  updates = list(
    paint.run_paint(ctx, inputs["content"], inputs["style"], **PAINT, mask=inputs["mask"], start=inputs["style2"])
  )
  previews, (image, summary, files, command) = updates[:-1], updates[-1]
  steps = [u[1].split()[1] for u in previews]  # the page gets the latest report: a busy machine may skip 3/6
  assert steps[-1] == "6/6" and set(steps) <= {"3/6", "6/6"}
  assert all(u[0].dtype == np.uint8 and u[0].shape == (32, 40, 3) for u in previews)
  assert "it/s" in previews[0][1] and "ETA" in previews[0][1]
  assert summary.startswith("done at step 6/6")
  assert files == [image, str(Path(image).with_suffix(".json"))]
  # the library on the same arrays and settings gives the same pixels
  config = paint.config_for("gatys", -3.0, 40, 6, False, 0, "none", "", 3, mask=inputs["mask"], init=inputs["style2"])
  want = stylize(images.load_image(inputs["content"]), [images.load_image(inputs["style"])], config,
                 params=tiny_params, mask=images.load_image(inputs["mask"]),
                 init_image=images.load_image(inputs["style2"])).image  # fmt: skip
  np.testing.assert_array_equal(images.load_image(image), images.load_image(_png(want, ctx.outputs / "w.png")))
  # the command names copies of the uploads in the job's folder and parses back into the run's settings
  words = shlex.split(command)
  args = cli.build_parser().parse_args(words[1:])
  assert Path(args.content).parent == Path(image).parent and Path(args.output) == Path(image)
  kept = Path(image).parent
  assert common.config_from_args(args) == config.set(mask=str(kept / "mask.png"), init=str(kept / "start.png"))
  assert args.weights == ctx.weights_path


def test_paint_takes_a_mask_drawn_in_the_page(ctx, inputs, tiny_params):  # noqa: F811
  content = images.load_image(inputs["content"])
  strokes = np.zeros((*content.shape[:2], 4), np.uint8)
  strokes[:, :10] = (255, 59, 48, 255)  # the left quarter painted
  sketch = {"background": images.to_uint8(content), "layers": [strokes], "composite": None}
  assert paint._sketch_on(inputs["content"])["background"].shape == content.shape
  assert paint._sketch_on(inputs["notes"]) is None
  *_, (image, _, _, command) = paint.run_paint(ctx, inputs["content"], inputs["style"], **PAINT, sketch=sketch)
  config = common.config_from_args(cli.build_parser().parse_args(shlex.split(command)[1:]))
  mask = images.load_image(config.images.mask)
  assert config.images.mask == str(Path(image).parent / "mask.png")
  assert (mask[:, :10] == 1).all() and (mask[:, 10:] == 0).all()
  result = images.load_image(image)
  np.testing.assert_array_equal(result[:, 10:], images.load_image(inputs["content"])[:, 10:])  # kept exactly
  assert not np.array_equal(result[:, :10], content[:, :10])
  assert "not both" in _message(
    lambda: next(paint.run_paint(ctx, inputs["content"], inputs["style"], **PAINT, mask=inputs["mask"], sketch=sketch))
  )
  assert paint.uploads.drawn_mask({"background": None, "layers": [np.zeros((4, 4, 4), np.uint8)]}, (4, 4)) is None


def test_stop_ends_the_run_with_the_image_so_far(ctx, inputs):  # noqa: F811
  session = Session()
  run = paint.run_paint(ctx, inputs["content"], inputs["style"], **{**PAINT, "steps": 300, "preview_every": 2},
                        session=session)  # fmt: skip
  first = next(run)  # the latest report: step 2, or later on a busy machine
  assert first[1].startswith("step ") and int(first[1].split()[1].split("/")[0]) % 2 == 0
  session.stop.set()
  *_, (image, summary, files, command) = run
  assert summary.startswith("stopped at step ") and int(summary.split()[3].split("/")[0]) < 300
  assert Path(image).exists() and "--steps 300" in command


def test_closing_the_page_stops_the_run(ctx, inputs):  # noqa: F811
  session = Session()
  run = paint.run_paint(ctx, inputs["content"], inputs["style"], **{**PAINT, "steps": 10_000, "preview_every": 2},
                        session=session)  # fmt: skip
  next(run)
  run.close()  # what Gradio does when the page goes: the run stops at its next chunk and the thread is done
  assert session.stop.is_set()


def test_each_session_has_its_own_jobs(ctx, inputs):  # noqa: F811
  a, b = Session(), Session()
  pa = instant.run_fast(ctx, inputs["content"], inputs["style"], None, size=40, session=a)
  pb = instant.run_fast(ctx, inputs["content"], inputs["style"], None, size=40, session=b)
  assert a.results == [pa] and b.results == [pb]
  assert Path(pa).parent.parent != Path(pb).parent.parent


def test_sweep_gives_members_their_scores_the_front_and_their_commands(ctx, inputs):  # noqa: F811
  session = Session()
  *progress, (gallery, table, records, summary, choice) = sweep.run_sweep(
    ctx, inputs["content"], inputs["style"], "gatys", "1e-3, 1e-1", "relu1_1\nrelu1_1,relu2_1", 40, 4, session
  )
  assert len(gallery) == len(records) == 4 and list(table["member"]) == [r["label"] for r in records]
  assert choice["choices"][0] == ("0: a/b=1e-03 relu1_1", 0)
  assert any(r["pareto"] for r in records)
  assert all(Path(r["image"]).exists() and r["command"].startswith("jaxstyle stylize ") for r in records)
  text, command = sweep.member_details(1, session)
  assert "content distance" in text and command == records[1]["command"]
  # a click in the gallery gives an index; a range brushed on the plot, the member nearest its middle
  assert sweep.nearest(gr.SelectData(None, {"index": 2, "value": None}), session) == 2
  xs = [r["content_distance"] for r in records]
  k = int(np.argmax(xs))
  assert sweep.nearest(gr.SelectData(None, {"index": [xs[k] - 1e-6, xs[k] + 1e-6], "value": None}), session) == k
  sent = sweep.to_paint(1, session)
  assert sent[2:8] == ("gatys", records[1]["ratio_log10"], 40, 4, False, records[1]["layers"])
  # the member's settings through Paint's controls are the member's own
  member = common.config_from_args(cli.build_parser().parse_args(shlex.split(command)[1:]))
  config = paint.config_for("gatys", sent[3], 40, 4, False, 0, "none", sent[7], preview_every=25)
  assert config.loss == member.loss


def test_the_app_has_the_four_endpoints_and_a_session_state(ctx, tiny_params, tiny_fast):  # noqa: F811
  app = workbench.build_app(params=tiny_params, networks=tiny_fast, outputs=ctx.outputs)
  names = {d.get("api_name") for d in app.config["dependencies"] if d.get("api_visibility", "public") == "public"}
  assert {"fast", "stylize", "sweep", "video"} <= names
  assert app.outputs == ctx.outputs.resolve()


def test_sweep_stop_keeps_every_member_with_fewer_steps(ctx, inputs):  # noqa: F811
  session = Session()
  run = sweep.run_sweep(ctx, inputs["content"], inputs["style"], "gatys", "1e-3, 1e-2, 1e-1", "", 40, 200, session)
  first = next(run)  # the first report: the first member is running
  assert first[3].startswith("3 members: step ")
  session.stop.set()
  *_, (gallery, table, records, summary, _) = run
  assert len(gallery) == len(records) == 3 and summary.startswith("stopped: 3 members")
  assert 0 < records[0]["steps_done"] < 200 and [r["steps_done"] for r in records[1:]] == [0, 0]
  assert all(Path(r["image"]).exists() and np.isfinite(r["content_distance"]) for r in records)
  assert set(table["Pareto front"]) <= {sweep.FRONT, sweep.DOMINATED}


# --------------------------------------------------------------------------- the Video tab

# quality 0: lossless H.264, whose frames decode the same however the encoder decided (at 18 the same frames
# encoded again decoded differently here)
VIDEO = dict(size=64, frames=0, strength=1.0, consistency=True, quality=0)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  """A 6-frame clip with an audio track, a 12-frame one, a text file named .mp4 and a clip with no frame."""
  import av

  folder = tmp_path_factory.mktemp("ui_clips")
  write_clip(folder / "six.mp4", frames=6, audio=True)
  write_clip(folder / "twelve.mp4", frames=12)
  (folder / "text.mp4").write_text("not a video")
  with av.open(str(folder / "empty.avi"), "w") as c:  # a video stream, no frame in it (AVI keeps such a stream)
    s = c.add_stream("libx264", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.start_encoding()
  return {k: str(folder / f"{k}.{'avi' if k == 'empty' else 'mp4'}") for k in ("six", "twelve", "text", "empty")}


def _library_clip(path: str, style, settings, networks, out: Path) -> np.ndarray:
  """The clip's frames through :func:`jaxstyle.video.fast.clip_frames`, written as the command writes them."""
  from jaxstyle.io import video as videoio
  from jaxstyle.video import fast as vfast

  info = videoio.probe(path)
  frames = list(videoio.read_frames(path, start=settings.start, count=settings.frames))
  outs = vfast.clip_frames((f.pixels for f in frames), [style], settings, networks)
  with videoio.VideoWriter(out, rate=info.rate, time_base=info.time_base, start_time=frames[0].time,
                           quality=settings.quality) as w:  # fmt: skip
    for f, o in zip(frames, outs, strict=True):
      w.write(o.output, time=f.time)
  return clip_frames(out)


def test_video_makes_the_librarys_clip_with_its_progress_record_and_command(ctx, inputs, clips, tiny_fast):  # noqa: F811
  from jaxstyle.io import video as videoio
  from jaxstyle.settings.video import VideoSettings

  updates = list(video.run_video(ctx, clips["six"], inputs["style"], **{**VIDEO, "start": 1}))
  (_, started, *_), previews, (_, summary, result, files, command) = updates[0], updates[1:-1], updates[-1]
  assert started.startswith("frame 0/5: reading the clip")
  assert previews and all(u[0].dtype == np.uint8 and u[0].shape == (48, 64, 3) for u in previews)
  assert previews[-1][1].startswith("frame 5/5") and "frames/s" in previews[-1][1]
  assert summary.startswith("done: 5/5 frames") and files == [result, str(Path(result).with_suffix(".json"))]
  got = clip_frames(result)
  settings = VideoSettings(size=64, start=1, quality=0)
  want = _library_clip(clips["six"], images.load_image(inputs["style"]), settings, tiny_fast, ctx.outputs / "w.mp4")
  np.testing.assert_array_equal(got, want)
  with av_open(result) as c:  # the audio track came along
    assert c.streams.audio
  # the command names copies of the uploads in the job's folder and parses back into the run's settings
  args = cli.build_parser().parse_args(shlex.split(command)[1:])
  assert args.command == "video" and Path(args.input) == Path(result).with_name("clip.mp4")
  assert Path(args.output) == Path(result) and args.style == [str(Path(result).with_name("style.png"))]
  assert common.settings_from_args(VideoSettings(), args) == settings
  assert videoio.probe(args.input).frames == 6


def av_open(path):
  import av

  return av.open(str(path))


def test_video_by_optimization_has_a_command_with_its_recipe(ctx, inputs, clips):  # noqa: F811
  from jaxstyle.settings.video import VideoSettings

  run = video.run_video(ctx, clips["six"], inputs["style"], method="optimize", preset="gatys", steps=4,
                        later_steps=3, **{**VIDEO, "size": 40, "frames": 2})  # fmt: skip
  *previews, (_, summary, result, _, command) = run
  assert any("step " in u[1] for u in previews) and summary.startswith("done: 2/2 frames")
  assert clip_frames(result).shape == (2, 30, 40, 3)
  args = cli.build_parser().parse_args(shlex.split(command)[1:])
  assert common.settings_from_args(VideoSettings(), args) == VideoSettings(method="optimize", size=40, frames=2,
                                                                           later_steps=3, quality=0)  # fmt: skip
  # the recipes the command's frames run (its size is the frames') are the run's
  from jaxstyle.video import optimize as voptimize

  recipe = common.config_from_args(args, resolve=False, other=frozenset({"--clip"}))
  settings = common.settings_from_args(VideoSettings(), args)
  want = voptimize.frame_configs(presets.get("gatys").set(steps=4), settings, (30, 40))
  assert voptimize.frame_configs(recipe, settings, (30, 40)) == want and want[0].run.steps == 4
  assert args.weights == ctx.weights_path


def hold_after_the_first_frame(monkeypatch, session: Session) -> None:
  """The run's thread writes its first frame (its report goes out), then waits for the stop before the second:
  where the clip ends is then the stop's doing, not this machine's speed (the next batch renders ahead)."""
  write = videoio.VideoWriter.write

  def held(writer, pixels, *, time=None):
    if writer.frames == 1:
      assert session.stop.wait(timeout=120), "the test never stopped the run"
    write(writer, pixels, time=time)

  monkeypatch.setattr(videoio.VideoWriter, "write", held)


def test_video_stop_keeps_a_playable_clip_of_the_frames_done(ctx, inputs, clips, monkeypatch):  # noqa: F811
  session = Session()
  hold_after_the_first_frame(monkeypatch, session)
  run = video.run_video(ctx, clips["twelve"], inputs["style"], **VIDEO, session=session)
  assert next(run)[1].startswith("frame 0/12")
  assert next(run)[1].split()[1] in {"1/12", "2/12", "3/12", "4/12"}  # a frame of the first batch
  session.stop.set()  # the batch under way (4 frames) is finished and written, then the clip ends
  *_, (_, summary, result, _, command) = run
  assert summary.startswith("stopped: 4/12 frames") and clip_frames(result).shape[0] == 4
  assert "--frames none" in command


def test_closing_the_page_ends_the_clip_and_keeps_what_was_written(ctx, inputs, clips, monkeypatch):  # noqa: F811
  session = Session()
  hold_after_the_first_frame(monkeypatch, session)
  run = video.run_video(ctx, clips["twelve"], inputs["style"], **VIDEO, session=session)
  next(run)
  next(run)  # a frame of the first batch is out
  run.close()  # what Gradio does when the page goes: the clip ends at the batch's end and the writer closes
  assert session.stop.is_set()
  (result,) = ctx.outputs.rglob("result.mp4")
  assert clip_frames(result).shape[0] == 4


@pytest.mark.parametrize(
  "clip, settings, message",
  [
    ("text", {}, "the clip: not a readable video"),
    ("empty", {}, "the clip: no frames"),
    (None, {}, "upload a clip"),
    ("six", {"start": 6}, "start 6 is past the clip's 6 frames"),
    ("six", {"source": "built-in", "method": "optimize"}, "the optimization matches a style image"),
    ("six", {"size": 2}, "size"),
  ],
)
def test_a_bad_clip_or_setting_is_one_line_in_the_page(ctx, inputs, clips, clip, settings, message):  # noqa: F811
  path = clips[clip] if clip else None
  got = _message(lambda: next(video.run_video(ctx, path, inputs["style"], **{**VIDEO, **settings})))
  assert message in got and "\n" not in got and (not path or path not in got), got
  assert not list(ctx.outputs.rglob("result.mp4"))
