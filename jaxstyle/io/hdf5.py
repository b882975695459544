"""The project's HDF5 files (VGG19 weights, Magenta's networks, trained networks): one way to write and read them.

Each kind of file has a ``format`` tag and a ``format_version`` among its root attributes; params trees are
groups (a tree's path is the dataset's path, ``contract1/norm/gamma/kernel``), and a few arrays stand at the root
(a trained network's ``vector``). Reading checks the tag and version first and turns every failure into one line
(:class:`~jaxstyle.errors.WeightsError`); checking the trees against the networks is the caller's
(:mod:`jaxstyle.io.params`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
from flax import traverse_util

from jaxstyle.errors import WeightsError, one_line
from jaxstyle.io.files import atomic_path


class Contents(NamedTuple):
  """What :func:`read` returns: the root attributes (``json_attrs`` decoded), each group as a nested dict of
  NumPy arrays, and the root datasets."""

  attrs: dict[str, Any]
  groups: dict[str, dict]
  datasets: dict[str, np.ndarray]


def write(
  path: str | os.PathLike,
  *,
  format: str,  # noqa: A002 - the attribute's name
  version: int,
  attrs: Mapping[str, Any],
  groups: Mapping[str, Mapping],
  datasets: Mapping[str, np.ndarray] | None = None,
) -> Path:
  """Writes a file atomically (its folder is created): the tag, the version and ``attrs`` at the root, each tree
  of ``groups`` as a group, ``datasets`` at the root."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
    f.attrs.update(format=format, format_version=version, **dict(attrs))
    for group, tree in groups.items():
      for name, arr in traverse_util.flatten_dict(dict(tree), sep="/").items():
        f.create_dataset(f"{group}/{name}", data=np.asarray(arr))
    for name, arr in (datasets or {}).items():
      f.create_dataset(name, data=np.asarray(arr))
  return path


def read(
  path: str | os.PathLike,
  *,
  format: str,  # noqa: A002 - the attribute's name
  version: int,
  what: str,
  hint: str = "",
  json_attrs: Iterable[str] = (),
  require: Iterable[str] = (),
) -> Contents:
  """Reads a file written by :func:`write` after checking its tag and version.

  Args:
    path: the file.
    format: the tag it must carry.
    version: the version it must carry.
    what: what it holds, for messages (``"VGG19 weights"``).
    hint: how to get a good file, appended to messages (``"; run 'jaxstyle weights fetch'"``).
    json_attrs: root attributes stored as JSON, decoded (a name ending in ``*`` matches by its prefix's end:
      ``"*_config"`` decodes every ``..._config``).
    require: groups or datasets that must be there.

  Raises:
    WeightsError: missing, foreign, of another version, lacking a required part, corrupt or truncated (one line).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise WeightsError(f"no {what} at {path}{hint}")
  try:
    with h5py.File(path, "r") as f:
      attrs = {k: (v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v) for k, v in f.attrs.items()}
      if attrs.get("format") != format:
        raise WeightsError(f"{path}: not a {format} file (format {attrs.get('format')!r}){hint}")
      if attrs.get("format_version") != version:
        raise WeightsError(f"{path}: format version {attrs.get('format_version')} is not {version}")
      missing = [k for k in require if k not in f]
      if missing:
        raise WeightsError(f"{path}: no {', '.join(missing)} in it{hint}")
      groups = {k: _tree(g) for k, g in f.items() if isinstance(g, h5py.Group)}
      datasets = {k: d[()] for k, d in f.items() if isinstance(d, h5py.Dataset)}
      for k in list(attrs):
        if any(k == j or (j.startswith("*") and k.endswith(j[1:])) for j in json_attrs):
          attrs[k] = json.loads(attrs[k])
  except WeightsError:
    raise
  except (OSError, KeyError, ValueError, TypeError) as e:
    raise WeightsError(f"{path}: corrupt or truncated {what} file ({one_line(e)}){hint}") from None
  return Contents(attrs, groups, datasets)


def _tree(group: h5py.Group) -> dict:
  flat = {}
  group.visititems(lambda name, obj: flat.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
  return traverse_util.unflatten_dict(flat, sep="/")
