"""Optimizing an image: one step, one compiled chunk of steps, the loop, and :func:`stylize`.

The image is the optimization variable, ``(H, W, 3)`` RGB in [0, 1] units. Steps run
in compiled chunks of ``config.report_every`` steps (a ``lax.fori_loop`` whose trip
count is an argument, so a short last chunk reuses the same executable); the Python
loop between chunks only reports progress. Every piece is written for one image and
``jax.vmap``-ed for sweeps (:mod:`jaxstyle.sweep`).
"""

from __future__ import annotations

import dataclasses
import math
import os
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
from jaxstyle.config import StyleConfig
from jaxstyle.objective import Static, Targets, compose, compute_targets, objective  # noqa: F401
from jaxstyle.problem import as_image, finish, setup_problem


@dataclasses.dataclass(frozen=True)
class Progress:
  """What a progress callback receives after each chunk.

  ``image``, ``opt_state`` and ``history`` are the live loop state, valid during the
  callback (the next chunk consumes the buffers): copy what you keep.
  """

  step: int
  steps: int
  losses: dict[str, float]
  elapsed: float
  steps_per_second: float
  image: Any = None
  opt_state: Any = None
  history: dict[str, np.ndarray] | None = None

  @property
  def eta(self) -> float:
    return (self.steps - self.step) / self.steps_per_second if self.steps_per_second > 0 else math.inf


