"""Checkpoints of a running stylization: one ``.npz`` file, read with ``allow_pickle=False``.

A checkpoint holds the image, the optimizer state's leaves (in ``jax.tree`` order of
the state that :func:`jaxstyle.optimize.init_state` builds for the same settings), the
step (counted over every scale), the scale of a coarse-to-fine run, that scale's loss
history and the settings it was made with. Resuming with the same
settings continues exactly where the run stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np

from jaxstyle.config import StyleConfig, resumable_fields
from jaxstyle.errors import InputError
from jaxstyle.images import atomic_path
from jaxstyle.optimize import Progress, Resume

FILENAME = "checkpoint.npz"


class CheckpointError(InputError):
  """A checkpoint is missing, corrupt, or made with other settings; one line."""


def save(directory: str | os.PathLike, progress: Progress, config: StyleConfig) -> Path:
  """Writes ``directory/checkpoint.npz`` atomically from a progress report."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  leaves = [np.asarray(x) for x in jax.tree.leaves(progress.opt_state)]
  arrays = {f"state_{i}": a for i, a in enumerate(leaves)}
  arrays.update({f"history_{k}": np.asarray(v) for k, v in (progress.history or {}).items()})
  path = directory / FILENAME
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      np.savez(
        f,
        image=np.asarray(progress.image),
        step=np.int64(progress.step),
        scale=np.int64(progress.scale),
        num_state=np.int64(len(leaves)),
        config=np.asarray(json.dumps(config.to_dict(), sort_keys=True)),
        **arrays,
      )
  return path


def load(directory: str | os.PathLike, config: StyleConfig) -> Resume:
  """Reads a checkpoint and checks it was made with ``config`` (only the settings declared
  ``resumable``, such as ``steps`` and the report and save intervals, may differ)."""
  path = Path(directory) / FILENAME
  if not path.is_file():
    raise CheckpointError(f"{path}: no checkpoint there")
  try:
    with np.load(path, allow_pickle=False) as z:
      saved = json.loads(str(z["config"]))
      image = z["image"]
      step = int(z["step"])
      scale = int(z["scale"]) if "scale" in z.files else 0
      leaves = [z[f"state_{i}"] for i in range(int(z["num_state"]))]
      history = {k[len("history_") :]: z[k] for k in z.files if k.startswith("history_")}
  except (OSError, KeyError, ValueError, EOFError) as e:
    raise CheckpointError(f"{path}: corrupt checkpoint ({' '.join(str(e).split())})") from None
  now, saved = _flatten(json.loads(json.dumps(config.to_dict()))), _flatten(saved)
  may_change = resumable_fields()
  differ = sorted(k for k in set(saved) | set(now) if k not in may_change and saved.get(k) != now.get(k))
  if differ:
    raise CheckpointError(f"{path}: made with other settings ({', '.join(differ)} differ)")
  from jaxstyle.multiscale import scale_plan

  plan = scale_plan(config)
  if scale >= len(plan):
    raise CheckpointError(f"{path}: saved at scale {scale}, this run has {len(plan)}")
  end = sum(steps for _, steps in plan[: scale + 1])
  if step > end:
    raise CheckpointError(f"{path}: already at step {step}, past this scale's last step {end} (--steps)")
  return Resume(image=image, opt_state_leaves=leaves, step=step, history=history, scale=scale)


def _flatten(record: dict) -> dict:
  """``{"run": {"steps": 5}}`` -> ``{"run.steps": 5}``."""
  return {f"{s}.{k}": v for s, fields in record.items() if isinstance(fields, dict) for k, v in fields.items()} | {
    s: v for s, v in record.items() if not isinstance(v, dict)
  }
