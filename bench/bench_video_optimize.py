"""Video by optimization (issue 20, `--method optimize`): flicker, style and time, independent frames against
Ruder et al.'s temporal loss.

Run: `.venv/bin/python bench/bench_video_optimize.py [--clips bigbuckbunny.mp4,carphone_pristine.mp4]
[--size 256] [--frames 8] [--steps N] [--later-steps 200] [--temporal-loss 1000] [--clip 8]` from the checkout (needs
../shared/videos, ../shared/images and OpenCV). For each clip it stylizes the first `--frames` frames twice
with the default recipe at `--size` px (its 600 steps, or `--steps`): each frame on its own (`jaxstyle.optim.stylize`,
the same settings as a shot's first frame), and as `jaxstyle video --method optimize` does
(`jaxstyle.video.optimize.stylize_clip`: every later frame from the previous output warped into it, with the
temporal loss, `--later-steps` steps), and with `--clip N` a third time as `--clip N` does
(`jaxstyle.video.clip.stylize_clip`: windows of N frames optimized jointly, `--later-steps` steps each).
Graded as bench_video.py grades the fast method, with OpenCV's DIS flow (not ours): the warping error of Lai et
al. (2018) and the style distance of every frame. Times: the first frame (compile included) against the mean
of the later ones (their first, which compiles, left out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402
from bench_video import SHARED, _cv2, grade_motion, warping_errors  # noqa: E402

import bench  # noqa: E402
from jaxstyle.io import images, video  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.objective import metrics  # noqa: E402
from jaxstyle.optim.stylize import stylize  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402
from jaxstyle.settings.video import VideoSettings  # noqa: E402
from jaxstyle.video import clip as vclip  # noqa: E402
from jaxstyle.video import frames as vframes  # noqa: E402
from jaxstyle.video import optimize as voptimize  # noqa: E402


def style_distances(params, outs: np.ndarray, style: np.ndarray) -> np.ndarray:
  return np.concatenate([np.asarray(metrics.style_distance(params, outs[i : i + 4], style[None]))
                         for i in range(0, len(outs), 4)])  # fmt: skip


def bench_clip(args, path: Path, style: np.ndarray, params, lines: list[str], figures: Path | None) -> dict:
  raw = [f.pixels for f in video.read_frames(path, count=args.frames)]
  inputs = np.stack([vframes.prepare_frame(f, args.size) for f in raw])
  settings = VideoSettings(method="optimize", size=args.size, later_steps=args.later_steps,
                           temporal_loss=args.temporal_loss)  # fmt: skip
  config = presets.jaxstyle() if args.steps is None else presets.jaxstyle(steps=args.steps)
  first_config = voptimize.frame_configs(config, settings, inputs.shape[1:3])[0]
  t_alone = []
  alone = []
  for x in inputs:
    t0 = time.perf_counter()
    alone.append(np.asarray(stylize(x, style, first_config, params=params).image))
    t_alone.append(time.perf_counter() - t0)
  got = list(voptimize.stylize_clip(raw, [style], settings, config, params=params))
  outs = np.stack([f.output for f in got])
  secs = [f.seconds for f in got]
  runs = {"independent": np.stack(alone), "temporal": outs}
  if args.clip:
    t0 = time.perf_counter()
    windows = settings.replace(clip_window=args.clip)
    runs["window"] = np.stack([f.output for f in vclip.stylize_clip(raw, [style], windows, config, params=params)])
    window_s = (time.perf_counter() - t0) / len(inputs)
  motion = grade_motion(inputs)
  row = {}
  for name, o in runs.items():
    errs = warping_errors(o, motion)
    row[name] = dict(error=errs.mean(), style=style_distances(params, o, style).mean(), errs=errs)
  row["independent"]["s"] = float(np.mean(t_alone[1:]))
  row["temporal"].update(first=secs[0], later=float(np.mean(secs[2:])), shots=sum(f.shot_start for f in got))
  ind, tmp = row["independent"], row["temporal"]
  h, w = inputs.shape[1:3]
  lines.append(
    f"| {path.name} | {w}x{h} | {len(inputs)} | {ind['error']:.5f} | {tmp['error']:.5f} | "
    f"{tmp['error'] / ind['error']:.2f}x | {ind['style']:.4f} | {tmp['style']:.4f} | "
    f"{tmp['style'] / ind['style']:.3f}x | {ind['s']:.1f} | {tmp['first']:.1f} | {tmp['later']:.1f} | "
    f"{tmp['shots']} |"
  )
  if args.clip:
    win = row["window"]
    win["s"] = window_s
    row["window_line"] = (
      f"| {path.name} | {args.clip} | {tmp['error']:.5f} | {win['error']:.5f} | {win['error'] / tmp['error']:.2f}x | "
      f"{tmp['style']:.4f} | {win['style']:.4f} | {win['style'] / tmp['style']:.3f}x | {window_s:.1f} |"
    )
  print(path.name, {k: {a: b for a, b in v.items() if a != "errs"} for k, v in row.items() if isinstance(v, dict)},
        flush=True)  # fmt: skip
  if figures is not None:
    figures.mkdir(parents=True, exist_ok=True)
    picks = np.linspace(0, len(inputs) - 1, 4).round().astype(int)
    strip = [np.concatenate([inputs[i], *(r[i] for r in runs.values())], 0) for i in picks]
    images.save_image(figures / f"{path.stem}_optimize_strip.jpg", np.concatenate(strip, 1))
  return row


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--clips", default="bigbuckbunny.mp4,carphone_pristine.mp4")
  ap.add_argument("--style", default="starry_night.jpg")
  ap.add_argument("--size", type=int, default=256)
  ap.add_argument("--frames", type=int, default=8)
  ap.add_argument(
    "--steps",
    type=int,
    default=None,
    help="steps of a shot's first frame and of independent frames (default: the recipe's)",
  )
  ap.add_argument("--later-steps", type=int, default=VideoSettings().later_steps)
  ap.add_argument("--temporal-loss", type=float, default=VideoSettings().temporal_loss)
  ap.add_argument("--clip", type=int, default=None, help="also windows of this many frames optimized jointly")
  ap.add_argument("--figures", type=Path, default=None)
  args = ap.parse_args(argv)
  cv2 = _cv2()
  params = weights.load_vgg19()
  style = images.load_image(bench.SHARED / args.style)
  command = " ".join(["python bench/bench_video_optimize.py", *(argv if argv is not None else sys.argv[1:])])
  lines = [
    "## Video by optimization: independent frames against the temporal loss",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `{command}`* on {bench.machine()}, OpenCV {cv2.__version__} (the "
    f"grader). Style {args.style}; the default recipe at {args.size} px, {args.steps or 'its'} steps for every "
    f"independent frame and for a shot's first; later frames {args.later_steps} steps from the previous output warped, "
    f"temporal loss {args.temporal_loss:g}. *warping error* and *style* as in the fast method's table; *s*: "
    "seconds per frame (independent: the mean after the first; temporal: the first frame, compile included, "
    "and the mean of the later ones after the first of them).",
    "",
    "| clip | size | frames | warping error independent | temporal | ratio | style independent | temporal | ratio "
    "| s per frame independent | first frame s | later frame s | shots |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  rows = {name: bench_clip(args, SHARED / "videos" / name, style, params, lines, args.figures)
          for name in args.clips.split(",")}  # fmt: skip
  if args.clip:
    lines += [
      "",
      f"`--clip {args.clip}` (windows optimized jointly, {args.later_steps} steps each, sharded over "
      f"{len(jax.devices())} device(s)) against the frame-after-frame method above (*temporal*); *s*: seconds per "
      "frame over the whole clip, compile included.",
      "",
      "| clip | window | warping error temporal | window | ratio | style temporal | window | ratio | s per frame |",
      "|---|---|---|---|---|---|---|---|---|",
      *(r["window_line"] for r in rows.values()),
    ]
  lines += ["", "Targets of issue 20 (`--method optimize`):", ""]
  verdict = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
  for name, r in rows.items():
    ratio = r["temporal"]["error"] / r["independent"]["error"]
    sratio = r["temporal"]["style"] / r["independent"]["style"]
    tratio = r["temporal"]["later"] / r["temporal"]["first"]
    lines.append(
      f"- {name}: warping error <= 0.5x {verdict(ratio <= 0.5)} ({ratio:.2f}x); style within 1.1x "
      f"{verdict(sratio <= 1.1)} ({sratio:.3f}x); later frames in <= half the first's time "
      f"{verdict(tratio <= 0.5)} ({tratio:.2f}x)"
    )
    if args.clip:
      w, t = r["window"], r["temporal"]
      ok = w["error"] <= t["error"] and w["style"] <= t["style"]
      lines.append(
        f"- {name}, `--clip {args.clip}`: the sequential result's quality or better (warping error and style) "
        f"{verdict(ok)} ({w['error'] / t['error']:.2f}x, {w['style'] / t['style']:.3f}x)"
      )
  lines.append("")
  results.write_section("bench_video_optimize", lines)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
