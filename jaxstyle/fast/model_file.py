"""The files of training: the trained network (HDF5) and the training checkpoint (:mod:`jaxstyle.io.checkpoint`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax.typing import ArrayLike

from jaxstyle.errors import WeightsError
from jaxstyle.io import checkpoint, hdf5, magenta_weights
from jaxstyle.nets import magenta
from jaxstyle.settings.train import TrainSettings

FORMAT_TRAINED = "jaxstyle-magenta-trained"
FORMAT_VERSION = 1


def flat_params(tree: Mapping) -> dict[str, np.ndarray]:
  """A params tree as ``{"a/b/kernel": array}``."""
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(dict(tree), sep="/").items()}


# --------------------------------------------------------------------------- the training checkpoint


class TrainCheckpoint(NamedTuple):
  """A training run's state as :func:`load_checkpoint` reads it."""

  params: dict  # {"transformer": ..., "vector": ...}, NumPy leaves
  opt_state_leaves: list[np.ndarray]
  step: int
  history: dict[str, np.ndarray]
  evals: list[dict[str, float]]
  settings: dict
  fingerprints: dict[str, str]


def save_checkpoint(
  path: str | os.PathLike,
  params: Mapping,
  opt_state: Any,
  step: int,
  *,
  settings: TrainSettings,
  history: Mapping[str, ArrayLike],
  evals: Sequence[Mapping[str, float]] = (),
  fingerprints: Mapping[str, str] | None = None,
) -> Path:
  """Writes a training checkpoint atomically.

  Args:
    path: the file.
    params: ``{"transformer": ..., "vector": ...}``.
    opt_state: the optimizer state (its leaves are stored in ``jax.tree`` order).
    step: steps done.
    settings: the run's settings (recorded; checked on resume).
    history: per-step arrays, as :class:`~jaxstyle.fast.train.TrainResult`'s.
    evals: the evaluations so far.
    fingerprints: digests of the style and content images (checked on resume).
  """
  arrays = {
    **{f"param/{k}": v for k, v in flat_params(params).items()},
    **checkpoint.tree_arrays("opt_state", opt_state),
    **{f"history/{k}": np.asarray(v) for k, v in history.items()},
  }
  record = {
    "step": int(step),
    "evals": [dict(e) for e in evals],
    "fingerprints": dict(fingerprints or {}),
    # Crops are drawn from (seed, step), so seed and step are the whole random state.
    "rng": {"kind": "numpy.default_rng([seed, step])", "seed": settings.seed},
  }
  return checkpoint.save(path, "train", settings=settings.to_dict(), record=record, arrays=arrays)


def load_checkpoint(path: str | os.PathLike) -> TrainCheckpoint:
  """Reads a checkpoint written by :func:`save_checkpoint` (no pickles).

  Raises:
    CheckpointError: missing or corrupt file (one line).
  """
  saved = checkpoint.load(path, "train")
  r = saved.record
  params = traverse_util.unflatten_dict(checkpoint.named_arrays("param", saved.arrays), sep="/")
  leaves = checkpoint.stored_leaves("opt_state", saved.arrays)
  history = checkpoint.named_arrays("history", saved.arrays)
  return TrainCheckpoint(params, leaves, int(r["step"]), history, r["evals"], r["settings"], r["fingerprints"])


def check_resume(ckpt: TrainCheckpoint, params: Mapping, opt_state: Any, settings: TrainSettings, prints: dict, where):
  """The checkpoint's optimizer state in ``opt_state``'s structure, after checking that it was made by this run:
  the same settings (but the resumable ones), data, network and optimizer, and not past ``settings.steps``.

  Raises:
    CheckpointError: naming what differs.
  """
  where = str(where)
  checkpoint.check_settings(ckpt.settings, settings.to_dict(), may_change=TrainSettings.resumable_fields(), where=where)
  for k, v in prints.items():
    if ckpt.fingerprints.get(k) != v:
      raise checkpoint.CheckpointError(f"{where}: made with other {k} images")
  if ckpt.step > settings.steps:
    raise checkpoint.CheckpointError(f"{where}: already at step {ckpt.step}, past steps {settings.steps}")
  want, got = flat_params(params), flat_params(ckpt.params)
  if list(want) != list(got) or any(want[k].shape != got[k].shape for k in want):
    raise checkpoint.CheckpointError(f"{where}: its network has other params than the one given")
  stored = {f"opt_state.{i}": a for i, a in enumerate(ckpt.opt_state_leaves)}
  return checkpoint.tree_from_arrays("opt_state", stored, opt_state, where=where)


