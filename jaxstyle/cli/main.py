"""The ``jaxstyle`` command: parse, read inputs once, call one library function, report, write results.

Each command is a module of this package that owns its parser (``add_parser``) and its handler (``run``).
The project's own errors (:mod:`jaxstyle.errors`: bad input, bad weights, does not fit, non-finite) end in one
line on stderr, ``jaxstyle: error: ...``, and exit code 2. Anything else is a bug: its traceback, a line saying
so, and exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

import jax

from jaxstyle import __version__
from jaxstyle.cli import common, demo, fast, score, stylize, sweep, train, ui, video, weights
from jaxstyle.cli.common import CliError
from jaxstyle.errors import JaxstyleError, one_line
from jaxstyle.runtime.compilation import enable_disk_cache

COMMANDS = (stylize, demo, sweep, score, fast, train, video, ui, weights)
# the commands that keep compiled programs on disk
COMPILING = ("stylize", "sweep", "demo", "fast", "train", "video", "ui")


def build_parser() -> argparse.ArgumentParser:
  parser = common.Parser(
    prog="jaxstyle",
    description="Neural style transfer (Gatys et al. 2016) in JAX.",
    epilog="Exit codes: 0 success; 2 bad input, bad settings or a loss that became non-finite; "
    "130 interrupted (SIGINT), 143 terminated (SIGTERM): the image so far is written.",
  )
  parser.add_argument("--version", action="version", version=f"jaxstyle {__version__}")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=common.Parser)
  for command in COMMANDS:
    command.add_parser(sub)
  return parser


def start_distributed(args: argparse.Namespace) -> bool:
  """Starts ``jax.distributed`` (before anything runs) when ``stylize --distributed`` or
  ``$JAX_COORDINATOR_ADDRESS`` asks for it; returns whether it did.

  ``jax.distributed.initialize()`` reads ``$JAX_COORDINATOR_ADDRESS`` (host:port of process 0) itself and finds
  the process count and id under Slurm, Open MPI, MPI or Kubernetes; elsewhere ``$JAX_NUM_PROCESSES`` and
  ``$JAX_PROCESS_ID`` give them.
  """
  if not getattr(args, "distributed_ok", False):
    return False
  if not (args.distributed or os.environ.get("JAX_COORDINATOR_ADDRESS")):
    return False
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


def main(argv: Sequence[str] | None = None) -> int:
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
    if args.command is None:
      parser.print_help()
      return common.EXIT_USAGE
    start_distributed(args)
    if args.command in COMPILING:
      enable_disk_cache()
    return args.handler(args)
  except JaxstyleError as e:
    print(f"jaxstyle: error: {one_line(e)}", file=sys.stderr)
    return common.EXIT_USAGE
  except KeyboardInterrupt:
    print("\njaxstyle: interrupted", file=sys.stderr)
    return 130
  except Exception:  # noqa: BLE001 - a bug: keep the traceback
    traceback.print_exc()
    print("jaxstyle: internal error (a bug in jaxstyle, not in your input); please report it", file=sys.stderr)
    return common.EXIT_BUG


if __name__ == "__main__":
  sys.exit(main())
