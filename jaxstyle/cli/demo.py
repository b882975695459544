"""``jaxstyle demo``: the built-in samples through the default recipe (and the fast network, when fetched)."""

from __future__ import annotations

import argparse
import os

from jaxstyle import samples
from jaxstyle.cli import common, fast, stylize
from jaxstyle.io import magenta_weights


def add_parser(sub) -> None:
  p = sub.add_parser(
    "demo",
    help="stylize the built-in samples (a rendered landscape, a brush-stroke painting)",
    description="Stylize the built-in sample landscape with the built-in brush-stroke "
    "painting (the default recipe unless told otherwise); writes DIR/result.png and DIR/sheet.png.",
  )
  p.add_argument("-o", "--output-dir", default="demo", metavar="DIR", help="output folder (default: demo)")
  common.add_recipe_args(p)
  p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
  config = common.config_from_args(args)  # the default recipe, as `stylize` runs it
  os.makedirs(args.output_dir, exist_ok=True)
  out = os.path.join(args.output_dir, "result.png")
  sheet = os.path.join(args.output_dir, "sheet.png")
  code = stylize.run_stylize(samples.content_path(), [samples.style_path()], out, config, args, sheet=sheet)
  if code != 0:
    return code
  print(f"demo: open {sheet} (content | style | result)")
  if not all(p.exists() for p in magenta_weights.default_paths()):
    return 0
  fast_out = os.path.join(args.output_dir, "fast.png")  # the fast networks too, when fetched
  parser = common.Parser(prog="jaxstyle")
  fast.add_parser(parser.add_subparsers(parser_class=common.Parser))
  argv = ["fast", samples.content_path(), samples.style_path(), "-o", fast_out, "--size", "512", "-q"]
  code = fast.run(parser.parse_args(argv))
  if code == 0:
    print(f"demo: and {fast_out}, the same pair in one forward pass of Magenta's network (jaxstyle fast)")
  return code
