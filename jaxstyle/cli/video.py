"""``jaxstyle video``: a clip (a video file or a folder of frames) through the fast networks, without flicker."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from jaxstyle.cli import common
from jaxstyle.cli import fast as fast_cli
from jaxstyle.cli.common import CliError
from jaxstyle.errors import InputError
from jaxstyle.io import checkpoint, images, magenta_weights, vgg_weights
from jaxstyle.io import video as videoio
from jaxstyle.io.files import file_digest, sidecar_path, write_json
from jaxstyle.settings import commands
from jaxstyle.settings.style import StyleConfig
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import clip as vclip
from jaxstyle.video import fast as vfast
from jaxstyle.video import frames as vframes
from jaxstyle.video import optimize as voptimize

# Flags of the recipe's (StyleConfig's) that mean another setting here: --clip is the window, not pixel clipping.
OWN_FLAGS = commands.VIDEO_OWN_FLAGS


def add_parser(sub) -> None:
  p = sub.add_parser(
    "video",
    help="stylize a video (or a folder of frames) with the fast networks, temporally consistent",
    description="Render the clip IN in the style of STYLE image(s) with Magenta's networks (or --builtin N, or "
    "--model MODEL.h5), frame after frame, each frame made consistent with the previous output where the optical "
    "flow is reliable (Bonneel et al. 2015), restarting at scene cuts. IN is a video file (mp4, mov, mkv, webm, "
    "gif, ...) or a folder of frames; OUT is a video file (H.264 in mp4/mov/mkv, VP9 in webm, or gif; the input's "
    "frame rate and timestamps; its audio track copied unchanged where the container takes it) or a folder of "
    "PNG frames. Frames are streamed: memory does not depend on the clip's length. An interrupted run leaves a "
    "playable OUT with the frames done and its state beside it (out.state.npz for out.mp4, OUT/state.npz in a folder); "
    "the same command with --resume goes on from there to the result of an uninterrupted run. "
    "--method optimize instead runs Gatys et al.'s optimization on each frame "
    "(a preset and its flags, as 'jaxstyle stylize'), every frame after a shot's first started from the previous "
    "output warped into it with a temporal loss (Ruder et al. 2016). Needs PyAV: pip install 'jaxstyle[video]'.",
  )
  p.add_argument("input", metavar="IN", help="video file, or a folder of frames")
  fast_cli.add_network_args(p)
  p.add_argument("-o", "--output", metavar="OUT", required=True, help="video file, or a folder for PNG frames")
  g = p.add_argument_group("settings ('none' unsets an optional value)")
  common.add_setting_flags(g, VideoSettings.declarations())
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
  p.add_argument(
    "--resume",
    action="store_true",
    help="continue an interrupted run of this command from the state beside OUT (the same settings and inputs; "
    "not for gif)",
  )
  shared = frozenset(d.flag for d in VideoSettings.declarations()) | {"--quiet"}
  common.add_recipe_args(p, title="each frame's recipe, with --method optimize", shared=shared)
  p.set_defaults(handler=run)


def _check_args(args: argparse.Namespace, settings: VideoSettings) -> None:
  if settings.method == "optimize":
    if settings.builtin is not None or args.model:
      raise CliError("--method optimize matches STYLE image(s); --builtin and --model are the fast networks'")
    if not args.style:
      raise CliError("give STYLE image(s)")
  given = {d.flag for d in StyleConfig.declarations() if hasattr(args, d.dest)} - {
    d.flag for d in VideoSettings.declarations()
  }  # --clip included: VideoSettings' own
  if settings.method == "fast" and settings.clip_window is not None:
    raise CliError("--clip optimizes windows of frames: it needs --method optimize")
  if settings.method == "fast" and (given or args.preset or args.weights):
    raise CliError(f"{', '.join(sorted(given)) or '--preset/--weights'}: recipe flags need --method optimize")
  needs_style = settings.builtin is None and not args.model
  if needs_style and not args.style:
    raise CliError("give STYLE image(s), --builtin N, or --model MODEL.h5")
  if not needs_style and args.style:
    raise CliError("STYLE images are not used with --builtin or --model; leave them out")
  if os.path.isdir(args.output) and videoio.is_video_path(args.output):
    raise CliError(f"{args.output}: is a folder, but its name says video file")
  if not videoio.is_video_path(args.output) and os.path.splitext(args.output)[1]:
    suffixes = ", ".join(videoio.VIDEO_SUFFIXES)
    raise CliError(f"{args.output}: not a video file name ({suffixes}) nor a folder name (no suffix)")
  if args.resume and args.output.lower().endswith(".gif"):
    raise CliError(f"{args.output}: --resume cannot continue a GIF (each frame's delay is fixed as it is written)")
  has_frames = os.path.isdir(args.output) and any(n.endswith(".png") for n in os.listdir(args.output))
  if has_frames and not args.resume:
    raise CliError(f"{args.output}: already holds frames; remove them, choose another folder, or --resume")


def run(args: argparse.Namespace) -> int:
  settings = common.settings_from_args(VideoSettings(), args)
  if settings.mask:
    settings = settings.replace(mask=os.path.abspath(settings.mask))
  _check_args(args, settings)
  info = videoio.probe(args.input)
  _check_output(args, settings)
  total = _frame_count(info, settings)
  key = _state_key(args, settings)
  saved = _load_state(args.output, key) if args.resume else None
  styles = [images.load_image(p) for p in args.style]
  mask = images.load_image(settings.mask) if settings.mask else None
  earlier = {} if saved is None else saved.record
  optimize = settings.method == "optimize"
  method = _optimize(args, settings, styles, earlier) if optimize else _fast(args, settings, styles)
  frames = videoio.read_frames(info.path, start=settings.start, count=settings.frames)
  first = next(frames, None)
  if first is None:
    raise CliError(f"{args.input}: no frame {settings.start} (the clip has {info.frames} frames)")
  todo = _frames_after(itertools.chain([first], frames), saved, settings, args.output)
  with common.Signals() as signals:
    record = _stylize(args, settings, info, first.time, todo, method, mask, total, signals, saved, key)
  folder = not videoio.is_video_path(args.output)
  side = os.path.join(args.output, "video.json") if folder else sidecar_path(args.output)
  write_json(side, record)
  if signals.stop():
    print(f"jaxstyle: {signals.name} at frame {record['frames']}: {args.output} holds the frames done; the same "
          f"command with --resume goes on", file=sys.stderr)  # fmt: skip
    return signals.exit_code
  print(
    f"wrote {args.output}: {record['frames']} frames in {common.fmt_time(record['wall_s'])} "
    f"({record['frames'] / record['wall_s']:.2f} frames/s), {len(record['shots'])} shot(s); record {side}"
  )
  return 0


def _check_output(args: argparse.Namespace, settings: VideoSettings) -> None:
  inputs = [args.input, *args.style, *([settings.mask] if settings.mask else []), *([args.model] if args.model else [])]
  if not os.path.isdir(args.output):
    common.check_output(args.output, inputs, image=False)
  elif any(os.path.exists(i) and os.path.samefile(i, args.output) for i in inputs):  # a folder to continue
    raise CliError(f"{args.output}: output would overwrite input {args.input}")


def _frame_count(info: videoio.ClipInfo, settings: VideoSettings) -> int | None:
  try:
    return vframes.frames_to_make(info.frames, start=settings.start, frames=settings.frames)
  except InputError as e:
    raise CliError(f"{info.path}: {e}") from None


class _Method(NamedTuple):
  """How frames become outputs: ``run(stream, mask, progress, stop, resume)`` yields ``(output, shot_start,
  point)``, ``point`` where the clip can continue after the frame (or None), from the library's ``resume`` (or
  the clip's start when None); ``every`` frames make a progress line; ``record()`` adds to the run's record;
  ``state(point)`` is the point's arrays for the state file, ``resume(arrays, done)`` the point again."""

  run: Callable
  every: int
  record: Callable[[], dict]
  state: Callable[[object], dict]
  resume: Callable[[dict, int], object]


