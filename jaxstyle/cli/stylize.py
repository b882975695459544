"""``jaxstyle stylize``: optimize one image; writes it, an optional sheet, and its record with the command that
reproduces it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from jaxstyle.cli import common, folder
from jaxstyle.cli.common import CliError
from jaxstyle.io import images
from jaxstyle.io.files import sidecar_path, write_json
from jaxstyle.optim import stylize as optim_stylize
from jaxstyle.optim.stylize import Result, scale_plan
from jaxstyle.settings.style import StyleConfig


def add_parser(sub) -> None:
  p = sub.add_parser(
    "stylize",
    help="render CONTENT in the style of STYLE",
    description="Render CONTENT in the style of STYLE. Writes OUT atomically and OUT's "
    "settings, versions, timings and losses to a .json file beside it.",
  )
  p.add_argument("content", metavar="CONTENT", help="content image, or a folder of them (then OUT is a folder)")
  p.add_argument(
    "style", metavar="STYLE", nargs="+",
    help="style image(s); several are blended (--style-blend); for a folder of contents, a folder of styles pairs "
    "each photo with the style of the same file name",
  )  # fmt: skip
  p.add_argument(
    "-o", "--output", required=True, metavar="OUT",
    help="output image (.png, .jpg, .webp, .tif), or a folder for a folder of contents",
  )  # fmt: skip
  p.add_argument(
    "--folder-format", default=".png", metavar="SUFFIX",
    help="for a folder of contents: the outputs' file type (default .png)",
  )  # fmt: skip
  p.add_argument("--sheet", metavar="PATH", help="also write a content | style | result sheet")
  p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="8, or 16 for PNG (default 8)")
  p.add_argument(
    "--checkpoint", metavar="DIR",
    help="save image, optimizer state and step at every report (a folder of contents: one per photo in DIR/<name>/)",
  )  # fmt: skip
  p.add_argument(
    "--resume", metavar="DIR",
    help="continue the run checkpointed in DIR (same settings); a folder of contents also skips the photos done",
  )  # fmt: skip
  p.add_argument(
    "--distributed",
    action="store_true",
    help="one of several processes (hosts) running the same command: starts jax.distributed (also implied by "
    "$JAX_COORDINATOR_ADDRESS; $JAX_NUM_PROCESSES, $JAX_PROCESS_ID where no cluster manager sets them) and spreads "
    "--tile's tiles over every process's devices; process 0 writes the output",
  )
  common.add_recipe_args(p)
  p.set_defaults(handler=run, distributed_ok=True)


def run(args: argparse.Namespace) -> int:
  config = common.config_from_args(args)
  if os.path.isdir(args.content):
    return folder.run_folder(args, config)
  return run_stylize(args.content, args.style, args.output, config, args, sheet=args.sheet)


def run_stylize(
  content_path: str, style_paths: Sequence[str], out: str, config: StyleConfig, args, *, sheet=None
) -> int:
  """Stylizes, writes OUT (+ sheet) and OUT's JSON sidecar; returns the exit code.

  Among several ``jax.distributed`` processes every one runs this; process 0 alone prints progress and writes
  files (the others compute the same image)."""
  primary = jax.process_index() == 0
  bit_depth = getattr(args, "bit_depth", 8)
  if bit_depth == 16 and not out.lower().endswith(".png"):
    raise CliError(f"{out}: --bit-depth 16 needs a .png output")
  paths = common.input_paths(content_path, style_paths, config)
  for target in (out, sheet) if primary else ():
    if target:
      common.check_output(target, paths)
  inputs = common.read_inputs(content_path, style_paths, config)
  resume = None
  if getattr(args, "resume", None):
    resume = optim_stylize.load_checkpoint(args.resume, config, content_shape=inputs.content.shape)
  params, winfo = common.load_params(args.weights)
  printer = common.ProgressPrinter(args.quiet or not primary)
  printer.steps = sum(steps for _, steps in scale_plan(config))  # for tile lines before a report
  printer.step = 0 if resume is None else resume.step
  ckpt_dir = getattr(args, "checkpoint", None) or getattr(args, "resume", None)
  t0 = time.perf_counter()
  with common.Signals() as signals:
    result = optim_stylize.stylize(
      inputs.content, inputs.styles, config, params=params, mask=inputs.mask, regions=inputs.regions,
      init_image=inputs.init_image, callback=_on_progress(printer, out, ckpt_dir, config, primary),
      stop=signals.stop, resume=resume, tile_callback=printer.tiles if config.network.tile is not None else None,
    )  # fmt: skip
  wall = time.perf_counter() - t0
  if not primary:  # the same image as process 0's, which writes it
    if signals.received is not None:
      return signals.exit_code
    return common.EXIT_USAGE if result.status == "non-finite" else 0
  _write(result, inputs, content_path, style_paths, out, sheet, bit_depth, args.weights, winfo, wall, signals)
  return _report(result, out, signals)


def _on_progress(printer: common.ProgressPrinter, out: str, ckpt_dir: str | None, config: StyleConfig, primary: bool):
  """The progress callback: a line, and on process 0 the ``--save-every`` images and ``--checkpoint``s."""
  stem, ext = os.path.splitext(out)

  def on_progress(p) -> None:
    printer(p)
    if not primary:
      return
    if p.save:
      images.save_image(f"{stem}_{p.step:05d}{ext}", np.clip(np.asarray(p.image), 0.0, 1.0))
    if ckpt_dir and p.report:
      optim_stylize.save_checkpoint(ckpt_dir, p, config)

  return on_progress


def _write(result: Result, inputs, content_path, style_paths, out, sheet, bit_depth, weights, winfo, wall, signals):
  """The image, the sheet and the record."""
  image = np.asarray(result.image)
  images.save_image(out, image, bit_depth=bit_depth, icc_profile=images.read_icc_profile(content_path))
  if sheet:
    ss = inputs.styles
    labels = ["content"] + [f"style {i + 1}" if len(ss) > 1 else "style" for i in range(len(ss))] + ["result"]
    images.save_image(sheet, images.contact_sheet([inputs.content, *ss, image], labels))
  content_abs, styles_abs = os.path.abspath(content_path), [os.path.abspath(p) for p in style_paths]
  record = {
    "output": os.path.abspath(out),
    "status": "interrupted" if result.status == "stopped" else result.status,
    "steps_done": result.steps_done,
    "command": common.command_line(),
    "reproduce": common.stylize_command(content_abs, styles_abs, os.path.abspath(out), result.config, weights),
    "content": content_abs,
    "style": styles_abs,
    "size": [int(image.shape[1]), int(image.shape[0])],
    "scales": result.scales,
    **common.run_record(result.config.to_dict(), result.losses, {**result.timings, "wall_s": wall}, winfo),
  }
  if signals.received is not None:
    record["signal"] = signals.name
  write_json(sidecar_path(out), record)


def _report(result: Result, out: str, signals: common.Signals) -> int:
  """The last line and the exit code."""
  total = sum(steps for _, steps in scale_plan(result.config))
  if signals.received is not None:
    print(
      f"jaxstyle: {signals.name} at step {result.steps_done}/{total}; wrote the image so far to {out}", file=sys.stderr
    )
    return signals.exit_code
  if result.status == "non-finite":
    print(
      f"jaxstyle: error: the loss became NaN or infinite after step {result.steps_done} (are the weights too "
      f"large?); kept the last finite image in {out}",
      file=sys.stderr,
    )
    return common.EXIT_USAGE
  t, image = result.timings, result.image
  print(
    f"wrote {out} ({image.shape[1]}x{image.shape[0]}) and {sidecar_path(out)}; loss {result.losses['total']:.4g}; "
    f"compile {t['compile_s']:.1f}s, {t['steps_per_s']:.2f} it/s"
  )
  return 0
