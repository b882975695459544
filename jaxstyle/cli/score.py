"""``jaxstyle score``: the preset-free quality measures of :mod:`jaxstyle.objective.metrics` for any images."""

from __future__ import annotations

import argparse
import json
import os

from jaxstyle.cli import common
from jaxstyle.io import images
from jaxstyle.objective import metrics


def add_parser(sub) -> None:
  p = sub.add_parser(
    "score",
    help="measure results: style, content, colour and artifact distances (jaxstyle.objective.metrics)",
    description="Score IMAGE(s) against CONTENT and STYLE with measures that depend on no preset: relative "
    "Gram distance and sliced Wasserstein distance of relu1_1..relu5_1 to the style, relu4_2 distance to the "
    "content, colour mean/covariance distances, border energy, periodic energy at 2, 4, 8, 16 px, "
    "the strongest whole-picture period-2 peak and its amplitude in grey levels (formulas in "
    "jaxstyle.objective.metrics). Images are resized to the content's size first, the style to the "
    "content's longest side (as stylize does by default).",
  )
  p.add_argument("content", metavar="CONTENT", help="content image")
  p.add_argument("style", metavar="STYLE", help="style image")
  p.add_argument("images", metavar="IMAGE", nargs="+", help="images to score")
  p.add_argument("--size", type=common.positive_int, metavar="PX", help="content's longest side (default: its own)")
  p.add_argument("--pooling", choices=("max", "avg"), default="max", help="the VGG's pooling (default max)")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  common.add_weights_arg(p, "VGG19 weights file")
  p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
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