def _fast(args, settings: VideoSettings, styles) -> _Method:
  networks = fast_cli.networks_for(args, settings, stylizing=True)

  def run(stream, mask, progress, stop, resume):
    for f in vfast.clip_frames(stream, styles, settings, networks, mask=mask, resume=resume):
      yield f.output, f.shot_start, f.resume

  def state(point: vfast.Resume) -> dict:
    return {**point.state._asdict(), "condition": point.condition}

  def resume(arrays: dict, done: int) -> vfast.Resume:
    clip_state = vfast.ClipState(*(arrays[k] for k in vfast.ClipState._fields))
    return vfast.Resume(done, clip_state, arrays["condition"])

  return _Method(run, settings.batch, dict, state, resume)


def _recipe(args) -> StyleConfig:
  """Each frame's recipe (``--method optimize``), its size left to the frames."""
  return common.config_from_args(args, resolve=False, other=OWN_FLAGS)


def _optimize(args, settings: VideoSettings, styles, earlier: dict) -> _Method:
  config = _recipe(args)
  frame_shape = None
  params, winfo = common.load_params(args.weights)
  seconds: list[float] = list(earlier.get("frame_s", []))

  def run(stream, mask, progress, stop, resume):
    nonlocal frame_shape

    def report(i, p):
      window = "" if settings.clip_window is None else f"-{settings.start + i + settings.clip_window - 1}"
      progress.prefix = f"frame {settings.start + i}{window}: "
      progress(p)

    method = voptimize if settings.clip_window is None else vclip  # frame after frame, or windows at once
    for frame in method.stylize_clip(stream, styles, settings, config, params=params, mask=mask, callback=report,
                                     stop=stop, resume=resume):  # fmt: skip
      frame_shape = frame.output.shape[:2]
      seconds.append(frame.seconds)
      yield frame.output, frame.shot_start, frame.resume

  def record():
    configs = voptimize.frame_configs(config, settings, frame_shape) if frame_shape else (config.resolve(),) * 2
    return {"recipe": configs[0].to_dict(), "later_recipe": configs[1].to_dict(), "frame_s": seconds,
            "weights": common.weights_record(winfo)}  # fmt: skip

  def state(point: voptimize.Resume) -> dict:
    return {"frame": point.frame, "output": point.output}

  def resume(arrays: dict, done: int) -> voptimize.Resume:
    return voptimize.Resume(done, arrays["frame"], arrays["output"])

  return _Method(run, 1, record, state, resume)