# --------------------------------------------------------------------------- the trained model's file


def save_model(
  path: str | os.PathLike,
  transformer_params: Mapping,
  vector: ArrayLike,
  *,
  settings: TrainSettings,
  style_path: str | os.PathLike | None = None,
  style_name: str | None = None,
  steps_done: int | None = None,
  attrs: Mapping[str, Any] | None = None,
) -> Path:
  """Writes a trained network (HDF5, atomically): group ``transformer`` in
  :mod:`jaxstyle.io.magenta_weights`' layout and dataset ``vector``.

  Root attributes: ``format`` (``jaxstyle-magenta-trained``), ``format_version`` (1), ``settings`` (JSON),
  ``style`` (the style's name), ``style_path``, ``steps_done``, ``transformer_config`` (JSON), ``source``,
  ``license``, ``input``, and ``attrs``.
  """
  model = magenta.transformer_of(transformer_params)
  params = magenta_weights.check_model_params(transformer_params, model, where="transformer params")
  v = np.asarray(vector, np.float32)
  if v.shape != (model.style_dim,) or not np.all(np.isfinite(v)):
    raise WeightsError(f"vector must be ({model.style_dim},) finite float32, got {v.dtype}{list(v.shape)}")
  if style_name is None:
    style_name = Path(style_path).stem if style_path is not None else "unnamed"
  head = dict(
    settings=json.dumps(settings.to_dict(), sort_keys=True),
    style=style_name,
    style_path=os.fspath(style_path) if style_path is not None else "",
    steps_done=-1 if steps_done is None else int(steps_done),
    transformer_config=json.dumps(magenta.model_config(model)),
    source=f"jaxstyle.fast.train from Magenta's arbitrary-style transformer ({magenta_weights.WHEEL_REQUIREMENT})",
    license=magenta_weights.LICENSE,
    input=magenta_weights.INPUT,
    **dict(attrs or {}),
  )
  groups, datasets = {"transformer": params}, {"vector": v}
  return hdf5.write(path, format=FORMAT_TRAINED, version=FORMAT_VERSION, attrs=head, groups=groups, datasets=datasets)


def load_model(path: str | os.PathLike, *, with_attrs: bool = False):
  """Reads a file written by :func:`save_model`, checking every leaf against the network's own shapes.

  Returns:
    ``(transformer_params, vector)`` as ``jax.Array`` trees; with ``with_attrs`` also the root attributes
    (``settings`` and ``transformer_config`` decoded).

  Raises:
    WeightsError: missing, foreign, corrupt or mis-shaped file (one line).
  """
  path = os.fspath(path)
  contents = hdf5.read(
    path,
    format=FORMAT_TRAINED,
    version=FORMAT_VERSION,
    what="trained model",
    json_attrs=("settings", "transformer_config"),
    require=("transformer", "vector"),
  )
  if "transformer" not in contents.groups or "vector" not in contents.datasets:
    raise WeightsError(f"{path}: no transformer group or vector")
  attrs, vector = contents.attrs, np.asarray(contents.datasets["vector"])
  try:
    model = magenta.model_from_config(magenta.Transformer, attrs["transformer_config"])
  except (KeyError, TypeError) as e:
    raise WeightsError(f"{path}: bad transformer_config attribute ({e})") from None
  params = magenta_weights.check_model_params(contents.groups["transformer"], model, where=path)
  if vector.shape != (model.style_dim,) or vector.dtype != np.float32 or not np.all(np.isfinite(vector)):
    raise WeightsError(f"{path}: vector is {vector.dtype}{list(vector.shape)}, expected float32[{model.style_dim}]")
  out = (jax.tree.map(jnp.asarray, params), jnp.asarray(vector))
  return (*out, attrs) if with_attrs else out
