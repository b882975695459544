"""``jaxstyle sweep``: a grid of loss weightings in one batch; writes the members, a sheet, a Pareto plot and
sweep.json with each member's command."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from jaxstyle.cli import common
from jaxstyle.cli.common import CliError
from jaxstyle.io import images, plot
from jaxstyle.io.files import write_json
from jaxstyle.objective import metrics
from jaxstyle.optim import sweep
from jaxstyle.settings.style import StyleConfig


def add_parser(sub) -> None:
  p = sub.add_parser(
    "sweep",
    help="one compiled batch over alpha/beta ratios, style layer sets and TV weights",
    description="Stylize once per combination of --ratios, --style-layer-sets and --tv-weights in "
    "one vmapped program, sharded over all devices. Writes one PNG per member, DIR/sheet.png and "
    "DIR/sweep.json (each member's settings, losses and the jaxstyle stylize command that "
    "reproduces it alone).",
  )
  p.add_argument("content", metavar="CONTENT", help="content image")
  p.add_argument("style", metavar="STYLE", nargs="+", help="style image(s)")
  p.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="output folder (created)")
  p.add_argument("--ratios", type=common.floats, metavar="R,...", help="alpha/beta values, e.g. 1e-5,1e-4,1e-3,1e-2")
  p.add_argument(
    "--style-layer-sets",
    nargs="+",
    metavar="L,L,...",
    help="style layer subsets, each comma-separated, e.g. relu1_1 relu1_1,relu2_1",
  )
  p.add_argument("--tv-weights", type=common.floats, metavar="T,...", help="total-variation weights")
  p.add_argument(
    "--figure3",
    action="store_true",
    help="Gatys et al. 2016 Fig. 3: layer sets relu1_1 .. relu1_1-relu5_1 x ratios 1e-5..1e-2, from noise",
  )
  p.add_argument(
    "--batch", type=common.positive_int, metavar="N",
    help="vmap: members per compiled batch (default: all); map: members run at once (default: one per device)",
  )  # fmt: skip
  p.add_argument(
    "--batching",
    choices=sweep.BATCHINGS,
    default="auto",
    help="map: each member alone with the single-image programs, so its image is bit for bit its command's; "
    "vmap: one batched program (faster on GPUs; equal to float32 rounding); auto: map on CPU, else vmap",
  )
  common.add_recipe_args(p)
  p.set_defaults(handler=run)


def _spec(args: argparse.Namespace, config: StyleConfig) -> tuple[StyleConfig, sweep.SweepSpec]:
  """The grid the flags ask for (``--figure3``: the paper's), and the config it runs on."""
  if args.figure3:
    if args.ratios or args.style_layer_sets:
      raise CliError("--figure3 sets its own --ratios and --style-layer-sets")
    fig, spec = sweep.figure3()
    return (config if hasattr(args, "init") else config.set(init=fig.images.init)), spec
  sets = None
  if args.style_layer_sets:
    sets = tuple(tuple(n.strip() for n in s.split(",") if n.strip()) for s in args.style_layer_sets)
  spec = sweep.SweepSpec(
    ratios=tuple(args.ratios) if args.ratios else None,
    style_layer_sets=sets,
    tv_weights=tuple(args.tv_weights) if args.tv_weights else None,
  )
  if not (spec.ratios or spec.style_layer_sets or spec.tv_weights):
    raise CliError("give at least one of --ratios, --style-layer-sets, --tv-weights (or --figure3)")
  for r in spec.ratios or ():
    if not r > 0:
      raise CliError(f"--ratios must be positive, got {r}")
  return config, spec


def _one_scale(args: argparse.Namespace, config: StyleConfig) -> StyleConfig:
  """Sweeps run at one scale: a preset's ladder becomes its last size; ``--scales`` is refused."""
  if not config.images.scales:
    return config
  if hasattr(args, "scales"):
    raise CliError("--scales: sweeps run at one scale (use --size)")
  return config.set(size=config.images.output_size, scales=None, coarse_steps=None)


def run(args: argparse.Namespace) -> int:
  if args.figure3 and args.preset is None:
    args.preset = "gatys"  # the paper's figure, the paper's weighting
  config, spec = _spec(args, common.config_from_args(args))
  config = _one_scale(args, config)
  labels, members, columns = spec.grid(config)
  run_config = spec.run_config(config)
  out = args.output_dir
  if os.path.exists(out) and not os.path.isdir(out):
    raise CliError(f"{out}: exists and is not a directory")
  paths = common.input_paths(args.content, args.style, config)
  inputs = common.read_inputs(args.content, args.style, run_config)
  params, winfo = common.load_params(args.weights)
  os.makedirs(out, exist_ok=True)
  names = [sweep.member_filename(i, lab) for i, lab in enumerate(labels)]
  for n in [*names, "sheet.png"]:
    common.check_output(os.path.join(out, n), paths)
  if not args.quiet:
    print(f"sweep of {len(members)} members on {sweep.device_summary()}", file=sys.stderr)
  t0 = time.perf_counter()
  result = sweep.stylize_sweep(
    inputs.content, inputs.styles, run_config, spec.weights(config), params=params, mask=inputs.mask,
    regions=inputs.regions, init_image=inputs.init_image, batch_size=args.batch,
    callback=common.ProgressPrinter(args.quiet), batching=args.batching,
  )  # fmt: skip
  wall = time.perf_counter() - t0
  scores = _scores(params, inputs, run_config, result.images)
  _write_pictures(out, names, labels, columns, result, scores)
  members_record = [
    {"image": n, "settings": lab, "losses": loss, "metrics": {k: float(v[i]) for k, v in scores.items()},
     "command": _command(args, out, n, m)}
    for i, (n, lab, loss, m) in enumerate(zip(names, labels, result.losses, members, strict=True))
  ]  # fmt: skip
  record = {
    "command": common.command_line(),
    "content": os.path.abspath(args.content),
    "style": [os.path.abspath(p) for p in args.style],
    "sheet": "sheet.png",
    "columns": columns,
    "batching": result.batching,
    # what a member's "command" gives on the backend that ran the sweep
    "members_equal_their_commands": "bit for bit"
    if result.exact
    else "to float32 rounding (a batch sums in another order)",
    "members": members_record,
    **common.run_record(run_config.to_dict(), None, {**result.timings, "wall_s": wall}, winfo),
  }
  record.pop("losses")
  write_json(os.path.join(out, "sweep.json"), record)
  t = result.timings
  print(
    f"wrote {len(names)} images, {out}/sheet.png, {out}/pareto.png and {out}/sweep.json; "
    f"{t['image_steps_per_s']:.2f} image-steps/s ({result.batching}, {t['batch']} at once) "
    f"on {t['devices']} device(s); "
    f"compile {t['compile_s']:.1f}s"
  )
  return 0


def _command(args: argparse.Namespace, out: str, name: str, member: StyleConfig) -> str:
  content, styles = os.path.abspath(args.content), [os.path.abspath(p) for p in args.style]
  return common.stylize_command(content, styles, os.path.join(os.path.abspath(out), name), member, args.weights)


def _write_pictures(out: str, names, labels, columns: int, result: sweep.SweepResult, scores: dict) -> None:
  """Each member's image, the labelled sheet, and the Pareto plot of style against content distance."""
  for n, im in zip(names, result.images, strict=True):
    images.save_image(os.path.join(out, n), im)
  captions = [sweep.label_text(lab) for lab in labels]
  sheet = images.contact_sheet(list(result.images), captions, columns=columns, height=min(256, result.images.shape[1]))
  images.save_image(os.path.join(out, "sheet.png"), sheet)
  xs, ys = scores["content"], scores["style_gram"]
  figure = plot.scatter(
    xs,
    ys,
    captions,
    xlabel="content distance (relu4_2, relative)",
    ylabel="style distance (Gram, relative, mean of relu1_1..relu5_1)",
    title="sweep members: lower left is better on both",
    highlight=plot.pareto_front(xs, ys),
  )
  images.save_image(os.path.join(out, "pareto.png"), figure)


def _scores(params, inputs: common.Inputs, config: StyleConfig, results: np.ndarray) -> dict:
  """Each member's :func:`jaxstyle.objective.metrics.score` against the content at the run's size and the first
  style."""
  size = config.images.size
  content = inputs.content if size is None else images.resize(inputs.content, size)
  style = images.resize(inputs.styles[0], max(1, round(max(content.shape[:2]) * config.images.style_scale)))
  return metrics.score(params, content, style, list(results), pooling=config.network.pooling)