# --------------------------------------------------------------------------- the state beside OUT


def state_path(output: str) -> str:
  """Where an interrupted run's state lies: ``OUT/state.npz`` for a folder, ``OUT.state.npz`` (``out.mp4`` ->
  ``out.state.npz``, beside ``out.json``) for a video file."""
  if videoio.is_video_path(output):
    return os.path.splitext(output)[0] + ".state.npz"
  return os.path.join(output, "state.npz")


def _digest(path: str | None) -> str | None:
  return file_digest(path, "sha256") if path else None


def _state_key(args, settings: VideoSettings) -> dict:
  """What a state must have been made with to be continued: the settings, the recipe, the files."""
  recipe = _recipe(args).to_dict() if settings.method == "optimize" else None
  return {"video": settings.to_dict(), "recipe": recipe, "input": os.path.abspath(args.input),
          "style_sha256": [_digest(p) for p in args.style], "mask_sha256": _digest(settings.mask),
          "model_sha256": _digest(args.model),
          "weights_sha256": [_digest(p) for p in _network_files(args, settings)]}  # fmt: skip


def _network_files(args, settings: VideoSettings) -> list[str]:
  """The weight files the frames are made from (other weights must not continue a state): the VGG19 for
  optimize, the fast networks' files for fast (``--model`` is in the key already)."""
  if settings.method == "optimize":
    return [os.fspath(args.weights or vgg_weights.default_path())]
  candidates = (magenta_weights.default_arbitrary_path(), magenta_weights.default_multistyle26_path())
  return [os.fspath(p) for p in candidates if os.path.isfile(p)]


def _load_state(output: str, key: dict) -> checkpoint.Saved:
  """The state beside OUT, checked against this run's settings and files and against what OUT holds."""
  path = state_path(output)
  if not os.path.isfile(path):
    raise CliError(f"{output}: nothing to resume ({path} is not there); run without --resume")
  saved = checkpoint.load(path, "video")
  may_change = {f"video.{f}" for f in VideoSettings.resumable_fields()}
  checkpoint.check_settings(saved.record["settings"], key, may_change=may_change, where=path)
  done, have = saved.record["done"], videoio.frames_written(output)
  if have < done or (have != done and videoio.is_video_path(output)):
    raise CliError(f"{output}: holds {have} frames, its state says {done}; run without --resume")
  return saved


def _frames_after(stream, saved: checkpoint.Saved | None, settings: VideoSettings, output: str):
  """The clip's frames after those the state says are done, the last of those checked against the state's."""
  if saved is None:
    return stream
  done = saved.record["done"]
  last = collections.deque(itertools.islice(stream, done), maxlen=1)
  index = settings.start + done - 1
  if not last or last[0].index != index or _pixels_digest(last[0]) != saved.record["last_frame"]:
    raise CliError(f"{state_path(output)}: made from another clip (its frame {index} differs)")
  return stream