@dataclasses.dataclass(frozen=True)
class Run:
  """What :func:`optimize` returns.

  Attributes:
    image: the final image clipped to [0, 1] (or, per member, the last one whose loss
      was finite).
    history: see :class:`Result`.
    losses: final weighted parts and ``"total"`` (arrays of shape ``(B,)`` if batched).
    timings: ``compile_s``, ``run_s``, ``steps_per_s``.
    status: ``"completed"``, ``"stopped"`` (``stop()`` returned true) or
      ``"non-finite"`` (the loss became NaN/Inf and could not be recovered).
    step: steps completed.
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


@dataclasses.dataclass(frozen=True)
class Result:
  """The outcome of :func:`stylize`.

  Attributes:
    image: ``(H, W, 3)`` float32 RGB in [0, 1].
    status: ``"completed"``, ``"stopped"`` or ``"non-finite"`` (see :class:`Run`).
    scales: per scale of a coarse-to-fine run: ``size`` (H, W), ``steps``, ``first_loss``,
      ``final_loss``; one entry otherwise.
    history: ``"total"``: ``(steps,)`` loss at the iterate each step started from;
      ``"step"``, ``"content"``, ``"style"``, ``"tv"``: weighted loss parts after each
      chunk.
    losses: final weighted loss parts and ``"total"``.
    timings: ``compile_s`` (tracing and compiling, 0 when cached), ``run_s``,
      ``steps_per_s``.
    config: the resolved settings.
  """

  image: jax.Array
  history: dict[str, np.ndarray]
  losses: dict[str, float]
  timings: dict[str, float]
  config: StyleConfig
  status: str = "completed"
  scales: list[dict] = dataclasses.field(default_factory=list)


def _optimizer(static: Static) -> optax.GradientTransformationExtraArgs:
  if static.optimizer == "lbfgs":  # the zoom line search; "backtracking" is jaxstyle.lbfgs
    lr = None if static.learning_rate == 1.0 else static.learning_rate
    return optax.lbfgs(learning_rate=lr, memory_size=static.lbfgs_memory)
  return optax.adam(static.learning_rate, b1=static.adam_b1, b2=static.adam_b2, eps=static.adam_eps)


def init_state(image, params, targets, weights, *, static: Static):
  """The optimizer state for one ``(H, W, 3)`` image.

  For L-BFGS the state holds the loss and gradient at ``image`` so that every step reads
  them from the state (its line search leaves them there for the next step). With the
  zoom line search this also avoids ``optax.value_and_grad_from_state``'s ``lax.cond``,
  which under ``vmap`` would evaluate both branches.
  """
  if static.optimizer == "adam":
    return _optimizer(static).init(image)
  value_fn = lambda x: objective(x, params, targets, weights, static=static)[0]  # noqa: E731
  value, grad = jax.value_and_grad(value_fn)(image)
  if static.lbfgs_linesearch == "backtracking":
    return lbfgs.init(image, value, grad, memory_size=static.lbfgs_memory)
  return optax.tree.set(_optimizer(static).init(image), value=value, grad=grad)


def run_step(image, state, params, targets, weights, *, static: Static):
  """One optimizer step on one ``(H, W, 3)`` image.

  Returns:
    ``(image, state, value)``: ``value`` is the loss at the image the step started from.
  """
  opt = _optimizer(static)
  value_fn = lambda x: objective(x, params, targets, weights, static=static)[0]  # noqa: E731
  if static.optimizer == "lbfgs" and static.lbfgs_linesearch == "backtracking":
    value = state.value
    image, state = lbfgs.step(
      image, state, jax.value_and_grad(value_fn), memory_size=static.lbfgs_memory, learning_rate=static.learning_rate
    )
    return image, state, value
  if static.optimizer == "lbfgs":
    value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
    updates, state = opt.update(grad, state, image, value=value, grad=grad, value_fn=value_fn)
  else:
    value, grad = jax.value_and_grad(value_fn)(image)
    updates, state = opt.update(grad, state, image)
  image = optax.apply_updates(image, updates)
  if static.clip:
    image = jnp.clip(image, 0.0, 1.0)
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
) -> Run:
  """Runs ``config.steps`` steps from ``image``; the loop shared by stylize and sweeps.

  Between chunks it reports progress, polls ``stop`` (so a signal handler can end a
  run cleanly at the next boundary), and checks the loss: when it is no longer finite,
  L-BFGS restarts once from the last finite image with its memory reset; otherwise the
  run ends with status ``"non-finite"`` and that image.

  Args:
    image: ``(H, W, 3)``, or ``(B, H, W, 3)`` when ``batched``.
    params: VGG19 params (prepared for ``config.conv`` here, see :func:`jaxstyle.vgg.prepare`).
    targets: from :func:`compute_targets`.
    weights: scalar leaves, or leaves with a leading ``B`` axis when ``batched``.
    config: settings.
    batched: vmap over the leading axis of image and weights.
    callback: called after each chunk with :class:`Progress` (losses of member 0).
    stop: polled after each chunk; true ends the run with status ``"stopped"``.
    resume: continue from a saved :class:`Resume` instead of ``image``.

  Returns:
    a :class:`Run`; arrays carry a leading ``B`` axis when ``batched``.
  """
  static = Static.from_config(config)
  params = vgg.prepare(params, config.conv, layers=static.layers)
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
      raise ValueError("checkpoint's optimizer state does not match these settings")
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
  names = ("content", "style", "tv")
  totals, report = [], {"step": [], **{n: [] for n in names}}
  if resume is not None:
    totals.append(np.asarray(resume.history["total"]))
    report["step"] = list(np.asarray(resume.history["step"]))
    for n in names:
      report[n] = list(np.moveaxis(np.asarray(resume.history[n]), -1, 0))
  done = 0 if resume is None else int(resume.step)
  last_ok = jnp.copy(x)
  status, resets, parts = "completed", 0, None
  first = (lambda v: float(np.ravel(v)[0])) if batched else float
  t0, start = time.perf_counter(), done
  while done < config.steps:
    k = min(config.report_every, config.steps - done)
    x, state, values, parts = chunk_fn(x, state, jnp.int32(k), params, targets, weights)
    total = sum(np.asarray(parts[n]) for n in names)
    ok = np.isfinite(total)
    if not np.all(ok):
      if not batched and static.optimizer == "lbfgs" and resets == 0:
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
    done += k
    report["step"].append(done)
    for n in names:
      report[n].append(np.asarray(parts[n]))
    if callback is not None:
      elapsed = time.perf_counter() - t0
      now = {n: first(parts[n]) for n in names}
      now["total"] = sum(now.values())
      rate = (done - start) / elapsed if elapsed > 0 else 0.0
      callback(Progress(done, config.steps, now, elapsed, rate, x, state, _history(totals, report, x)))
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


def _history(totals, report, x) -> dict[str, np.ndarray]:
  lead = x.shape[:-3]
  h = {"total": np.concatenate(totals, axis=-1) if totals else np.zeros(lead + (0,), np.float32)}
  for k, v in report.items():
    if k != "step":
      h[k] = np.stack(v, axis=-1) if v else np.zeros(lead + (0,), np.float32)
  h["step"] = np.asarray(report["step"], np.int64)
  return h


def stylize(
  content: ArrayLike | str | os.PathLike,
  style: ArrayLike | str | os.PathLike | Sequence,
  config: StyleConfig | None = None,
  *,
  params: Mapping | None = None,
  mask: ArrayLike | str | os.PathLike | None = None,
  regions: Sequence | None = None,
  callback: Callable[[Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  resume: Resume | None = None,
) -> Result:
  """Renders ``content`` in the style of ``style`` (Gatys et al. 2016).

  Args:
    content: ``(H, W, 3)`` RGB in [0, 1], or an image path.
    style: ``(H', W', 3)`` RGB in [0, 1], or an image path, or a list of them to
      blend (weights ``config.style_blend``).
    config: settings; default ``presets.gatys()``.
    params: VGG19 params; default ``load_vgg19()``.
    mask: ``(H, W[, 1])`` in [0, 1] or an image path: 1 stylizes, 0 keeps the content
      exactly (Gatys et al. 2017's spatial control, as a constraint).
    regions: one region map per style image (arrays or paths in the content's
      coordinates, 1 inside): style ``k`` is matched in region ``k`` only.
    callback: receives a :class:`Progress` after every chunk of steps.
    stop: polled after every chunk; when it returns true the run ends early with
      ``result.status == "stopped"`` and the image so far.
    resume: continue a single-scale run from a checkpoint (:func:`jaxstyle.checkpoint.load`).

  Returns:
    a :class:`Result`; ``result.image`` is ``(H'', W'', 3)`` with the content's aspect
    ratio and longest side ``config.output_size``. ``result.scales`` lists, per scale,
    its image size and first and final loss.
  """
  if config is None:
    from jaxstyle import presets

    config = presets.gatys()
  config = config.validate()
  if params is None:
    from jaxstyle.weights import load_vgg19

    params = load_vgg19()
  if resume is not None and config.scales and len(config.scales) > 1:
    raise ValueError("resume works with single-scale runs only")
  content = as_image(content)
  styles = [as_image(st) for st in (style if isinstance(style, (list, tuple)) else [style])]
  previous, run, per_scale, compile_s, run_s = None, None, [], 0.0, 0.0
  prepared = vgg.prepare(params, config.conv, layers=config.layers)  # once, not per scale
  sizes = config.scales or (config.size,)
  for k, size in enumerate(sizes):
    steps = config.steps if k == len(sizes) - 1 or config.coarse_steps is None else config.coarse_steps
    scale_config = dataclasses.replace(config, size=size, scales=None, steps=steps)
    problem = setup_problem(params, content, styles, scale_config, mask=mask, regions=regions, start=previous)
    run = optimize(
      problem.start,
      prepared,
      problem.targets,
      config.loss_weights(),
      scale_config,
      callback=callback,
      stop=stop,
      resume=resume if k == 0 else None,
    )
    previous = np.asarray(run.image)
    h = run.history["total"]
    per_scale.append(
      {
        "size": [int(previous.shape[0]), int(previous.shape[1])],
        "steps": int(run.step),
        "first_loss": float(h[0]) if len(h) else float(run.losses["total"]),
        "final_loss": float(run.losses["total"]),
      }
    )
    compile_s += run.timings["compile_s"]
    run_s += run.timings["run_s"]
    if run.status != "completed":
      break
  timings = {**run.timings, "compile_s": compile_s, "run_s": run_s}
  return Result(
    image=jnp.asarray(finish(previous, content, config)),
    history=run.history,
    losses={k: float(v) for k, v in run.losses.items()},
    timings=timings,
    config=config,
    status=run.status,
    scales=per_scale,
  )
