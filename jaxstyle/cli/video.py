"""``jaxstyle video``: a clip (a video file or a folder of frames) through the fast networks, without flicker."""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from jaxstyle.cli import common
from jaxstyle.cli import fast as fast_cli
from jaxstyle.cli.common import CliError
from jaxstyle.io import images
from jaxstyle.io import video as videoio
from jaxstyle.io.files import sidecar_path, write_json
from jaxstyle.settings.style import StyleConfig
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import fast as vfast
from jaxstyle.video import optimize as voptimize


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
    "playable OUT with the frames done. --method optimize instead runs Gatys et al.'s optimization on each frame "
    "(a preset and its flags, as 'jaxstyle stylize'), every frame after a shot's first started from the previous "
    "output warped into it with a temporal loss (Ruder et al. 2016). Needs PyAV: pip install 'jaxstyle[video]'.",
  )
  p.add_argument("input", metavar="IN", help="video file, or a folder of frames")
  fast_cli.add_network_args(p)
  p.add_argument("-o", "--output", metavar="OUT", required=True, help="video file, or a folder for PNG frames")
  g = p.add_argument_group("settings ('none' unsets an optional value)")
  common.add_setting_flags(g, VideoSettings.declarations())
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
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
  }
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
  if os.path.isdir(args.output) and any(n.endswith(".png") for n in os.listdir(args.output)):
    raise CliError(f"{args.output}: already holds frames; remove them or choose another folder")


def run(args: argparse.Namespace) -> int:
  settings = common.settings_from_args(VideoSettings(), args)
  if settings.mask:
    settings = settings.replace(mask=os.path.abspath(settings.mask))
  _check_args(args, settings)
  info = videoio.probe(args.input)
  inputs = [args.input, *args.style, *([settings.mask] if settings.mask else []), *([args.model] if args.model else [])]
  common.check_output(args.output, inputs, image=False)
  total = _frame_count(info, settings)
  styles = [images.load_image(p) for p in args.style]
  mask = images.load_image(settings.mask) if settings.mask else None
  method = _optimize(args, settings, styles) if settings.method == "optimize" else _fast(args, settings, styles)
  frames = videoio.read_frames(info.path, start=settings.start, count=settings.frames)
  first = next(frames, None)
  if first is None:
    raise CliError(f"{args.input}: no frame {settings.start} (the clip has {info.frames} frames)")
  with common.Signals() as signals:
    record = _stylize(args, settings, info, first, frames, method, mask, total, signals)
  folder = not videoio.is_video_path(args.output)
  side = os.path.join(args.output, "video.json") if folder else sidecar_path(args.output)
  write_json(side, record)
  if signals.stop():
    print(f"jaxstyle: {signals.name} at frame {record['frames']}: {args.output} holds the frames done", file=sys.stderr)
    return signals.exit_code
  print(
    f"wrote {args.output}: {record['frames']} frames in {common.fmt_time(record['wall_s'])} "
    f"({record['frames'] / record['wall_s']:.2f} frames/s), {len(record['shots'])} shot(s); record {side}"
  )
  return 0


def _frame_count(info: videoio.ClipInfo, settings: VideoSettings) -> int | None:
  if info.frames is None:
    return settings.frames
  left = info.frames - settings.start
  if left <= 0:
    raise CliError(f"{info.path}: --start {settings.start} is past the clip's {info.frames} frames")
  return left if settings.frames is None else min(left, settings.frames)


class _Method(NamedTuple):
  """How frames become outputs: ``run(stream, mask, progress, stop)`` yields ``(output, shot_start)``; ``every``
  frames make a progress line; ``record()`` adds to the run's record."""

  run: Callable
  every: int
  record: Callable[[], dict]


def _fast(args, settings: VideoSettings, styles) -> _Method:
  networks = fast_cli.networks_for(args, settings, stylizing=True)

  def run(stream, mask, progress, stop):
    return vfast.stylize_clip(stream, styles, settings, networks, mask=mask)

  return _Method(run, settings.batch, dict)


def _optimize(args, settings: VideoSettings, styles) -> _Method:
  config = common.config_from_args(args, resolve=False)
  frame_shape = None
  params, winfo = common.load_params(args.weights)
  seconds: list[float] = []

  def run(stream, mask, progress, stop):
    nonlocal frame_shape

    def report(i, p):
      progress.prefix = f"frame {settings.start + i}: "
      progress(p)

    for frame in voptimize.stylize_clip(stream, styles, settings, config, params=params, mask=mask, callback=report,
                                        stop=stop):  # fmt: skip
      frame_shape = frame.output.shape[:2]
      seconds.append(frame.seconds)
      yield frame.output, frame.shot_start

  def record():
    configs = voptimize.frame_configs(config, settings, frame_shape) if frame_shape else (config.resolve(),) * 2
    return {"recipe": configs[0].to_dict(), "later_recipe": configs[1].to_dict(), "frame_s": seconds,
            "weights": common.weights_record(winfo)}  # fmt: skip

  return _Method(run, 1, record)


def _stylize(args, settings, info, first, frames, method: _Method, mask, total, signals) -> dict:
  """Streams the frames through the method into the writer until the end or a signal; returns the record."""
  progress = common.ProgressPrinter(args.quiet)
  rate = info.rate
  end = None if settings.frames is None else first.time + settings.frames / float(rate)
  audio = info.path if info.audio and not os.path.isdir(info.path) else None
  times, shots = collections.deque(), []  # times: of frames read and not yet written

  def stream():
    for part in ((first,), frames):
      for frame in part:
        times.append(frame.time)
        yield frame.pixels

  t0 = time.perf_counter()
  writer = videoio.VideoWriter(
    args.output, rate=rate, time_base=info.time_base, audio_from=audio, start_time=first.time, end_time=end,
    quality=settings.quality,
  )  # fmt: skip
  every = method.every
  with writer:
    for i, (out, shot) in enumerate(method.run(stream(), mask, progress, signals.stop)):
      writer.write(out, time=times.popleft())
      if shot:
        shots.append(settings.start + i)
      done = i + 1
      if done == every:  # the first batch compiles: the rate counts from its end
        t_first = time.perf_counter()
      if done % every == 0 or done == total:
        rate_now = (done - every) / (time.perf_counter() - t_first) if done > every else None
        fps = f"  {rate_now:.2f} frames/s" if rate_now else ""
        eta = f"  ETA {common.fmt_time((total - done) / rate_now)}" if total and rate_now else ""
        progress.line(f"frame {done}/{total or '?'}{fps}{eta}", last=done == total)
      if signals.stop():
        break
  wall = time.perf_counter() - t0
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
    "wall_s": wall,
    **method.record(),
    **common.provenance(),
  }
