"""Checking a loaded params tree against the network's own ``init`` (as vit_jax's checkpoint module does)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from jaxstyle.errors import WeightsError


def check_params(params: Mapping, expected: Mapping, *, where: str = "weights") -> dict:
  """Checks every leaf's name, shape and dtype against ``expected`` and refuses non-finite values.

  Args:
    params: a nested dict of arrays (as read from a file).
    expected: the same tree of ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of the module's ``init``).
    where: what the message names (a file, a group).

  Returns:
    the params tree with NumPy leaves, in ``expected``'s structure.

  Raises:
    WeightsError: a missing, unexpected, mis-shaped, mis-typed or non-finite leaf (one line).
  """
  want = traverse_util.flatten_dict(dict(expected), sep="/")
  try:
    got = traverse_util.flatten_dict(dict(params), sep="/")
  except (AttributeError, TypeError, ValueError):
    raise WeightsError(f"{where}: not a params tree") from None
  missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  if missing or extra:
    raise WeightsError(f"{where}: params missing {missing[:4] or '[]'}, unexpected {extra[:4] or '[]'}")
  out = {}
  for name, spec in want.items():
    arr = np.asarray(got[name])
    if arr.shape != tuple(spec.shape) or arr.dtype != spec.dtype:
      raise WeightsError(f"{where}: {name} is {arr.dtype}{list(arr.shape)}, expected {spec.dtype}{list(spec.shape)}")
    if not np.all(np.isfinite(arr)):
      raise WeightsError(f"{where}: {name} holds non-finite values")
    out[name] = arr
  return traverse_util.unflatten_dict(out, sep="/")
