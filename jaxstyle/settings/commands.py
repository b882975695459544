"""The command lines that reproduce settings: what a record's ``reproduce`` says, from the CLI or the web
workbench alike."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from jaxstyle.settings import fields
from jaxstyle.settings.style import StyleConfig


def stylize_command(
  content: str, styles: Sequence[str], out: str, config: StyleConfig, weights_path: str | None
) -> str:
  """The ``jaxstyle stylize`` command line that reproduces ``config`` alone (every setting spelled out)."""
  cmd = ["jaxstyle", "stylize", content, *styles, "-o", out, "--preset", config.name, *fields.to_flags(config)]
  if weights_path is not None:
    cmd += ["--weights", os.path.abspath(weights_path)]
  return shlex.join(cmd)
