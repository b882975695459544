"""Optimizing an image: the optax transformation, one step, one compiled chunk of steps, the loop.

The image is the optimization variable, ``(H, W, 3)`` RGB in [0, 1] units. Adam, optax's
zoom L-BFGS and jaxstyle's backtracking L-BFGS are all ``optax.GradientTransformationExtraArgs``
driven by the same :func:`run_step`, and all get the objective's value and gradient from one
function (:func:`jaxstyle.objective.value_and_grad_fn`): whole-image autodiff, or with
``config.network.tile`` the exact tile-by-tile computation whose memory is bounded by the
tile. Steps run in compiled chunks of at most ``config.run.chunk`` steps (a ``lax.fori_loop``
whose trip count is an argument, so a short chunk reuses the same executable); a chunk also
ends where a report or a save is due, and the Python loop between chunks only reports, saves
and polls for a stop (so a stop or a checkpoint waits for the chunk's end: with long tiled
steps, a small ``--chunk`` keeps them prompt). Every piece is written for one image and
``jax.vmap``-ed for sweeps (:mod:`jaxstyle.sweep`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxstyle import lbfgs, losses, tiled, vgg
from jaxstyle.compilation import AUTO_TILES, BATCH_AXES, check_memory, compiled, memory_fit
from jaxstyle.config import OptimizerSettings, StyleConfig
from jaxstyle.errors import InputError
from jaxstyle.objective import (  # noqa: F401
  Static,
  Targets,
  compose,
  compute_targets,
  objective,
  value_and_grad_fn,
  value_fn,
)


@dataclasses.dataclass(frozen=True)
class Progress:
  """What a progress callback receives at the end of each chunk.

  ``step`` and ``steps`` count over the whole run (every scale of a coarse-to-fine run);
  ``work_left`` is what remains of it in steps of the current scale's cost (a later scale's
  step counts as its pixels over this scale's), which ``eta`` divides by the current rate.
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
  work_left: float | None = None

  @property
  def eta(self) -> float:
    """Seconds left at the current rate (``inf`` before a rate is known)."""
    left = self.steps - self.step if self.work_left is None else self.work_left
    return left / self.steps_per_second if self.steps_per_second > 0 else math.inf


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
    tile: the tile side the objective ran with (``None``: the whole image), ``--tile auto``
      resolved.
  """

  image: jax.Array
  history: dict[str, np.ndarray]
  losses: dict[str, np.ndarray]
  timings: dict[str, float]
  status: str
  step: int
  lbfgs_resets: int = 0
  tile: int | None = None


class Resume(NamedTuple):
  """Loop state saved at a chunk boundary (see :mod:`jaxstyle.checkpoint`)."""

  image: np.ndarray
  opt_state_leaves: list[np.ndarray]
  step: int
  history: dict[str, np.ndarray]
  scale: int = 0  # the coarse-to-fine scale it was saved at (its history is that scale's)


def optimizer(settings: OptimizerSettings) -> optax.GradientTransformationExtraArgs:
  """The optax transformation for ``settings``: Adam, optax's zoom L-BFGS or :func:`jaxstyle.lbfgs.lbfgs`.

  All three take ``update(grad, state, params, value=..., grad=..., **extra_args(...))``.
  """
  if settings.kind == "adam":
    return optax.with_extra_args_support(optax.adam(settings.lr, b1=settings.b1, b2=settings.b2, eps=settings.eps))
  if settings.line_search == "zoom":
    return optax.lbfgs(learning_rate=None if settings.lr == 1.0 else settings.lr, memory_size=settings.memory)
  return lbfgs.lbfgs(memory_size=settings.memory, learning_rate=settings.lr)


def extra_args(settings: OptimizerSettings, value: Callable, value_and_grad: Callable) -> dict[str, Callable]:
  """The extra arguments of :func:`optimizer`'s ``update``: the objective, and for the
  backtracking line search the one value-and-gradient function it evaluates trials with.

  optax's zoom line search takes ``value_fn`` alone (it refuses arguments ``value_fn`` does
  not take) and differentiates it with ``jax.value_and_grad``; tiled, that is the tiled
  gradient too, since :func:`jaxstyle.objective.objective`'s VJP is.
  """
  if settings.kind == "lbfgs" and settings.line_search == "zoom":
    return {"value_fn": value}
  return {"value_fn": value, "value_and_grad_fn": value_and_grad}


def _carries_value(settings: OptimizerSettings) -> bool:
  # L-BFGS states hold the loss and gradient at the iterate: a step reads them instead of
  # evaluating again (its line search already did), which also avoids
  # optax.value_and_grad_from_state's lax.cond, whose branches would both run under vmap.
  return settings.kind == "lbfgs"


def init_state(image, params, targets, weights, *, static: Static):
  """The optimizer state for one ``(H, W, 3)`` image (for L-BFGS, with the loss and
  gradient at ``image``)."""
  state = optimizer(static.optimizer).init(image)
  if _carries_value(static.optimizer):
    value, grad = value_and_grad_fn(params, targets, weights, static=static)(image)
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
  f = value_fn(params, targets, weights, static=static)
  vg = value_and_grad_fn(params, targets, weights, static=static)
  if _carries_value(settings):
    value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
  else:
    value, grad = vg(image)
  updates, state = optimizer(settings).update(grad, state, image, value=value, grad=grad, **extra_args(settings, f, vg))
  image = optax.apply_updates(image, updates)
  if settings.clip:
    image = jnp.clip(image, 0.0, 1.0)
    if _carries_value(settings):
      v, g = vg(image)
      state = optax.tree.set(state, value=v, grad=g)
  return image, state, value


def evaluate(image, params, targets, weights, *, static: Static) -> dict[str, jax.Array]:
  """The weighted loss parts of one image (a forward pass only; tile by tile when tiled)."""
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
  later_work: float = 0.0,
  tile_callback: Callable[[tiled.TileProgress], None] | None = None,
) -> Run:
  """Runs ``config.run.steps`` steps from ``image``; the loop shared by stylize and sweeps.

  Before anything runs, the chunk of steps is compiled from shapes and checked against free
  memory (:func:`jaxstyle.compilation.check_memory`, which counts the optimizer's state);
  ``config.network.tile="auto"`` then picks the whole-image objective if it fits, else the
  largest tile that does. A tiled single image is spread over every local device when
  there are several, and over every device of every process when ``jax.distributed`` runs
  several (:func:`jaxstyle.tiled.tiled_value_and_grad`'s ``devices``: one program, the
  tiles' sums added across all of them).

  With several processes every process makes the same call (SPMD) with the same inputs
  (checked: :class:`~jaxstyle.errors.InputError` if they differ) and gets the same
  :class:`Run`; each computes the same optimizer update from the same summed value and
  gradient. ``Run.image`` and the :class:`Progress` arrays are then this process's copy
  (addressable), a stop requested in any process (``stop``) stops every process at the
  same chunk's end, and a final check raises if the processes' images came out different.

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
    later_work: the later scales' steps in steps of this image's cost, for ``Progress.eta``.
    tile_callback: with a tile and one image, receives
      :class:`~jaxstyle.tiled.TileProgress` within steps (at most once a second, and at
      the end of every pass over the tiles), for steps that take long.

  Returns:
    a :class:`Run`; arrays carry a leading ``B`` axis when ``batched``.

  Raises:
    ResourceError: the run does not fit in memory (the message names what would).
  """
  static = Static.from_config(config)
  params = vgg.prepare(params, config.network.conv, layers=static.layers)  # no-op when already prepared
  x = jnp.array(image if resume is None else resume.image, jnp.float32, copy=True)  # the loop donates x
  # A batch sharded over devices keeps every per-member output sharded the same way.
  out_sharding = x.sharding if batched and isinstance(x.sharding, NamedSharding) else None
  static, (x, params, targets, weights), out_sharding, chunk_fn, t_chunk = _plan(
    config.network.tile,
    static,
    (x, params, targets, weights),
    batched=batched,
    out_sharding=out_sharding,
    progress=tile_callback is not None,
  )
  init_fn, t_init = compiled(
    "init", init_state, (x, params, targets, weights), static=static, batched=batched, out_sharding=out_sharding
  )
  reporting = tiled.reporting(tile_callback) if static.progress else contextlib.nullcontext()
  with reporting:
    return _loop(
      x, params, targets, weights, config, static, init_fn, chunk_fn, t_init + t_chunk,
      batched=batched, callback=callback, stop=stop, resume=resume, first_step=first_step,
      total_steps=total_steps, scale=scale, later_work=later_work,
    )  # fmt: skip


def _loop(
  x, params, targets, weights, config, static, init_fn, chunk_fn, compile_s, *, batched, callback, stop, resume,
  first_step, total_steps, scale, later_work,
) -> Run:  # fmt: skip
  # optimize's loop of compiled chunks, once the executables are there.
  state = init_fn(x, params, targets, weights)
  if resume is not None:
    leaves, tree = jax.tree.flatten(state)
    if len(leaves) != len(resume.opt_state_leaves):
      raise InputError("checkpoint's optimizer state does not match these settings")
    saved = [np.asarray(v, a.dtype) for v, a in zip(resume.opt_state_leaves, leaves, strict=True)]
    if any(not a.is_fully_addressable for a in leaves):  # spread over several processes
      _same_in_every_process(saved, "the checkpoint's optimizer states")
      saved = [_replicate(v, a.sharding) for v, a in zip(saved, leaves, strict=True)]
    state = jax.tree.unflatten(tree, [jax.device_put(v, a.sharding) for v, a in zip(saved, leaves, strict=True)])
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
    values, parts = to_host((values, parts))
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
          done, total_steps, now, elapsed, rate, _local(x), _local(state), _history(totals, report, x), scale,
          report=_due(done, run.report_every) or done == total_steps, save=_due(done, run.save_every),
          work_left=(last - done) + later_work,
        )
      )  # fmt: skip
    if stop is not None and _any_process(stop()):
      status = "stopped"
      break
  run_s = time.perf_counter() - t0
  fresh = parts is not None and status != "non-finite"
  if batched and parts is not None and not np.all(np.isfinite(sum(np.asarray(parts[n]) for n in names))):
    x, fresh = last_ok, False  # members whose loss became non-finite keep their last finite image
  if not fresh:  # zero steps, or x is not the last chunk's output: evaluate it
    _, _, _, parts = chunk_fn(jnp.copy(x), state, jnp.int32(0), params, targets, weights)
  final = to_host(dict(parts))
  final["total"] = final["content"] + final["style"] + final["tv"]
  steps_run = done - start
  timings = {"compile_s": compile_s, "run_s": run_s, "steps_per_s": steps_run / run_s if run_s > 0 else 0.0}
  image = jnp.clip(compose(x, targets), 0.0, 1.0)
  if not image.is_fully_addressable and image.sharding.is_fully_replicated:
    image = _same_everywhere(image)
  return Run(image, _history(totals, report, x), final, timings, status, done, resets, static.tile)


def to_host(tree):
  """``tree``'s arrays as NumPy arrays, whole. A sweep sharded over several processes'
  devices (``jax.distributed``) is not addressable from one process: it is gathered with
  ``process_allgather``, a collective that every process reaches at the same point."""

  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      if a.sharding.is_fully_replicated:  # a tiled run's replicated output: this process's copy
        return np.asarray(a.addressable_data(0))
      return multihost_utils.process_allgather(a, tiled=True)
    return np.asarray(a)

  return jax.tree.map(get, tree)


def _local(tree):
  """``tree`` with every replicated array that spans several processes replaced by this
  process's copy (a single-device array, no transfer), so callbacks can read it."""

  def get(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable and a.sharding.is_fully_replicated:
      return a.addressable_data(0)
    return a

  return jax.tree.map(get, tree)


def _any_process(flag: bool) -> bool:
  """Whether ``flag`` is true in any process: with several processes a collective that
  every process reaches, so that they all take the same branch (a stop requested by a
  signal on one host ends the run on all of them)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def _fingerprint(tree) -> np.ndarray:
  # CRC32 of every leaf's bytes (and shape), to compare processes' inputs cheaply.
  out = []
  for a in jax.tree.leaves(tree):
    a = np.ascontiguousarray(np.asarray(a))
    out.append(zlib.crc32(a.tobytes(), zlib.crc32(repr((a.shape, a.dtype.str)).encode())))
  return np.asarray(out, np.uint32)


def _same_in_every_process(tree, what: str) -> None:
  """Raises ``InputError`` unless every process holds the same ``tree`` (one small collective)."""
  mine = _fingerprint(tree)
  every = multihost_utils.process_allgather(mine)
  if not np.all(every == mine[None]):
    raise InputError(f"{what} differ between the {jax.process_count()} processes; every process must be given the same")


def _same_everywhere(image: jax.Array) -> jax.Array:
  """This process's copy of a replicated image, after checking that every copy (every
  device of every process) holds the same bits: the processes computed the same update
  independently, and a silent difference would make their results disagree."""
  local = [np.asarray(s.data) for s in image.addressable_shards]
  mine = _fingerprint(local[0])
  every = multihost_utils.process_allgather(mine)
  if not all(np.array_equal(a, local[0]) for a in local[1:]) or not np.all(every == mine[None]):
    raise RuntimeError("the replicated image differs between devices or processes: the run is not reproducible here")
  return jnp.asarray(local[0])


def _plan(setting, static: Static, args: tuple, *, batched: bool, out_sharding, progress: bool):
  """Resolves ``--tile`` and compiles the chunk of steps from shapes, before anything runs.

  ``auto`` compiles the whole-image chunk first and keeps it if it fits; otherwise it tries
  the tiles of :data:`AUTO_TILES` that an estimate says fit, largest first (the whole
  image's activations scaled down to a window, plus image-sized sums), compiling each
  until one does. Whatever is chosen is then checked (``ResourceError`` if it does not fit).

  Returns:
    ``(static, args, out_sharding, chunk_fn, compile_s)``: ``static`` with the tile, its
    devices and progress; ``args`` ``(x, params, targets, weights)`` placed on them.
  """
  spent = 0.0
  tiles = [static.tile]
  if setting == "auto":
    exe, spent = _chunk_executable(static, args, batched=batched, out_sharding=out_sharding)
    fit = memory_fit(exe)
    if fit is None or fit[0] <= fit[2]:
      return static, args, out_sharding, exe, spent
    tiles = _auto_tiles(fit, args[0].shape, static.layers)
  if tiles[0] is not None:
    static, args, out_sharding = _spread(static, args, batched=batched, out_sharding=out_sharding)
    static = static._replace(progress=progress and not batched)
  for tile in tiles:
    static = static._replace(tile=tile)
    exe, seconds = _chunk_executable(static, args, batched=batched, out_sharding=out_sharding)
    spent += seconds
    fit = memory_fit(exe)
    if fit is None or fit[0] <= fit[2]:
      break
  check_memory(exe, args[0].shape, optimizer=static.optimizer, suggest_tile=static.tile is None)
  return static, args, out_sharding, exe, spent


def _auto_tiles(fit: tuple[int, int, int], shape: tuple[int, ...], layers: Sequence[str]) -> list[int]:
  """The tiles worth compiling when the whole image does not fit, largest first (at least one)."""
  need, temp, available = fit
  h, w = shape[-3], shape[-2]
  sides = [t for t in AUTO_TILES if t < max(h, w)] or [AUTO_TILES[-1]]
  image = 4 * math.prod(shape)

  def estimate(tile: int) -> float:
    wh, ww = tiled.tile_plan(h, w, tile, layers).window
    return need - temp + temp * min(1.0, wh * ww / (h * w)) + 4 * image

  return [t for t in sides if estimate(t) <= available] or sides[-1:]


def _spread(static: Static, args: tuple, *, batched: bool, out_sharding):
  """A tiled single image on several devices: its tiles are split over all of them, and
  every argument and output is replicated on them (a sweep shards members instead).

  The devices are this process's, or with several ``jax.distributed`` processes every
  process's (``jax.devices()``): one program, each process feeding its own devices."""
  several = jax.process_count() > 1
  devices = tuple(jax.devices() if several else jax.local_devices())
  if batched or len(devices) < 2:
    return static, args, out_sharding
  everywhere = NamedSharding(jax.sharding.Mesh(np.asarray(devices), ("tiles",)), P())
  if not several:
    return static._replace(devices=devices), jax.device_put(args, everywhere), everywhere
  _same_in_every_process(args, "the image, targets, weights or VGG params")
  return static._replace(devices=devices), _replicate(args, everywhere), everywhere


def _replicate(tree, sharding: NamedSharding):
  """``tree`` as global arrays replicated on ``sharding``'s devices, each process placing
  its own value on its own devices (no transfer between processes; ``jax.device_put``
  would compare every leaf across processes, and refuses arrays already committed)."""
  mine = [d for d in sharding.mesh.devices.flat if d.process_index == jax.process_index()]

  def put(a):
    a = jnp.asarray(a)
    return jax.make_array_from_single_device_arrays(a.shape, sharding, [jax.device_put(a, d) for d in mine])

  return jax.tree.map(put, tree)


def _chunk_executable(static: Static, args: tuple, *, batched: bool, out_sharding) -> tuple[Callable, float]:
  """The compiled chunk of steps for ``args`` ``(x, params, targets, weights)``, with the
  optimizer state given by its shapes (nothing is evaluated)."""
  f = lambda *a: init_state(*a, static=static)  # noqa: E731
  if batched:
    f = jax.vmap(f, in_axes=BATCH_AXES["init"])
  shapes = jax.eval_shape(f, *args)
  state = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=out_sharding), shapes)
  x, params, targets, weights = args
  return compiled(
    "chunk",
    run_chunk,
    (x, state, jnp.int32(0), params, targets, weights),
    static=static,
    batched=batched,
    donate=(0, 1),
    out_sharding=out_sharding,
  )


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