def _pixels_digest(frame: videoio.Frame) -> str:
  return hashlib.sha256(frame.pixels.tobytes()).hexdigest()


def _save_state(output: str, method: _Method, point, key: dict, record: dict) -> None:
  checkpoint.save(state_path(output), "video", settings=key, record=record, arrays=method.state(point))


# --------------------------------------------------------------------------- the run


def _stylize(args, settings, info, start_time, todo, method: _Method, mask, total, signals, saved, key) -> dict:
  """Streams the frames through the method into the writer until the end or a signal (stopping where the clip
  can continue: a batch's end); keeps the state beside OUT; returns the record."""
  progress = common.ProgressPrinter(args.quiet)
  earlier = {} if saved is None else saved.record
  done0 = earlier.get("done", 0)
  rate, folder = info.rate, not videoio.is_video_path(args.output)
  end = None if settings.frames is None else start_time + settings.frames / float(rate)
  audio = info.path if info.audio and not os.path.isdir(info.path) else None
  shots = list(earlier.get("shots", []))
  resume = None if saved is None else method.resume(saved.arrays, done0)
  if saved is None and folder:
    _remove(state_path(args.output))

  t0 = time.perf_counter()
  writer = videoio.VideoWriter(
    args.output, rate=rate, time_base=info.time_base, audio_from=audio, start_time=start_time, end_time=end,
    quality=settings.quality, keep=done0,
  )  # fmt: skip
  last, tick = None, _Ticker(progress, method.every, total, done0)
  with writer:
    outputs = lambda pixels: method.run(pixels, mask, progress, signals.stop, resume)  # noqa: E731
    for frame, (out, shot, point) in vframes.paired(todo, outputs):
      writer.write(out, time=frame.time)
      if shot:
        shots.append(frame.index)
      tick(writer.frames)
      if point is not None:
        last = point, {"done": writer.frames, "last_frame": _pixels_digest(frame), "shots": list(shots)}
        if folder:  # each PNG is whole as soon as written: the state can follow
          _save_state(args.output, method, last[0], key, {**last[1], **_spent(earlier, t0, method)})
        if signals.stop():
          break
  if not signals.stop():
    _remove(state_path(args.output))
  elif last is not None and not folder:  # the file is whole (and renamed) only now
    _save_state(args.output, method, last[0], key, {**last[1], **_spent(earlier, t0, method)})
  return {
    "command": common.command_line(),
    "settings": dataclasses.asdict(settings),
    "input": os.path.abspath(args.input),
    "style": [os.path.abspath(p) for p in args.style],
    "model": os.path.abspath(args.model) if args.model else None,
    "output": os.path.abspath(args.output),
    "frames": writer.frames,
    "rate": str(rate),
    "shots": shots,
    "interrupted": signals.name if signals.stop() else None,
    "resumed_at": done0 if saved is not None else None,
    **method.record(),
    **_spent(earlier, t0, method),
    **common.provenance(),
  }


def _spent(earlier: dict, t0: float, method: _Method) -> dict:
  """The wall time of every run of the clip so far (and the method's per-frame times)."""
  frame_s = method.record().get("frame_s")
  return {"wall_s": earlier.get("wall_s", 0.0) + time.perf_counter() - t0, **({"frame_s": frame_s} if frame_s else {})}


def _remove(path: str) -> None:
  if os.path.isfile(path):
    os.remove(path)


class _Ticker:
  """Progress lines every ``every`` frames: frames done, frames per second (from the end of this run's first
  batch, which compiles) and the ETA."""

  def __init__(self, progress, every: int, total: int | None, done0: int):
    self.progress, self.every, self.total, self.done0, self.t_first = progress, every, total, done0, None

  def __call__(self, done: int) -> None:
    made = done - self.done0
    if made == self.every:
      self.t_first = time.perf_counter()
    if made % self.every and done != self.total:
      return
    rate = (made - self.every) / (time.perf_counter() - self.t_first) if made > self.every else None
    fps = f"  {rate:.2f} frames/s" if rate else ""
    eta = f"  ETA {common.fmt_time((self.total - done) / rate)}" if self.total and rate else ""
    self.progress.line(f"frame {done}/{self.total or '?'}{fps}{eta}", last=done == self.total)
