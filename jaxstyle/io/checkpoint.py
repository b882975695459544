"""Checkpoints: one ``.npz`` format for every resumable run (a stylization, a training run).

A checkpoint holds a JSON record (the format version, the kind of run, the settings it was made with, and
whatever the run adds: its step, scale, evaluations) and named arrays: an image, histories, and pytrees
such as an optimizer state or params stored leaf by leaf (:func:`tree_arrays`), rebuilt against the tree
that the resuming run builds for its own settings (:func:`tree_from_arrays`), so a checkpoint from other
settings is refused instead of misread. Files are written atomically and read with
``allow_pickle=False``; every failure is one line (:class:`CheckpointError`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError, one_line
from jaxstyle.io.files import atomic_path

VERSION = 2


class CheckpointError(InputError):
  """A checkpoint is missing, corrupt, of another kind, or made with other settings; one line."""


class Saved(NamedTuple):
  """A checkpoint as :func:`load` reads it.

  Attributes:
    record: the JSON record: ``version``, ``kind``, ``settings`` and the run's own fields.
    arrays: name to NumPy array.
  """

  record: dict
  arrays: dict[str, np.ndarray]


def save(
  path: str | os.PathLike,
  kind: str,
  *,
  settings: Mapping[str, Any],
  record: Mapping[str, Any] | None = None,
  arrays: Mapping[str, ArrayLike],
) -> Path:
  """Writes a checkpoint atomically (its folder is created).

  Args:
    path: the ``.npz`` file.
    kind: what made it (``"stylize"``, ``"train"``); :func:`load` refuses another kind.
    settings: the run's settings as a JSON-ready dict (checked on resume by :func:`check_settings`).
    record: further JSON-ready fields (step, scale, evaluations, ...).
    arrays: name to array (``tree_arrays`` for pytrees).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  head = {"version": VERSION, "kind": kind, "settings": dict(settings), **dict(record or {})}
  data = {name: np.asarray(a) for name, a in arrays.items()}
  with atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, record=np.asarray(json.dumps(head, sort_keys=True)), **data)
  return path


def load(path: str | os.PathLike, kind: str) -> Saved:
  """Reads a checkpoint of ``kind`` written by :func:`save` (no pickles).

  Raises:
    CheckpointError: missing, corrupt, of another version or kind (one line).
  """
  path = Path(path)
  if not path.is_file():
    raise CheckpointError(f"{path}: no checkpoint there")
  try:
    with np.load(path, allow_pickle=False) as z:
      record = json.loads(str(z["record"]))
      arrays = {k: z[k] for k in z.files if k != "record"}
  except (OSError, KeyError, ValueError, EOFError, TypeError) as e:
    raise CheckpointError(f"{path}: corrupt checkpoint ({one_line(e)})") from None
  if not isinstance(record, dict) or record.get("version") != VERSION:
    raise CheckpointError(f"{path}: checkpoint version {record.get('version')!r} is not {VERSION}")
  if record.get("kind") != kind:
    raise CheckpointError(f"{path}: a checkpoint of {record.get('kind')!r}, not of {kind!r}")
  return Saved(record, arrays)


def check_settings(saved: Mapping, now: Mapping, *, may_change: Iterable[str], where: str) -> None:
  """Refuses a checkpoint whose settings differ from ``now``'s in any field but ``may_change``.

  Nested sections compare by dotted names (``run.steps``); values compare as JSON would write them.

  Raises:
    CheckpointError: naming the fields that differ.
  """
  a, b = _flatten(json.loads(json.dumps(saved))), _flatten(json.loads(json.dumps(now)))
  keep = set(may_change)
  differ = sorted(k for k in set(a) | set(b) if k not in keep and a.get(k) != b.get(k))
  if differ:
    raise CheckpointError(f"{where}: made with other settings ({', '.join(differ)} differ)")


def tree_arrays(prefix: str, tree: Any) -> dict[str, np.ndarray]:
  """A pytree's leaves as arrays named ``prefix.0``, ``prefix.1``, ... (``jax.tree`` order)."""
  return {f"{prefix}.{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(tree))}


def stored_leaves(prefix: str, arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
  """The leaves :func:`tree_arrays` stored under ``prefix``, in order."""
  n = sum(1 for k in arrays if k.startswith(prefix + ".") and k[len(prefix) + 1 :].isdigit())
  return [arrays[f"{prefix}.{i}"] for i in range(n)]


def tree_from_arrays(prefix: str, arrays: Mapping[str, np.ndarray], like: Any, *, where: str) -> Any:
  """The tree :func:`tree_arrays` stored, in the structure (and leaf dtypes) of ``like``.

  Raises:
    CheckpointError: the stored leaves are not as many, or not of the shapes, as ``like``'s.
  """
  leaves, treedef = jax.tree.flatten(like)
  stored = stored_leaves(prefix, arrays)
  if len(stored) != len(leaves):
    raise CheckpointError(f"{where}: its {prefix} has {len(stored)} arrays where these settings have {len(leaves)}")
  if any(np.shape(a) != np.shape(b) for a, b in zip(stored, leaves, strict=True)):
    raise CheckpointError(f"{where}: its {prefix} does not fit these settings (other shapes)")
  return treedef.unflatten([np.asarray(a, np.asarray(b).dtype) for a, b in zip(stored, leaves, strict=True)])


def named_arrays(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The arrays stored under ``prefix/`` (e.g. histories, flat params), by the rest of their names."""
  return {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _flatten(record: Mapping) -> dict:
  """``{"run": {"steps": 5}}`` -> ``{"run.steps": 5}``."""
  out = {}
  for k, v in record.items():
    if isinstance(v, dict):
      out.update({f"{k}.{kk}": vv for kk, vv in _flatten(v).items()})
    else:
      out[k] = v
  return out
