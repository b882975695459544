"""``jaxstyle train``: train a feed-forward network for one style; writes MODEL.h5 and its record."""

from __future__ import annotations

import argparse
import os
import sys
import time

from jaxstyle.cli import common
from jaxstyle.cli.common import CliError
from jaxstyle.fast import data, train
from jaxstyle.fast.model_file import save_model
from jaxstyle.io import images, magenta_weights
from jaxstyle.io.files import sidecar_path, write_json
from jaxstyle.settings.train import TrainSettings


def add_parser(sub) -> None:
  p = sub.add_parser(
    "train",
    help="train a feed-forward network for one style (Johnson et al. 2016 losses, Magenta's transformer)",
    description="Fine-tune Magenta's arbitrary-style transformer for STYLE on a folder of photographs, with "
    "jaxstyle's VGG losses (a preset's objective), random crops and flips, Adam, the batch sharded over all "
    "devices. Starts from the style's predicted vector; --train chooses what is trained. Writes MODEL.h5 "
    "(use it with 'jaxstyle fast CONTENT --model MODEL.h5') and MODEL.json.",
  )
  p.add_argument("style", metavar="STYLE", help="style image")
  p.add_argument("--content", required=True, metavar="DIR", help="folder of training photographs")
  p.add_argument("-o", "--output", required=True, metavar="MODEL.h5", help="the trained network")
  p.add_argument("--eval", metavar="DIR", help="held-out photographs, evaluated every --eval-every steps")
  p.add_argument("--checkpoint", metavar="PATH", help="save the training state here every --checkpoint-every steps")
  p.add_argument("--resume", metavar="PATH", help="continue the run checkpointed at PATH (same settings)")
  g = p.add_argument_group("settings ('none' unsets an optional value)")
  common.add_setting_flags(g, TrainSettings.declarations())
  common.add_weights_arg(p, "VGG19 weights file")
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
  p.set_defaults(handler=run)


def _printer(quiet: bool):
  def progress(p: train.TrainProgress) -> None:
    if quiet:
      return
    line = (
      f"step {p.step}/{p.steps}  loss {p.loss:.4g} (content {p.parts['content']:.3g}, style {p.parts['style']:.3g})"
      f"  {p.steps_per_second:.2f} it/s  ETA {common.fmt_time(p.eta)}"
    )
    if p.eval:
      line += f"  held-out {p.eval['total']:.4g}"
    print(line, file=sys.stderr, flush=True)

  return progress


def run(args: argparse.Namespace) -> int:
  settings = common.settings_from_args(TrainSettings(), args)
  if not args.output.lower().endswith(".h5"):
    raise CliError(f"{args.output}: the model is an HDF5 file; name it .h5")
  common.check_output(args.output, [args.style, args.content, *([args.eval] if args.eval else [])], image=False)
  style = images.load_image(args.style)
  photos = data.load_images(args.content, min_side=settings.size)
  held_out = data.load_images(args.eval) if args.eval else None
  params, winfo = common.load_params(args.weights)
  predictor, transformer = magenta_weights.load_arbitrary()
  t0 = time.perf_counter()
  with common.Signals() as signals:
    result = train.train(
      style, photos, settings, vgg_params=params, predictor_params=predictor, transformer_params=transformer,
      eval_images=held_out, callback=_printer(args.quiet), resume=args.resume, checkpoint=args.checkpoint,
      stop=signals.stop,
    )  # fmt: skip
  wall = time.perf_counter() - t0
  save_model(
    args.output, result.transformer_params, result.vector, settings=settings, style_path=args.style,
    steps_done=result.steps_done,
  )  # fmt: skip
  record = {
    "model": os.path.abspath(args.output),
    "command": common.command_line(),
    "style": os.path.abspath(args.style),
    "content": os.path.abspath(args.content),
    "eval": os.path.abspath(args.eval) if args.eval else None,
    "settings": settings.to_dict(),
    "steps_done": result.steps_done,
    "status": "interrupted" if signals.received is not None else "completed",
    "evals": result.evals,
    "timings": {**result.timings, "wall_s": wall},
    "weights": common.weights_record(winfo),
    **common.provenance(),
  }
  write_json(sidecar_path(args.output), record)
  if signals.received is not None:
    print(
      f"jaxstyle: {signals.name} at step {result.steps_done}; wrote the network so far to {args.output}",
      file=sys.stderr,
    )
    return signals.exit_code
  print(f"wrote {args.output} and {sidecar_path(args.output)} after {result.steps_done} steps ({wall:.0f}s)")
  return 0
