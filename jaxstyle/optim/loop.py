"""The optimization loop: compiled chunks of steps, with reports, saves, stops and recovery between them.

Steps run in compiled chunks of at most ``config.run.chunk`` steps (:func:`jaxstyle.optim.step.run_chunk`, a
``lax.fori_loop`` whose trip count is an argument, so a short chunk reuses the same executable); a chunk also
ends where a report or a save is due, and the Python loop between chunks only reports, saves and polls for a
stop (so a stop or a checkpoint waits for the chunk's end: with long tiled steps, a small ``--chunk`` keeps
them prompt). Before anything runs, the chunk is compiled from shapes and checked against free memory, and
``--tile auto`` is resolved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.nets import vgg
from jaxstyle.objective import losses, tiled
from jaxstyle.objective.targets import Targets, compose
from jaxstyle.optim.step import BATCH_AXES, Static, init_state, run_chunk
from jaxstyle.runtime import placement
from jaxstyle.runtime.compilation import compiled
from jaxstyle.runtime.memory import auto_tiles, check_memory, memory_fit
from jaxstyle.settings.style import StyleConfig

PARTS = ("content", "style", "tv")  # every objective's parts; a video frame's adds "temporal"


@dataclasses.dataclass(frozen=True)
class Progress:
  """What a progress callback receives at the end of each chunk.

  ``step`` and ``steps`` count over the whole run (every scale of a coarse-to-fine run);
  ``work_left`` is what remains of it in steps of the current scale's cost (a later scale's
  step counts as its pixels over this scale's), which ``eta`` divides by the current rate.
  ``report`` and ``save`` say whether a report or a save (``config.run.report_every``,
  ``save_every``) is due at this step; a callback may ignore other calls. ``image``,
  ``opt_state`` and ``history`` are the live loop state, valid during the callback (the
  next chunk consumes the buffers): copy what you keep. With several members
  (:func:`optimize_members`) the callback gets one per member still running, ``member`` its index,
  ``lead`` true for the first of them (the one to print).
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
  member: int = 0
  lead: bool = True

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
  """Loop state saved at a chunk boundary (:func:`jaxstyle.optim.stylize.save_checkpoint`)."""

  image: np.ndarray
  opt_state_leaves: list[np.ndarray]
  step: int
  history: dict[str, np.ndarray]
  scale: int = 0  # the coarse-to-fine scale it was saved at (its history is that scale's)


class Span(NamedTuple):
  """Where a call of :func:`optimize` sits in a longer run (the scales of a coarse-to-fine stylization).

  Attributes:
    first_step: steps done before this call, for counts and intervals.
    total_steps: steps of the whole run (``None``: ``first_step + steps``).
    scale: the scale's index, passed on in :class:`Progress`.
    later_work: the later scales' steps in steps of this image's cost, for :attr:`Progress.eta`.
  """

  first_step: int = 0
  total_steps: int | None = None
  scale: int = 0
  later_work: float = 0.0


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
  span: Span | None = None,
  tile_callback: Callable[[tiled.TileProgress], None] | None = None,
) -> Run:
  """Runs ``config.run.steps`` steps from ``image``; the loop shared by stylize and sweeps.

  Before anything runs, the chunk of steps is compiled from shapes and checked against free
  memory (:func:`jaxstyle.runtime.memory.check_memory`, which counts the optimizer's state);
  ``config.network.tile="auto"`` then picks the whole-image objective if it fits, else the
  largest tile that does. A tiled single image is spread over every local device when
  there are several, and over every device of every process when ``jax.distributed`` runs
  several (:func:`jaxstyle.objective.tiled.tiled_value_and_grad`'s ``devices``: one program, the
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
    params: VGG19 params prepared for ``config.network.conv`` (:func:`jaxstyle.nets.vgg.prepare`).
    targets: from :func:`~jaxstyle.objective.targets.compute_targets`.
    weights: scalar leaves, or leaves with a leading ``B`` axis when ``batched``.
    config: settings.
    batched: vmap over the leading axis of image and weights.
    callback: called after each chunk with :class:`Progress` (losses of member 0).
    stop: polled after each chunk; true ends the run with status ``"stopped"``.
    resume: continue from a saved :class:`Resume` instead of ``image``.
    span: where this call sits in a longer run (default: alone).
    tile_callback: with a tile and one image, receives
      :class:`~jaxstyle.objective.tiled.TileProgress` within steps (at most once a second, and at
      the end of every pass over the tiles), for steps that take long.

  Returns:
    a :class:`Run`; arrays carry a leading ``B`` axis when ``batched``.

  Raises:
    ResourceError: the run does not fit in memory (the message names what would).
  """
  member = Member(image, params, targets, weights, resume=resume)
  return optimize_members([member], config, batched=batched, callback=callback, stop=stop, span=span,
                          tile_callback=tile_callback)[0]  # fmt: skip


