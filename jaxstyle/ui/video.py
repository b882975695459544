"""The Video tab (``/video``): a clip through the fast networks (or the optimization), frame after frame as
``jaxstyle video`` does it, with frames done, frames per second and the ETA while it runs; Stop keeps a playable
clip of the frames done; the result with its record and the ``jaxstyle video`` command that reproduces it."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gradio as gr
import numpy as np

from jaxstyle.errors import JaxstyleError, one_line
from jaxstyle.io import images
from jaxstyle.io import video as videoio
from jaxstyle.io.files import sidecar_path, write_json
from jaxstyle.settings import commands, presets
from jaxstyle.settings.style import StyleConfig
from jaxstyle.settings.video import VideoSettings
from jaxstyle.ui import instant, uploads
from jaxstyle.ui.context import Context
from jaxstyle.ui.jobs import Session, duration, mapped, stream
from jaxstyle.video import fast as vfast
from jaxstyle.video import frames as vframes
from jaxstyle.video import optimize as voptimize

METHODS = ("fast", "optimize")


def settings_for(
  source: str, builtin, method: str, size: int, start, frames, strength: float, consistency: bool, quality: int = 18
) -> VideoSettings:
  """The :class:`VideoSettings` the tab's controls mean (``frames`` 0 or empty: to the clip's end).

  Raises:
    gr.Error: a setting the library refuses, or a built-in style with the optimization.
  """
  if method not in METHODS:
    raise gr.Error(f"method: one of {', '.join(METHODS)}, not {method!r}", print_exception=False)
  if source == "built-in" and method == "optimize":
    raise gr.Error("the optimization matches a style image: upload one (built-in styles are the fast networks')",
                   print_exception=False)  # fmt: skip
  if source == "built-in" and builtin is None:
    raise gr.Error("choose a built-in style", print_exception=False)
  try:
    return VideoSettings(
      method=method,
      size=int(size),
      start=int(start or 0),
      frames=int(frames) if frames else None,
      strength=float(strength),
      consistency=bool(consistency),
      builtin=((int(builtin), 1.0),) if source == "built-in" else None,
      quality=int(quality),
    )
  except (JaxstyleError, ValueError, TypeError) as e:
    raise uploads.fail(e) from None


def recipe_for(preset: str, steps: int) -> StyleConfig:
  """Each frame's recipe (``--method optimize``): the preset with the first frame's steps, its size left to the
  frames (as the command leaves it)."""
  try:
    return presets.get(preset).set(steps=int(steps))
  except (JaxstyleError, KeyError, ValueError) as e:
    raise uploads.fail(e) from None


def probe(path: str | None) -> videoio.ClipInfo:
  """The uploaded clip, checked as the command checks its input (one line naming ``the clip``)."""
  if not path:
    raise gr.Error("upload a clip", print_exception=False)
  try:
    return videoio.probe(path)
  except JaxstyleError as e:
    # FFmpeg's own words may name the file again: the page names the upload, not the server's folders
    text = one_line(e).replace(str(path) + ": ", "").replace(str(path), Path(path).name)
    raise gr.Error(f"the clip: {text}", print_exception=False) from None


def frame_count(info: videoio.ClipInfo, settings: VideoSettings) -> int | None:
  """How many frames the run makes (``None``: the container does not say and no count was given)."""
  try:
    return vframes.frames_to_make(info.frames, start=settings.start, frames=settings.frames)
  except JaxstyleError as e:
    raise uploads.fail(e) from None


@dataclasses.dataclass(frozen=True)
class Report:
  """What the page shows of a running clip: the latest output frame (8-bit) and the progress numbers."""

  image: np.ndarray | None
  done: int
  total: int | None
  frames_per_s: float | None
  step: str = ""  # the optimization's step within the frame being made

  def text(self) -> str:
    rate = f"  {self.frames_per_s:.2f} frames/s" if self.frames_per_s else ""
    eta = ""
    if self.total and self.frames_per_s:
      eta = f"  ETA {duration((self.total - self.done) / self.frames_per_s)}"
    return f"frame {self.done}/{self.total or '?'}{rate}{eta}{self.step}"


class _Rate:
  """Frames per second from the end of the first batch of frames, which compiles (as the command's progress),
  measured at batch ends (a batch's frames come at once)."""

  def __init__(self):
    self.t0 = self.n0 = self.rate = None

  def __call__(self, done: int, boundary: bool) -> float | None:
    if boundary:
      now = time.perf_counter()
      if self.t0 is None:
        self.t0, self.n0 = now, done
      elif now > self.t0:
        self.rate = (done - self.n0) / (now - self.t0)
    return self.rate


def _outputs(settings, pixels, *, styles, networks, params, recipe, callback, stop) -> Iterator[tuple]:
  """``(output, shot_start, boundary)`` per frame, by the method's library function; ``boundary``: a place to
  stop (a batch's end: the frames after it in the batch are computed already and written too)."""
  if settings.method == "fast":
    for f in vfast.clip_frames(pixels, styles, settings, networks):
      yield f.output, f.shot_start, f.resume is not None
    return

  def step(i, p):  # the optimization's progress within frame i
    if p.lead and p.report:
      callback(("step", f"  (frame {settings.start + i}: step {p.step}/{p.steps})"))

  for frame in voptimize.stylize_clip(pixels, styles, settings, recipe, params=params, callback=step, stop=stop):
    yield frame.output, frame.shot_start, True


def _render(
  callback: Callable, stop: Callable[[], bool], *, info, settings, out: Path, total, styles, networks, params, recipe
) -> dict:
  """Streams the clip's frames through the method into the writer until the end or Stop (at a batch's end), as
  the command does; returns the run's numbers. The writer closes (and renames the file into place) on any way
  out, so the frames written are a playable clip."""
  frames = videoio.read_frames(info.path, start=settings.start, count=settings.frames)
  first = next(frames, None)
  if first is None:
    raise videoio.VideoError(f"no frame {settings.start} (the clip has {info.frames} frames)")
  end = None if settings.frames is None else first.time + settings.frames / float(info.rate)
  writer = videoio.VideoWriter(out, rate=info.rate, time_base=info.time_base, audio_from=info.path if info.audio
                               else None, start_time=first.time, end_time=end, quality=settings.quality)  # fmt: skip
  rate, shots, stopped = _Rate(), [], False
  with writer:
    outputs = functools.partial(_outputs, settings, styles=styles, networks=networks, params=params, recipe=recipe,
                                callback=callback, stop=stop)  # fmt: skip
    for frame, (output, shot, boundary) in vframes.paired(itertools.chain([first], frames), outputs):
      writer.write(output, time=frame.time)
      if shot:
        shots.append(frame.index)
      callback(("frame", images.to_uint8(output), writer.frames, rate(writer.frames, boundary)))
      if boundary and stop():
        stopped = True
        break
  # the optimization ends at a stop inside a frame without yielding it
  stopped = stopped or (stop() and (total is None or writer.frames < total))
  return {"frames": writer.frames, "shots": shots, "stopped": stopped}


def _reports(total: int | None) -> Callable:
  """The page's :class:`Report` from the run's callbacks: a frame written, or a step within a frame."""
  last = {"report": Report(None, 0, total, None)}

  def report(event) -> Report:
    if event[0] == "frame":
      _, image, done, fps = event
      last["report"] = Report(image, done, total, fps)
    else:
      last["report"] = dataclasses.replace(last["report"], step=event[1])
    return last["report"]

  return report


def run_video(
  ctx: Context,
  clip: str | None,
  style: str | None,
  source: str = "upload",
  builtin: int | None = 0,
  method: str = "fast",
  preset: str = "gatys",
  steps: int = 100,
  later_steps: int = 50,
  size: int = 256,
  start: int = 0,
  frames: int = 0,
  strength: float = 1.0,
  consistency: bool = True,
  quality: int = 18,
  session: Session | None = None,
):
  """A generator for the page: ``(frame, progress, video, files, command)`` at every frame (the latest output
  frame, 8-bit), then the clip, a summary, ``[clip, JSON record]`` and the reproducing command.

  Raises:
    gr.Error: a missing or bad upload (not a video, no frames), bad settings, missing weights.
  """
  session = session or Session()
  stop = session.start()
  settings = settings_for(source, builtin, method, size, start, frames, strength, consistency, quality)
  if settings.method == "optimize":
    settings = settings.replace(later_steps=int(later_steps))
  info = probe(clip)
  total = frame_count(info, settings)
  styles = [uploads.read(style, "the style")] if source == "upload" else []
  recipe = recipe_for(preset, steps) if settings.method == "optimize" else None
  folder = session.job_folder(ctx.outputs, "video")
  kept = {"clip": uploads.keep(clip, folder, "clip", default_suffix=".mp4")}
  if source == "upload":
    kept["style"] = uploads.keep(style, folder, "style")
  out = folder / "result.mp4"
  command = commands.video_command(kept["clip"], [kept["style"]] if styles else [], os.fspath(out), settings, recipe,
                          ctx.command_weights())  # fmt: skip
  if settings.method == "fast":
    networks, params = ctx.fast(builtin=settings.builtin is not None, predictor=settings.strength < 1.0), None
  else:
    networks, params = None, ctx.vgg()
  render = functools.partial(_render, info=info, settings=settings, out=out, total=total, styles=styles,
                             networks=networks, params=params, recipe=recipe)  # fmt: skip
  t0 = time.perf_counter()
  yield None, f"frame 0/{total or '?'}: reading the clip, compiling for the first batch", None, None, ""
  try:
    done = yield from mapped(stream(render, stop, report=_reports(total)),
                             lambda r: (r.image, r.text(), None, None, ""))  # fmt: skip
  except JaxstyleError as e:
    raise uploads.fail(e) from None
  wall = time.perf_counter() - t0
  if not done["frames"]:
    raise gr.Error("stopped before the first frame was done: nothing to show", print_exception=False)
  record = {
    "output": os.fspath(out),
    "reproduce": command,
    "input": kept["clip"],
    "style": [kept["style"]] if styles else [],
    "settings": dataclasses.asdict(settings),
    "recipe": None if recipe is None else recipe.to_dict(),
    "frames": done["frames"],
    "rate": str(info.rate),
    "shots": done["shots"],
    "interrupted": "stopped" if done["stopped"] else None,
    "wall_s": wall,
    "weights": ctx.command_weights() if recipe is not None else None,
  }
  side = sidecar_path(out)
  write_json(side, record)
  session.results.append(os.fspath(out))
  state = "stopped" if done["stopped"] else "done"
  summary = (
    f"{state}: {done['frames']}/{total or '?'} frames in {duration(wall)} ({done['frames'] / wall:.2f} frames/s), "
    f"{len(done['shots'])} shot(s)"
  )
  yield gr.update(), summary, os.fspath(out), [os.fspath(out), side], command


def build(ctx: Context, session: gr.State) -> None:
  """The tab's controls and events (inside a ``gr.Tab``)."""
  with gr.Row():
    with gr.Column():
      with gr.Row():
        # format=None: the upload reaches the app as the file it was (no conversion), read with the command's checks
        clip = gr.Video(label="Clip", sources=["upload"], format=None, include_audio=True, height=220,
                        elem_id="video-clip")  # fmt: skip
        style = uploads.Upload("Style", elem_id="video-style", height=220)
      with gr.Row():
        source = gr.Radio(list(instant.SOURCES), value="upload", label="Style from", elem_id="video-source")
        builtin = gr.Dropdown(instant.BUILTIN_CHOICES, value=0, label="Built-in style (fast)", elem_id="video-builtin")
      with gr.Row():
        method = gr.Radio(list(METHODS), value="fast", label="Method (optimize: Gatys et al. per frame, slow)",
                          elem_id="video-method")  # fmt: skip
        consistency = gr.Checkbox(value=True, label="Temporally consistent (no flicker)", elem_id="video-consistency")
      with gr.Row():
        size = gr.Slider(64, 1024, value=256, step=16, label="Size (longest side, px)", elem_id="video-size")
        strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength (fast)")
      with gr.Row():
        start = gr.Number(value=0, precision=0, minimum=0, label="First frame", elem_id="video-start")
        frames = gr.Number(value=0, precision=0, minimum=0, label="Frames (0: to the end)", elem_id="video-frames")
      with gr.Accordion("Quality, the optimization", open=False, elem_id="video-more"):
        quality = gr.Slider(0, 51, value=18, step=1, label="H.264 quality (CRF: lower is better, 0 lossless)",
                            elem_id="video-quality")  # fmt: skip
        with gr.Row():
          preset = gr.Dropdown(sorted(presets.PRESETS), value="gatys", label="Preset", elem_id="video-preset")
          steps = gr.Slider(1, 2000, value=100, step=1, label="Steps, a shot's first frame", elem_id="video-steps")
          later = gr.Slider(1, 1000, value=50, step=1, label="Steps, later frames", elem_id="video-later")
      with gr.Row():
        go = gr.Button("Stylize the clip", variant="primary", elem_id="video-run")
        halt = gr.Button("Stop", variant="stop", elem_id="video-stop")
    with gr.Column():
      preview = gr.Image(label="Latest frame", type="numpy", interactive=False, elem_id="video-frame", height=200)
      progress = gr.Textbox(label="Progress", interactive=False, elem_id="video-progress")
      result = gr.Video(label="Result", format=None, interactive=False, elem_id="video-result")
      files = gr.File(label="Result and its record", file_count="multiple", interactive=False, elem_id="video-files")
      command = gr.Code(label="The command that reproduces it", language="shell", interactive=False, wrap_lines=True,
                        elem_id="video-command")  # fmt: skip
  inputs = [clip, style, source, builtin, method, preset, steps, later, size, start, frames, strength, consistency,
            quality]  # fmt: skip
  go.click(
    functools.partial(run_video, ctx),
    inputs=[*inputs, session],
    outputs=[preview, progress, result, files, command],
    api_name="video",
    concurrency_id="device",
    concurrency_limit=1,
  )
  halt.click(lambda s: s.stop.set(), inputs=session, api_visibility="private", queue=False)
