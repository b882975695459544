"""``jaxstyle fast``: one forward pass of Magenta's networks for an image or a folder, or the 26 built-in styles
as a sheet."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

from jaxstyle.cli import common
from jaxstyle.cli.common import CliError
from jaxstyle.fast import stylize as fast
from jaxstyle.fast.model_file import load_model
from jaxstyle.io import images, magenta_weights
from jaxstyle.io.files import sidecar_path, write_json
from jaxstyle.nets import magenta
from jaxstyle.settings.fast import FastSettings


def add_parser(sub) -> None:
  p = sub.add_parser(
    "fast",
    help="fast stylization: one forward pass of Magenta's networks, any style",
    description="Render CONTENT (an image, or a folder of images) in the style of STYLE image(s) with "
    "Magenta's arbitrary-style networks (Ghiasi et al. 2017), one of the 26 built-in styles (--builtin), or a "
    "network trained with 'jaxstyle train' (--model). Writes OUT (a file, or a folder for a folder of "
    "contents) atomically with a .json record beside it. With --sheet, renders the 26 built-in styles as one "
    "labelled contact sheet.",
  )
  p.add_argument("content", metavar="CONTENT", help="content image, or a folder of them")
  add_network_args(p)
  p.add_argument("-o", "--output", metavar="OUT", help="output image, or a folder when CONTENT is a folder")
  p.add_argument("--sheet", metavar="PATH", help="write the 26 built-in styles on CONTENT as a contact sheet")
  g = p.add_argument_group("settings ('none' unsets an optional value)")
  common.add_setting_flags(g, FastSettings.declarations())
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
  p.set_defaults(handler=run)


def add_network_args(p: argparse.ArgumentParser) -> None:
  """What picks the network's style: STYLE image(s) or ``--model`` (``--builtin`` is a setting)."""
  p.add_argument("style", metavar="STYLE", nargs="*", help="style image(s); several are blended (--style-blend)")
  p.add_argument("--model", metavar="MODEL.h5", help="a network trained with 'jaxstyle train' (no STYLE needed)")


def run(args: argparse.Namespace) -> int:
  settings = common.settings_from_args(FastSettings(), args)
  if settings.mask:
    settings = settings.replace(mask=os.path.abspath(settings.mask))
  folder = os.path.isdir(args.content)
  _check_args(args, settings, folder)
  contents, outs = _contents_and_outputs(args, folder)
  inputs = [*contents, *args.style, *([settings.mask] if settings.mask else []), *([args.model] if args.model else [])]
  for target in [*([] if folder else outs), *([args.sheet] if args.sheet else [])]:
    common.check_output(target, inputs)
  pictures = [images.load_image(p) for p in contents]
  styles = [images.load_image(p) for p in args.style]
  mask = images.load_image(settings.mask) if settings.mask else None
  networks = networks_for(args, settings, stylizing=bool(outs))
  if folder and outs:
    os.makedirs(args.output, exist_ok=True)
    for target in outs:
      common.check_output(target, inputs)
  if outs:
    _stylize_files(args, settings, networks, contents, pictures, styles, mask, outs, folder)
  if args.sheet:
    _sheet(args, settings, networks, pictures[0])
  return 0


def _check_args(args: argparse.Namespace, settings: FastSettings, folder: bool) -> None:
  if not args.output and not args.sheet:
    raise CliError("give -o OUT, --sheet SHEET, or both")
  if folder and args.sheet:
    raise CliError("--sheet takes one content image, not a folder")
  needs_style = settings.builtin is None and not args.model
  if needs_style and not args.style and args.output:
    raise CliError("give STYLE image(s), --builtin N, or --model MODEL.h5")
  if not needs_style and args.style:
    raise CliError("STYLE images are not used with --builtin or --model; leave them out")


def _contents_and_outputs(args: argparse.Namespace, folder: bool) -> tuple[list[str], list[str]]:
  """The content files and where each result goes (a file, or the folder's files as PNGs in OUT)."""
  if not folder:
    return [args.content], [args.output] if args.output else []
  if args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
    raise CliError(f"{args.output}: CONTENT is a folder, so OUT must be a folder")
  contents = [str(p) for p in images.list_images(args.content)]
  stems = [os.path.splitext(os.path.basename(p))[0] for p in contents]
  return contents, [os.path.join(args.output, s + ".png") for s in stems] if args.output else []


def networks_for(args: argparse.Namespace, settings: FastSettings, *, stylizing: bool) -> fast.Networks:
  """The networks these settings (and ``--model``, ``--sheet``) need, loaded once."""
  predictor = transformer = multistyle = vector = None
  if args.model:
    transformer, vector = load_model(args.model)
    if settings.strength < 1.0:
      predictor, _ = magenta_weights.load_arbitrary()
  elif stylizing and settings.builtin is None:
    predictor, transformer = magenta_weights.load_arbitrary()
  if getattr(args, "sheet", None) or settings.builtin is not None:
    multistyle = magenta_weights.load_multistyle26()
  return fast.Networks(predictor, transformer, multistyle, vector)


def _stylize_files(args, settings, networks, contents, pictures, styles, mask, outs, folder) -> None:
  t0 = time.perf_counter()

  def progress(done, total):
    if not args.quiet and total > 1:
      print(f"stylized {done}/{total}  {done / (time.perf_counter() - t0):.2f} images/s", file=sys.stderr)

  results = fast.stylize_fast(pictures, styles, settings, networks, mask=mask, callback=progress)
  for path, content_path, image in zip(outs, contents, results, strict=True):
    images.save_image(path, image, icc_profile=images.read_icc_profile(content_path))
  wall = time.perf_counter() - t0
  record = {
    "command": common.command_line(),
    "settings": dataclasses.asdict(settings),
    "style": [os.path.abspath(p) for p in args.style],
    "model": os.path.abspath(args.model) if args.model else None,
    "outputs": [os.path.abspath(p) for p in outs],
    "content": [os.path.abspath(p) for p in contents],
    "wall_s": wall,
    **common.provenance(),
  }
  side = os.path.join(args.output, "fast.json") if folder else sidecar_path(args.output)
  write_json(side, record)
  print(f"wrote {len(outs)} image(s) and {side} in {wall:.1f}s ({len(outs) / wall:.2f} images/s)")


def _sheet(args, settings: FastSettings, networks: fast.Networks, content: np.ndarray) -> None:
  weights = np.eye(magenta.NUM_STYLES, dtype=np.float32)
  rendered = fast.stylize_variants(content, weights, settings.replace(builtin=((0, 1.0),)), networks)
  labels = ["content", *magenta.STYLE_NAMES]
  small = images.resize(content, rendered.shape[1:3])
  images.save_image(args.sheet, images.contact_sheet([small, *rendered], labels, columns=9, height=160))
  print(f"wrote {args.sheet}: the {magenta.NUM_STYLES} built-in styles on {args.content}")
