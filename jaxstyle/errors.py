"""The project's own errors: one base class, one subclass per kind of failure.

The CLI turns these, and only these, into one line and exit code 2; anything else is a
bug and keeps its traceback. Each message is one line.
"""

from __future__ import annotations


class JaxstyleError(Exception):
  """Base of every error a user can cause or meet (bad input, weights, memory, loss)."""


class InputError(JaxstyleError, ValueError):
  """An input (image, mask, setting, flag, path) is missing, unreadable or invalid."""


class FileError(InputError):
  """A file cannot be read or written (missing, unreadable, unwritable); the message names it."""


class WeightsError(JaxstyleError, ValueError):
  """Weights are missing, corrupt, foreign or of the wrong shapes."""


class ResourceError(JaxstyleError, ValueError):
  """A run does not fit in the device's memory; the message names what would fit."""


class NonFiniteError(JaxstyleError, ArithmeticError):
  """The loss became NaN or infinite and could not be recovered."""


def one_line(e: BaseException) -> str:
  """An exception's message folded onto one line (its type's name when it has none)."""
  return " ".join(str(e).split()) or type(e).__name__
