"""What the commands share: the parser's error handling, flags from declarations, reading inputs, checking
outputs, progress lines, signals, and the records written beside outputs."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import math
import os
import platform
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import jax
import numpy as np

from jaxstyle.errors import InputError
from jaxstyle.io import images
from jaxstyle.io import vgg_weights as weights
from jaxstyle.io.files import check_writable, sidecar_path
from jaxstyle.optim import problem
from jaxstyle.settings import fields, presets
from jaxstyle.settings.commands import stylize_command  # noqa: F401 - the commands' name for it
from jaxstyle.settings.fields import Declaration, Settings
from jaxstyle.settings.style import StyleConfig

EXIT_USAGE = 2
EXIT_BUG = 1
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


class CliError(InputError):
  """A user error on the command line: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
  def error(self, message: str):  # one line instead of usage + message
    raise CliError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- flags


def positive_int(text: str) -> int:
  try:
    v = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
  if v < 1:
    raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
  return v


def floats(text: str) -> list[float]:
  try:
    return [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _flag_type(d: Declaration):
  """argparse's ``type=`` for a declared setting: the codec's parser, with its choices checked (``none``
  included where the setting is optional)."""

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


def add_setting_flags(group, declarations: Iterable[Declaration]) -> None:
  """One flag per declared setting (:mod:`jaxstyle.settings.fields`); a flag not given is absent from the
  namespace, so that ``none`` stays a value."""
  for d in declarations:
    if d.codec.flag_bool:
      group.add_argument(
        d.flag, dest=d.dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=d.help
      )
      continue
    choices_help = f" ({'|'.join(d.codec.choices)})" if d.codec.choices else ""
    group.add_argument(
      d.flag,
      dest=d.dest,
      type=_flag_type(d),
      nargs=d.codec.nargs,
      metavar=None if d.codec.choices else d.codec.metavar,
      default=argparse.SUPPRESS,
      help=d.help + choices_help,
    )


def settings_from_args(base: Settings, args: argparse.Namespace, *, other: frozenset[str] = frozenset()) -> Settings:
  """``base`` with every settings flag that was given; ``other`` names flags the command uses for a setting of
  its own (left alone here)."""
  given = {d.dest: getattr(args, d.dest) for d in type(base).declarations()
           if hasattr(args, d.dest) and d.flag not in other}  # fmt: skip
  return fields.from_flags(base, given)


def add_weights_arg(p: argparse.ArgumentParser, help_text: str) -> None:
  p.add_argument(
    "--weights",
    metavar="PATH",
    help=help_text + " (default: $JAXSTYLE_WEIGHTS, weights/vgg19.h5 in a checkout, else ~/.cache/jaxstyle/vgg19.h5)",
  )


def add_recipe_args(p: argparse.ArgumentParser, *, title: str = "recipe", shared: frozenset[str] = frozenset()) -> None:
  """The optimization settings' flags, under a preset; ``shared`` names flags the command already has (the
  same setting in its own settings class, e.g. ``--size`` of a video), left out here."""
  g = p.add_argument_group(f"{title} (a preset, then overrides; 'none' unsets an optional value)")
  g.add_argument(
    "--preset",
    default=None,
    choices=sorted(presets.PRESETS),
    help=f"starting configuration (default: {presets.DEFAULT}; sweep --figure3: gatys)",
  )
  add_setting_flags(g, [d for d in StyleConfig.declarations() if d.flag not in shared])
  add_weights_arg(p, "VGG19 weights file")
  if "--quiet" not in shared:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def config_from_args(
  args: argparse.Namespace, *, resolve: bool = True, other: frozenset[str] = frozenset()
) -> StyleConfig:
  """The preset named by ``--preset`` with every given settings flag applied (but ``other``, flags the command
  uses for its own settings), resolved (unless a caller sets the size first and resolves then), and file paths
  made absolute so that records and reproduction commands work from anywhere."""
  config = settings_from_args(presets.get(args.preset or presets.DEFAULT), args, other=other)
  config = config.resolve() if resolve else config
  im = config.images
  paths = {}
  if im.mask:
    paths["mask"] = os.path.abspath(im.mask)
  if im.style_regions:
    paths["style_regions"] = tuple(os.path.abspath(r) for r in im.style_regions)
  if im.init_is_image:
    paths["init"] = os.path.abspath(im.init)
  return config.set(**paths) if paths else config


# --------------------------------------------------------------------------- inputs and outputs


class Inputs(NamedTuple):
  """Every input image of a run, read once."""

  content: np.ndarray
  styles: list[np.ndarray]
  mask: np.ndarray | None
  regions: list[np.ndarray] | None
  init_image: np.ndarray | None


def input_paths(content_path: str, style_paths: Sequence[str], config: StyleConfig) -> list[str]:
  """Every file a run reads: content, styles, and the mask, region maps and start image its settings name."""
  im = config.images
  return [
    content_path,
    *style_paths,
    *([im.mask] if im.mask else []),
    *(im.style_regions or []),
    *([im.init] if im.init_is_image else []),
  ]


def read_inputs(content_path: str, style_paths: Sequence[str], config: StyleConfig) -> Inputs:
  """Reads every input once and checks it against the settings, before the network is loaded or anything is
  written, so that a bad file fails at once."""
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


def check_output(out: str, inputs: Sequence[str], *, image: bool = True) -> None:
  """Refuses, before any work, an output (or its ``.json`` sidecar) that cannot be written or would overwrite an
  input."""
  if image:
    images.check_output(out)
  else:
    check_writable(out)
  for p in (out, sidecar_path(out)):
    for i in inputs:
      if os.path.abspath(p) == os.path.abspath(i) or (
        os.path.exists(i) and os.path.exists(p) and os.path.samefile(p, i)
      ):
        raise CliError(f"{p}: output would overwrite input {i}")


def load_params(path: str | None):
  """The VGG19 params and the description of their file."""
  return weights.load_vgg19(path, with_info=True)


def versions() -> dict:
  out = {"python": platform.python_version()}
  for pkg in ("jaxstyle", "jax", "jaxlib", "flax", "optax", "numpy", "pillow", "h5py"):
    try:
      out[pkg] = md.version(pkg)
    except md.PackageNotFoundError:
      out[pkg] = None
  return out


def device() -> dict:
  d = jax.devices()[0]
  return {
    "platform": d.platform,
    "kind": d.device_kind,
    "count": jax.device_count(),
    "machine": platform.machine(),
    "cpus": os.cpu_count(),
  }


def provenance() -> dict:
  """What every record says about where it was made: package versions and the device."""
  return {"versions": versions(), "device": device()}


def weights_record(winfo: dict) -> dict:
  """The VGG19 file a run used: path, source and checksum."""
  return {k: winfo.get(k) for k in ("path", "source", "source_checksum")}


def run_record(settings: dict, result_losses, timings: dict, winfo: dict) -> dict:
  """The fields an optimization's record has: settings, losses, timings, weights, versions and device."""
  return {"settings": settings, "losses": result_losses, "timings": timings, "weights": weights_record(winfo),
          **provenance()}  # fmt: skip


def command_line() -> str:
  """The command as typed."""
  return shlex.join(["jaxstyle", *sys.argv[1:]])


# --------------------------------------------------------------------------- progress and signals


def fmt_time(s: float) -> str:
  if s == float("inf"):
    return "?"
  s = int(round(s))
  return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class ProgressPrinter:
  """Progress lines on stderr: live on a terminal, one line per report otherwise."""

  TILE_EVERY_S = 30.0  # without a terminal, one line per pass or per this many seconds within a step

  def __init__(self, quiet: bool):
    self.quiet = quiet
    self.tty = sys.stderr.isatty()
    self.step, self.steps, self.tile_line = 0, 0, -math.inf
    self.prefix = ""  # e.g. the photo of a folder

  def tiles(self, t) -> None:
    """Progress within a step of a tiled run (:class:`~jaxstyle.objective.tiled.TileProgress`), which can take
    minutes."""
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
    if not p.lead:  # several members at once: the first speaks for them
      return
    self.step, self.steps = p.step, p.steps
    if self.quiet or not p.report:
      return
    temporal = f", temporal {p.losses['temporal']:.3g}" if "temporal" in p.losses else ""
    line = (
      f"{self.prefix}step {p.step}/{p.steps}  loss {p.losses['total']:.4g} (content {p.losses['content']:.3g}, "
      f"style {p.losses['style']:.3g}, tv {p.losses['tv']:.3g}{temporal})  {p.steps_per_second:.2f} it/s  "
      f"ETA {fmt_time(p.eta)}"
    )
    self.line(line, last=p.step == p.steps)

  def line(self, text: str, *, last: bool = False) -> None:
    if self.quiet:
      return
    if self.tty:
      sys.stderr.write("\r\033[K" + text + ("\n" if last else ""))
    else:
      sys.stderr.write(text + "\n")
    sys.stderr.flush()


class Signals:
  """Turns SIGINT/SIGTERM into a stop request polled between chunks (a second signal interrupts at once)."""

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

  def stop(self) -> bool:
    return self.received is not None

  @property
  def name(self) -> str:
    return signal.Signals(self.received).name

  @property
  def exit_code(self) -> int:
    return EXIT_SIGNAL[self.received]
