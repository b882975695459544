"""The command lines that reproduce settings: what a record's ``reproduce`` says, from the CLI or the web
workbench alike."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Sequence

from jaxstyle.settings import fields
from jaxstyle.settings.style import StyleConfig
from jaxstyle.settings.video import VideoSettings

# The recipe's flags that ``jaxstyle video`` reads as its own settings (--clip there is the window of frames, not
# pixel clipping): left out of the recipe's part of a video command, as the command leaves them out of its parser.
VIDEO_OWN_FLAGS = frozenset({"--clip"})
_VIDEO_FLAGS = frozenset(d.flag for d in VideoSettings.declarations()) | VIDEO_OWN_FLAGS


def stylize_command(
  content: str, styles: Sequence[str], out: str, config: StyleConfig, weights_path: str | None
) -> str:
  """The ``jaxstyle stylize`` command line that reproduces ``config`` alone (every setting spelled out)."""
  cmd = ["jaxstyle", "stylize", content, *styles, "-o", out, "--preset", config.name, *fields.to_flags(config)]
  if weights_path is not None:
    cmd += ["--weights", os.path.abspath(weights_path)]
  return shlex.join(cmd)


def _flag_groups(words: list[str]) -> Iterator[list[str]]:
  """:func:`~jaxstyle.settings.fields.to_flags`' words, one flag and its values at a time."""
  group: list[str] = []
  for w in words:
    if w.startswith("--") and group:
      yield group
      group = []
    group.append(w)
  if group:
    yield group


def _flag_name(flag: str) -> str:
  return "--" + flag[len("--no-") :] if flag.startswith("--no-") else flag


def video_command(
  clip: str, styles: list[str], out: str, settings: VideoSettings, recipe: StyleConfig | None, weights_path: str | None
) -> str:
  """The ``jaxstyle video`` command line that reproduces a run: every video setting spelled out, and with
  ``--method optimize`` the recipe's preset and every setting of it the command reads (``weights_path`` names the
  VGG19 file then)."""
  cmd = ["jaxstyle", "video", clip, *styles, "-o", out, *fields.to_flags(settings)]
  if settings.method == "optimize" and recipe is not None:
    cmd += ["--preset", recipe.name]
    for group in _flag_groups(fields.to_flags(recipe)):
      if _flag_name(group[0]) not in _VIDEO_FLAGS:
        cmd += group
    if weights_path is not None:
      cmd += ["--weights", os.path.abspath(weights_path)]
  return shlex.join(cmd)