class Member(NamedTuple):
  """One problem of :func:`optimize_members`: its start, network, targets and weights (as :func:`optimize`'s),
  a checkpoint to resume, and the device it runs on (``None``: as given; several members run on their devices
  at once)."""

  image: ArrayLike
  params: Mapping
  targets: Targets
  weights: losses.LossWeights
  resume: Resume | None = None
  device: jax.Device | None = None


def optimize_members(
  members: Sequence[Member],
  config: StyleConfig,
  *,
  batched: bool = False,
  callback: Callable[[Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  span: Span | None = None,
  tile_callback: Callable[[tiled.TileProgress], None] | None = None,
) -> list[Run]:
  """:func:`optimize` of several problems at once, each with the executables :func:`optimize` compiles for it
  alone (on its device), through the same chunk boundaries: so each member's :class:`Run` is, bit for bit,
  what :func:`optimize` gives it alone. Members on different devices run concurrently. A member whose loss
  becomes non-finite is recovered or ends as it would alone while the others go on; ``stop`` ends them all;
  ``callback`` gets each member still running (:class:`Progress`'s ``member`` and ``lead``). Tiles are spread
  over several devices only for a single member.

  Returns:
    one :class:`Run` per member, in order.
  """
  static = Static.from_config(config)
  span = Span() if span is None else span
  progress = tile_callback is not None
  lanes = [_lane(m, static, config, batched=batched, spread=len(members) == 1, progress=progress) for m in members]
  reporting = tiled.reporting(tile_callback) if any(lane.static.tiling.progress for lane in lanes) else None
  with reporting or contextlib.nullcontext():
    return _Loop(lanes, batched=batched).run(config, callback=callback, stop=stop, span=span)


def _lane(member: Member, static: Static, config: StyleConfig, *, batched, spread, progress) -> _Lane:
  """A member's arrays on its device and its compiled programs (:func:`_plan`), and its loop state."""
  params = vgg.prepare(member.params, config.network.conv, layers=static.form.layers)  # no-op when prepared
  image = member.image if member.resume is None else member.resume.image
  x = jnp.array(image, jnp.float32, copy=True)  # the loop donates x
  args = (x, params, member.targets, member.weights)
  if member.device is not None:
    args = jax.device_put(args, member.device)
  plan = _plan(config.network.tile, static, args, batched=batched, out_sharding=_out_sharding(args[0], batched),
               progress=progress, spread=spread)  # fmt: skip
  in_axes = BATCH_AXES["init"] if batched else None
  state_pins = _pins(plan.out_sharding, lambda: _state_shapes(plan.static, plan.args, batched=batched))[0]
  init_fn, t_init = compiled("init", init_state, plan.args, static=plan.static, in_axes=in_axes,
                             out_sharding=state_pins)  # fmt: skip
  return _Lane(plan.static, init_fn, plan.chunk_fn, plan.args, t_init + plan.compile_s, member.resume, batched)


# --------------------------------------------------------------------------- planning


class _Plan(NamedTuple):
  """What :func:`_plan` decided and compiled."""

  static: Static  # with the tile, its devices and progress
  args: tuple  # (x, params, targets, weights), placed on those devices
  out_sharding: Any
  chunk_fn: Callable
  compile_s: float


def _plan(setting, static: Static, args: tuple, *, batched: bool, out_sharding, progress: bool, spread: bool) -> _Plan:
  """Resolves ``--tile`` and compiles the chunk of steps from shapes, before anything runs.

  ``auto`` compiles the whole-image chunk first and keeps it if it fits; otherwise it tries the tiles that
  :func:`jaxstyle.runtime.memory.auto_tiles` says fit, largest first, compiling each until one does. Whatever
  is chosen is then checked (``ResourceError`` if it does not fit).
  """
  spent = 0.0
  tiles = [static.tile]
  if setting == "auto":
    exe, spent = _chunk_executable(static, args, batched=batched, out_sharding=out_sharding)
    fit = memory_fit(exe)
    if fit is None or fit[0] <= fit[2]:
      return _Plan(static, args, out_sharding, exe, spent)
    tiles = _auto_tiles(fit, args[0].shape, static.form.layers, static.form.pooling)
  if tiles[0] is not None and spread:
    static, args, out_sharding = _spread(static, args, batched=batched, out_sharding=out_sharding)
    static = static.tiled(static.tile, progress=progress and not batched)
  for tile in tiles:
    static = static.tiled(tile)
    exe, seconds = _chunk_executable(static, args, batched=batched, out_sharding=out_sharding)
    spent += seconds
    fit = memory_fit(exe)
    if fit is None or fit[0] <= fit[2]:
      break
  pairs = static.optimizer.memory if static.optimizer.kind == "lbfgs" else None
  check_memory(exe, args[0].shape, lbfgs_pairs=pairs, suggest_tile=static.tile is None)
  return _Plan(static, args, out_sharding, exe, spent)


def _auto_tiles(fit: tuple[int, int, int], shape: tuple[int, ...], layers: Sequence[str], pooling: str) -> list[int]:
  """The objective's tiles worth compiling: what does not shrink with the tile is the whole program's
  arguments and outputs plus about one image-sized sum."""
  need, temp, _ = fit
  h, w = shape[-3], shape[-2]
  window = lambda t: tiled.tile_plan(h, w, t, layers, pooling=pooling).window  # noqa: E731
  return auto_tiles(fit, (h, w), window, fixed=need - temp + 4 * math.prod(shape))


def _spread(static: Static, args: tuple, *, batched: bool, out_sharding):
  """A tiled single image on several devices: its tiles are split over all of them, and every argument and
  output is replicated on them (a sweep shards members instead). The devices are this process's, or with
  several ``jax.distributed`` processes every process's: one program, each process feeding its own devices."""
  devices = placement.all_devices()
  if batched or len(devices) < 2:
    return static, args, out_sharding
  everywhere = placement.replicated(devices)
  return static.tiled(static.tile, devices=devices), placement.put_replicated(args, everywhere), everywhere


def _out_sharding(x: jax.Array, batched: bool):
  """How a program's outputs are pinned: a batch sharded over devices keeps every per-member output sharded the
  same way; one problem sharded along its first axis (a clip's frames) keeps what is shaped like it sharded
  (:class:`~jaxstyle.runtime.placement.AlongFrames`); otherwise the compiler chooses."""
  if not isinstance(x.sharding, NamedSharding):
    return None
  if batched:
    return x.sharding
  return None if x.sharding.is_fully_replicated else placement.AlongFrames(x.sharding, tuple(x.shape))


def _state_shapes(static: Static, args: tuple, *, batched: bool):
  f = lambda *a: init_state(*a, static=static)  # noqa: E731
  return jax.eval_shape(jax.vmap(f, in_axes=BATCH_AXES["init"]) if batched else f, *args)


def _pins(out_sharding, state_shapes: Callable):
  """The shardings of the optimizer state and of a chunk's outputs ``(x, state, values, parts)``."""
  if not isinstance(out_sharding, placement.AlongFrames):
    return out_sharding, out_sharding
  state = out_sharding.of(state_shapes())
  return state, (out_sharding.sharding, state, out_sharding.replicated, out_sharding.replicated)


def _chunk_executable(static: Static, args: tuple, *, batched: bool, out_sharding) -> tuple[Callable, float]:
  """The compiled chunk of steps for ``args`` ``(x, params, targets, weights)``, with the optimizer state
  given by its shapes (nothing is evaluated)."""
  shapes = _state_shapes(static, args, batched=batched)
  state_pins, out_sharding = _pins(out_sharding, lambda: shapes)
  if state_pins is None or isinstance(state_pins, jax.sharding.Sharding):
    state_pins = jax.tree.map(lambda _: state_pins, shapes)
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, state_pins)
  x, params, targets, weights = args
  return compiled(
    "chunk",
    run_chunk,
    (x, state, jnp.int32(0), params, targets, weights),
    static=static,
    in_axes=BATCH_AXES["chunk"] if batched else None,
    donate=(0, 1),
    out_sharding=out_sharding,
  )


# --------------------------------------------------------------------------- the loop


class _History:
  """The loss history of a run: the per-step totals and the parts at each chunk end."""

  def __init__(self, resume: Resume | None):
    self.totals: list[np.ndarray] = []
    self.report: dict[str, list] = {"step": [], **{n: [] for n in PARTS}}
    if resume is not None:
      self.totals.append(np.asarray(resume.history["total"]))
      self.report["step"] = list(np.asarray(resume.history["step"]))
      for n in _names(resume.history):
        self.report[n] = list(np.moveaxis(np.asarray(resume.history[n]), -1, 0))

  def add(self, values: np.ndarray, parts: Mapping[str, np.ndarray], step: int) -> None:
    self.totals.append(values)
    self.report["step"].append(step)
    for n in _names(parts):
      self.report.setdefault(n, []).append(np.asarray(parts[n]))

  def last(self, start: int) -> int:
    """The step of the last chunk end recorded (``start`` when none is)."""
    return int(self.report["step"][-1]) if self.report["step"] else start

  def as_dict(self, lead: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The history as arrays (``lead`` is the batch's shape, ``()`` for one image)."""
    h = {"total": np.concatenate(self.totals, axis=-1) if self.totals else np.zeros(lead + (0,), np.float32)}
    for n in _names(self.report):
      v = self.report[n]
      h[n] = np.stack(v, axis=-1) if v else np.zeros(lead + (0,), np.float32)
    h["step"] = np.asarray(self.report["step"], np.int64)
    return h


def _names(parts: Mapping) -> list[str]:
  """The loss parts among ``parts``' keys: :data:`PARTS` and any the objective adds."""
  return [*PARTS, *(n for n in parts if n not in PARTS and n not in ("total", "step"))]


def _finite(parts: Mapping[str, ArrayLike]) -> np.ndarray:
  return np.isfinite(sum(np.asarray(parts[n]) for n in _names(parts)))


def _due(step: int, every: int | None) -> bool:
  return bool(every) and step % every == 0


class _Lane:
  """One member of a loop: its programs, its constants, and its state between chunks."""

  def __init__(self, static: Static, init_fn, chunk_fn, args: tuple, compile_s: float, resume, batched: bool):
    self.static, self.init_fn, self.chunk_fn, self.batched = static, init_fn, chunk_fn, batched
    self.consts, self.compile_s, self.resume = args[1:], compile_s, resume
    self.x, self.state = args[0], self.start_state(args[0], resume)
    self.last_ok, self.status, self.resets, self.parts, self.values = jnp.copy(self.x), "completed", 0, None, None
    self.history = _History(resume)
    self.pending = None

  @property
  def running(self) -> bool:
    return self.status == "completed"

  def start_state(self, x: jax.Array, resume: Resume | None):
    """The optimizer state at ``x``, or the checkpoint's in the same structure and placement."""
    state = self.init_fn(x, *self.consts)
    if resume is None:
      return state
    leaves, tree = jax.tree.flatten(state)
    if len(leaves) != len(resume.opt_state_leaves):
      raise InputError("checkpoint's optimizer state does not match these settings")
    saved = [np.asarray(v, a.dtype) for v, a in zip(resume.opt_state_leaves, leaves, strict=True)]
    if any(not a.is_fully_addressable for a in leaves):  # spread over several processes
      placement.same_in_every_process(saved, "the checkpoint's optimizer states")
      saved = [placement.replicate(v, a.sharding) for v, a in zip(saved, leaves, strict=True)]
    return jax.tree.unflatten(tree, [jax.device_put(v, a.sharding) for v, a in zip(saved, leaves, strict=True)])

  def dispatch(self, steps: int) -> None:
    """Starts ``steps`` steps (asynchronously: the device runs while the host dispatches other members)."""
    self.pending = (steps, self.chunk_fn(self.x, self.state, jnp.int32(steps), *self.consts))

  def collect(self) -> bool:
    """The dispatched chunk's results on the host; a non-finite loss resets L-BFGS once from the last finite
    image and runs the chunk again, else ends the member with that image. Whether the member goes on."""
    while True:
      steps, (x, state, values, parts) = self.pending
      values, parts = placement.to_host((values, parts))
      self.x, self.state, self.values, self.parts = x, state, np.asarray(values)[..., :steps], parts
      ok = _finite(parts)
      if not np.all(ok) and not self.batched and self.static.optimizer.kind == "lbfgs" and self.resets == 0:
        self.resets += 1  # reset L-BFGS memory from the last finite image and try once more
        self.x = jnp.copy(self.last_ok)
        self.state = self.init_fn(self.x, *self.consts)
        self.dispatch(steps)
        continue
      if not np.any(ok):
        self.x, self.status = self.last_ok, "non-finite"
        return False
      self.last_ok = self._keep_finite(ok)
      return True

  def _keep_finite(self, ok: np.ndarray):
    """The latest images whose loss is finite: all of ``x`` for one image, member by member for a batch."""
    if not self.batched:
      return jnp.copy(self.x)
    keep = jnp.asarray(ok).reshape((-1,) + (1,) * (self.x.ndim - 1))
    return jnp.where(keep, self.x, self.last_ok)

  def chunk(self, x, state, steps: int):
    """``steps`` steps run now; the loss values and the parts at the end, on the host."""
    x, state, values, parts = self.chunk_fn(x, state, jnp.int32(steps), *self.consts)
    values, parts = placement.to_host((values, parts))
    return x, state, np.asarray(values)[..., :steps], parts

  def finish(self, steps: tuple[int, int], run_s: float) -> Run:
    start, done = steps
    x, state, parts = self.x, self.state, self.parts
    fresh = parts is not None and self.status != "non-finite"
    if self.batched and parts is not None and not np.all(_finite(parts)):
      x, fresh = self.last_ok, False  # members whose loss became non-finite keep their last finite image
    if not fresh:  # zero steps, or x is not the last chunk's output: evaluate it
      _, _, _, parts = self.chunk(jnp.copy(x), state, 0)
    final = placement.to_host(dict(parts))
    final["total"] = sum(final[n] for n in _names(final))
    steps_run = done - start
    timings = {"compile_s": self.compile_s, "run_s": run_s, "steps_per_s": steps_run / run_s if run_s > 0 else 0.0}
    image = jnp.clip(compose(x, self.consts[1]), 0.0, 1.0)
    if not image.is_fully_addressable and image.sharding.is_fully_replicated:
      image = placement.same_everywhere(image)
    history = self.history.as_dict(x.shape[:-3])
    return Run(image, history, final, timings, self.status, done, self.resets, self.static.tile)


class _Loop:
  """:func:`optimize_members`' loop of compiled chunks over its members, once the executables are there."""

  def __init__(self, lanes: list[_Lane], *, batched: bool):
    self.lanes, self.batched = lanes, batched

  def run(self, config: StyleConfig, *, callback, stop, span: Span) -> list[Run]:
    run, first = config.run, span.first_step
    last = first + run.steps
    total_steps = last if span.total_steps is None else span.total_steps
    resumed = [lane.resume.step for lane in self.lanes if lane.resume is not None]
    done = first if not resumed else int(resumed[0])
    if any(step != done for step in resumed) or (resumed and len(resumed) != len(self.lanes)):
      raise InputError("members resumed together must have been saved at the same step")
    t0, start, stopped = time.perf_counter(), done, False
    stops = boundaries(done, last, every=(run.report_every, run.save_every), chunk=run.chunk)
    while stops and any(lane.running for lane in self.lanes):
      live = [lane for lane in self.lanes if lane.running]
      for lane in live:
        lane.dispatch(stops[0] - done)
      live = [lane for lane in live if lane.collect()]
      if not live:
        break
      done = stops.pop(0)
      for lane in live:
        lane.history.add(lane.values, lane.parts, done)
      if callback is not None:
        elapsed = time.perf_counter() - t0
        due = dict(report=_due(done, run.report_every) or done == total_steps, save=_due(done, run.save_every))
        for lane in live:
          lead = lane is live[0]
          callback(self._progress(lane, done, total_steps, elapsed, start, span, last, due, lead))
      if stop is not None and placement.any_process(stop()):
        stopped = True
        break
    run_s = time.perf_counter() - t0
    for lane in self.lanes:
      if stopped and lane.running:
        lane.status = "stopped"
    return [lane.finish((start, done if lane.status != "non-finite" else lane.history.last(start)), run_s)
            for lane in self.lanes]  # fmt: skip

  def _progress(self, lane: _Lane, done, total_steps, elapsed, start, span, last, due, lead) -> Progress:
    first = (lambda v: float(np.ravel(v)[0])) if self.batched else float
    now = {n: first(lane.parts[n]) for n in _names(lane.parts)}
    now["total"] = sum(now.values())
    rate = (done - start) / elapsed if elapsed > 0 else 0.0
    return Progress(
      done, total_steps, now, elapsed, rate, placement.local(lane.x), placement.local(lane.state),
      lane.history.as_dict(lane.x.shape[:-3]), span.scale, work_left=(last - done) + span.later_work, **due,
      member=self.lanes.index(lane), lead=lead,
    )  # fmt: skip
