"""Optimizing an image: the optax transformation, one step, one compiled chunk of steps, the loop.

The image is the optimization variable, ``(H, W, 3)`` RGB in [0, 1] units. Adam, optax's
zoom L-BFGS and jaxstyle's backtracking L-BFGS are all ``optax.GradientTransformationExtraArgs``
driven by the same :func:`run_step`. Steps run in compiled chunks of at most
``config.run.chunk`` steps (a ``lax.fori_loop`` whose trip count is an argument, so a short
chunk reuses the same executable); a chunk also ends where a report or a save is due, and
the Python loop between chunks only reports, saves and polls for a stop. Every piece is
written for one image and ``jax.vmap``-ed for sweeps (:mod:`jaxstyle.sweep`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxstyle import lbfgs, losses, vgg
from jaxstyle.compilation import check_memory, compiled
from jaxstyle.config import OptimizerSettings, StyleConfig
from jaxstyle.errors import InputError
from jaxstyle.objective import Static, Targets, compose, compute_targets, objective  # noqa: F401


@dataclasses.dataclass(frozen=True)
class Progress:
  """What a progress callback receives at the end of each chunk.

  ``step`` and ``steps`` count over the whole run (every scale of a coarse-to-fine run).
  ``report`` and ``save`` say whether a report or a save (``config.run.report_every``,
  ``save_every``) is due at this step; a callback may ignore other calls. ``image``,
  ``opt_state`` and ``history`` are the live loop state, valid during the callback (the
  next chunk consumes the buffers): copy what you keep.
  """

  step: int
  steps: int
  losses: dict[str, float]
  elapsed: float
  steps_per_second: float
  image: Any = None
  opt_state: Any = None
  history: dict[str, np.ndarray] | None = None
  scale: int = 0
  report: bool = True
  save: bool = False

  @property
  def eta(self) -> float:
    return (self.steps - self.step) / self.steps_per_second if self.steps_per_second > 0 else math.inf


@dataclasses.dataclass(frozen=True)
class Run:
  """What :func:`optimize` returns.

  Attributes:
    image: the final image clipped to [0, 1] (or, per member, the last one whose loss
      was finite).
    history: ``"total"``: ``(steps,)`` loss at the iterate each step started from;
      ``"step"``: the step count at each chunk end; ``"content"``, ``"style"``, ``"tv"``:
      weighted loss parts at each chunk end.
    losses: final weighted parts and ``"total"`` (arrays of shape ``(B,)`` if batched).
    timings: ``compile_s``, ``run_s``, ``steps_per_s``.
    status: ``"completed"``, ``"stopped"`` (``stop()`` returned true) or
      ``"non-finite"`` (the loss became NaN/Inf and could not be recovered).
    step: steps completed (counting from the run's ``first_step``).
    lbfgs_resets: times L-BFGS memory was reset after a non-finite loss.
  """

  image: jax.Array
  history: dict[str, np.ndarray]
  losses: dict[str, np.ndarray]
  timings: dict[str, float]
  status: str
  step: int
  lbfgs_resets: int = 0


class Resume(NamedTuple):
  """Loop state saved at a chunk boundary (see :mod:`jaxstyle.checkpoint`)."""

  image: np.ndarray
  opt_state_leaves: list[np.ndarray]
  step: int
  history: dict[str, np.ndarray]


def optimizer(settings: OptimizerSettings) -> optax.GradientTransformationExtraArgs:
  """The optax transformation for ``settings``: Adam, optax's zoom L-BFGS or :func:`jaxstyle.lbfgs.lbfgs`.

  All three take ``update(grad, state, params, value=..., grad=..., value_fn=...)``.
  """
  if settings.kind == "adam":
    return optax.with_extra_args_support(optax.adam(settings.lr, b1=settings.b1, b2=settings.b2, eps=settings.eps))
  if settings.line_search == "zoom":
    return optax.lbfgs(learning_rate=None if settings.lr == 1.0 else settings.lr, memory_size=settings.memory)
  return lbfgs.lbfgs(memory_size=settings.memory, learning_rate=settings.lr)


def _carries_value(settings: OptimizerSettings) -> bool:
  # L-BFGS states hold the loss and gradient at the iterate: a step reads them instead of
  # evaluating again (its line search already did), which also avoids
  # optax.value_and_grad_from_state's lax.cond, whose branches would both run under vmap.
  return settings.kind == "lbfgs"


def _value_fn(params, targets, weights, static: Static):
  return lambda x: objective(x, params, targets, weights, static=static)[0]


def init_state(image, params, targets, weights, *, static: Static):
  """The optimizer state for one ``(H, W, 3)`` image (for L-BFGS, with the loss and
  gradient at ``image``)."""
  state = optimizer(static.optimizer).init(image)
  if _carries_value(static.optimizer):
    value, grad = jax.value_and_grad(_value_fn(params, targets, weights, static))(image)
    state = optax.tree.set(state, value=value, grad=grad)
  return state


def run_step(image, state, params, targets, weights, *, static: Static):
  """One optimizer step on one ``(H, W, 3)`` image, the same for every optimizer.

  With ``clip`` the image is projected onto [0, 1] after the step; an L-BFGS state then
  gets the loss and gradient at the projected image, so the next step starts from it.

  Returns:
    ``(image, state, value)``: ``value`` is the loss at the image the step started from.
  """
  settings = static.optimizer
  value_fn = _value_fn(params, targets, weights, static)
  if _carries_value(settings):
    value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
  else:
    value, grad = jax.value_and_grad(value_fn)(image)
  updates, state = optimizer(settings).update(grad, state, image, value=value, grad=grad, value_fn=value_fn)
  image = optax.apply_updates(image, updates)
  if settings.clip:
    image = jnp.clip(image, 0.0, 1.0)
    if _carries_value(settings):
      v, g = jax.value_and_grad(value_fn)(image)
      state = optax.tree.set(state, value=v, grad=g)
  return image, state, value


def evaluate(image, params, targets, weights, *, static: Static) -> dict[str, jax.Array]:
  """The weighted loss parts of one image (a forward pass only)."""
  return objective(image, params, targets, weights, static=static)[1]


def run_chunk(image, state, num_steps, params, targets, weights, *, static: Static):
  """Runs ``num_steps <= static.chunk`` steps on one image in one XLA loop.

  Returns:
    ``(image, state, values, parts)``: ``values`` is ``(static.chunk,)``, the loss at
    the iterate each step started from (entries past ``num_steps`` are NaN); ``parts``
    the weighted loss parts at the returned image.
  """

  def body(i, carry):
    x, s, values = carry
    x, s, value = run_step(x, s, params, targets, weights, static=static)
    return x, s, values.at[i].set(value)

  values = jnp.full((static.chunk,), jnp.nan, jnp.float32)
  image, state, values = jax.lax.fori_loop(0, num_steps, body, (image, state, values))
  return image, state, values, evaluate(image, params, targets, weights, static=static)


# --------------------------------------------------------------------------- loop


def boundaries(first: int, last: int, *, every: Sequence[int | None], chunk: int) -> list[int]:
  """Where chunks end between step ``first`` and ``last``: at every multiple of each
  interval in ``every``, at ``last``, and at most ``chunk`` steps apart.

  ``boundaries(0, 30, every=(25, 7), chunk=50) == [7, 14, 21, 25, 28, 30]``.
  """
  stops = {last}
  for n in every:
    if n:
      stops.update(range((first // n + 1) * n, last, n))
  out, at = [], first
  for s in sorted(stops):
    while s - at > chunk:
      at += chunk
      out.append(at)
    if s > at:
      out.append(s)
      at = s
  return out


def optimize(
  image: ArrayLike,
  params: Mapping,
  targets: Targets,
  weights: losses.LossWeights,
  config: StyleConfig,
  *,
  batched: bool = False,
  callback: Callable[[Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  resume: Resume | None = None,
  first_step: int = 0,
  total_steps: int | None = None,
  scale: int = 0,
) -> Run:
  """Runs ``config.run.steps`` steps from ``image``; the loop shared by stylize and sweeps.

  Between chunks it reports progress, polls ``stop`` (so a signal handler can end a
  run cleanly at the next boundary), and checks the loss: when it is no longer finite,
  L-BFGS restarts once from the last finite image with its memory reset; otherwise the
  run ends with status ``"non-finite"`` and that image.

  Args:
    image: ``(H, W, 3)``, or ``(B, H, W, 3)`` when ``batched``.
    params: VGG19 params prepared for ``config.network.conv`` (:func:`jaxstyle.vgg.prepare`).
    targets: from :func:`compute_targets`.
    weights: scalar leaves, or leaves with a leading ``B`` axis when ``batched``.
    config: settings.
    batched: vmap over the leading axis of image and weights.
    callback: called after each chunk with :class:`Progress` (losses of member 0).
    stop: polled after each chunk; true ends the run with status ``"stopped"``.
    resume: continue from a saved :class:`Resume` instead of ``image``.
    first_step: steps done before this call (earlier scales), for counts and intervals.
    total_steps: steps of the whole run, for progress (default ``first_step + steps``).
    scale: the scale's index, passed on in :class:`Progress`.

  Returns:
    a :class:`Run`; arrays carry a leading ``B`` axis when ``batched``.
  """
  static = Static.from_config(config)
  params = vgg.prepare(params, config.network.conv, layers=static.layers)  # no-op when already prepared
  x = jnp.array(image if resume is None else resume.image, jnp.float32, copy=True)  # the loop donates x
  # A batch sharded over devices keeps every per-member output sharded the same way.
  out_sharding = x.sharding if batched and isinstance(x.sharding, jax.sharding.NamedSharding) else None
  init_fn, t_init = compiled(
    "init", init_state, (x, params, targets, weights), static=static, batched=batched, out_sharding=out_sharding
  )
  state = init_fn(x, params, targets, weights)
  if resume is not None:
    leaves, tree = jax.tree.flatten(state)
    if len(leaves) != len(resume.opt_state_leaves):
      raise InputError("checkpoint's optimizer state does not match these settings")
    state = jax.tree.unflatten(
      tree, [jnp.asarray(v, a.dtype) for v, a in zip(resume.opt_state_leaves, leaves, strict=True)]
    )
  chunk_fn, t_chunk = compiled(
    "chunk",
    run_chunk,
    (x, state, jnp.int32(0), params, targets, weights),
    static=static,
    batched=batched,
    donate=(0, 1),
    out_sharding=out_sharding,
  )
  check_memory(chunk_fn, x.shape)
  run = config.run
  last = first_step + run.steps
  total_steps = last if total_steps is None else total_steps
  names = ("content", "style", "tv")
  totals, report = [], {"step": [], **{n: [] for n in names}}
  if resume is not None:
    totals.append(np.asarray(resume.history["total"]))
    report["step"] = list(np.asarray(resume.history["step"]))
    for n in names:
      report[n] = list(np.moveaxis(np.asarray(resume.history[n]), -1, 0))
  done = first_step if resume is None else int(resume.step)
  last_ok = jnp.copy(x)
  status, resets, parts = "completed", 0, None
  first = (lambda v: float(np.ravel(v)[0])) if batched else float
  t0, start = time.perf_counter(), done
  stops = boundaries(done, last, every=(run.report_every, run.save_every), chunk=run.chunk)
  while stops:
    k = stops[0] - done
    x, state, values, parts = chunk_fn(x, state, jnp.int32(k), params, targets, weights)
    total = sum(np.asarray(parts[n]) for n in names)
    ok = np.isfinite(total)
    if not np.all(ok):
      if not batched and static.optimizer.kind == "lbfgs" and resets == 0:
        resets += 1  # reset L-BFGS memory from the last finite image and try once more
        x = jnp.copy(last_ok)
        state = init_fn(x, params, targets, weights)
        continue
      if not np.any(ok):
        x, status = last_ok, "non-finite"
        break
    if batched:
      keep = jnp.asarray(ok).reshape((-1,) + (1,) * (x.ndim - 1))
      last_ok = jnp.where(keep, x, last_ok)
    else:
      last_ok = jnp.copy(x)
    totals.append(np.asarray(values)[..., :k])
    done = stops.pop(0)
    report["step"].append(done)
    for n in names:
      report[n].append(np.asarray(parts[n]))
    if callback is not None:
      elapsed = time.perf_counter() - t0
      now = {n: first(parts[n]) for n in names}
      now["total"] = sum(now.values())
      rate = (done - start) / elapsed if elapsed > 0 else 0.0
      callback(
        Progress(
          done, total_steps, now, elapsed, rate, x, state, _history(totals, report, x), scale,
          report=_due(done, run.report_every) or done == total_steps, save=_due(done, run.save_every),
        )
      )  # fmt: skip
    if stop is not None and stop():
      status = "stopped"
      break
  run_s = time.perf_counter() - t0
  fresh = parts is not None and status != "non-finite"
  if batched and parts is not None and not np.all(np.isfinite(sum(np.asarray(parts[n]) for n in names))):
    x, fresh = last_ok, False  # members whose loss became non-finite keep their last finite image
  if not fresh:  # zero steps, or x is not the last chunk's output: evaluate it
    _, _, _, parts = chunk_fn(jnp.copy(x), state, jnp.int32(0), params, targets, weights)
  final = {n: np.asarray(v) for n, v in parts.items()}
  final["total"] = final["content"] + final["style"] + final["tv"]
  steps_run = done - start
  timings = {"compile_s": t_init + t_chunk, "run_s": run_s, "steps_per_s": steps_run / run_s if run_s > 0 else 0.0}
  image = jnp.clip(compose(x, targets), 0.0, 1.0)
  return Run(image, _history(totals, report, x), final, timings, status, done, resets)


def _due(step: int, every: int | None) -> bool:
  return bool(every) and step % every == 0


def _history(totals, report, x) -> dict[str, np.ndarray]:
  lead = x.shape[:-3]
  h = {"total": np.concatenate(totals, axis=-1) if totals else np.zeros(lead + (0,), np.float32)}
  for k, v in report.items():
    if k != "step":
      h[k] = np.stack(v, axis=-1) if v else np.zeros(lead + (0,), np.float32)
  h["step"] = np.asarray(report["step"], np.int64)
  return h
