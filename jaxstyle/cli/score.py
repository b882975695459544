"""``jaxstyle score``: the preset-free quality measures of :mod:`jaxstyle.objective.metrics` for any images, and
of :mod:`jaxstyle.video.measures` for stylized clips."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from jaxstyle.cli import common
from jaxstyle.cli.common import CliError
from jaxstyle.io import images
from jaxstyle.io import video as videoio
from jaxstyle.nets import vgg
from jaxstyle.objective import metrics
from jaxstyle.video import measures


def add_parser(sub) -> None:
  p = sub.add_parser(
    "score",
    help="measure results: style, content, colour and artifact distances (jaxstyle.objective.metrics)",
    description="Score IMAGE(s) against CONTENT and STYLE with measures that depend on no preset: relative "
    "Gram distance and sliced Wasserstein distance of relu1_1..relu5_1 to the style, relu4_2 distance to the "
    "content, colour mean/covariance distances, border energy, periodic energy at 2, 4, 8, 16 px, "
    "the strongest whole-picture period-2 peak and its amplitude in grey levels (formulas in "
    "jaxstyle.objective.metrics). Images are resized to the content's size first, the style to the "
    "content's longest side (as stylize does by default). When CONTENT is a clip (a video file or a folder of "
    "frames), each IMAGE is a stylized clip of it: the warping error of each frame pair (Lai et al. 2018, with "
    "jaxstyle's flow of the input), and each frame's style and content distances.",
  )
  p.add_argument("content", metavar="CONTENT", help="content image")
  p.add_argument("style", metavar="STYLE", help="style image")
  p.add_argument("images", metavar="IMAGE", nargs="+", help="images to score")
  p.add_argument("--size", type=common.positive_int, metavar="PX", help="content's longest side (default: its own)")
  p.add_argument("--pooling", choices=vgg.POOLINGS, default="max", help="the VGG's pooling (default max)")
  p.add_argument("--start", type=int, default=0, metavar="N", help="a clip's first frame that IMAGE clips begin at")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  common.add_weights_arg(p, "VGG19 weights file")
  p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
  if videoio.is_video_path(args.content) or os.path.isdir(args.content):
    return _run_clips(args)
  content = images.load_image(args.content, size=args.size)
  style = images.resize(images.load_image(args.style), max(content.shape[:2]))  # as stylize sizes it
  pictures = [images.load_image(p) for p in args.images]
  params, _ = common.load_params(args.weights)
  if not args.json:
    print(metrics.score_table(params, content, style, pictures, names=args.images, pooling=args.pooling))
    return 0
  scores = metrics.score(params, content, style, pictures, pooling=args.pooling)
  rows = [
    {"image": os.path.abspath(p), **{k: float(v[i]) for k, v in scores.items()}} for i, p in enumerate(args.images)
  ]
  record = {"content": os.path.abspath(args.content), "style": os.path.abspath(args.style), "scores": rows}
  print(json.dumps(record, indent=2))
  return 0


def _run_clips(args: argparse.Namespace) -> int:
  """CONTENT is a clip: each IMAGE is a stylized clip of it, scored frame by frame (from ``--start``)."""
  if args.size is not None:
    raise CliError("--size is for images; clips are scored at their stylized frames' size")
  for path in [args.content, *args.images]:
    videoio.probe(path)
  style = images.load_image(args.style)
  params, _ = common.load_params(args.weights)
  rows = []
  for path in args.images:
    frames = (f.pixels for f in videoio.read_frames(args.content, start=args.start))
    outputs = (f.pixels for f in videoio.read_frames(path))
    per_frame = measures.score_clip(params, frames, outputs, style, pooling=args.pooling)
    rows.append({"video": os.path.abspath(path), "frames": len(per_frame["style_gram"]),
                 **{k: float(np.mean(v)) if len(v) else float("nan") for k, v in per_frame.items()},
                 "per_frame": {k: v.tolist() for k, v in per_frame.items()}})  # fmt: skip
  if args.json:
    record = {"content": os.path.abspath(args.content), "style": os.path.abspath(args.style), "scores": rows}
    print(json.dumps(record, indent=2))
    return 0
  header = ["video", "frames", *measures.CLIP_METRICS]
  body = [
    [p, str(r["frames"]), *[f"{r[k]:.4g}" for k in measures.CLIP_METRICS]]
    for p, r in zip(args.images, rows, strict=True)
  ]
  print(metrics.text_table(header, body))
  return 0
