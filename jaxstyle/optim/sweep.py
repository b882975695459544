"""Sweeps: many loss weightings in one compiled, vmapped and sharded program.

A sweep is a :class:`~jaxstyle.objective.losses.LossWeights` whose leaves carry a leading batch axis ``B``;
VGG params and the content/style targets are shared (computed once). Its members run one of two ways
(``batching``, :data:`BATCHINGS`):

* ``"map"`` (``"auto"`` on CPU): each member is its own problem with the single-image programs
  :func:`~jaxstyle.optim.loop.optimize` runs for one image, members on different local devices at once
  (:func:`~jaxstyle.optim.loop.optimize_members`). Each member's image is then bit for bit what its
  ``jaxstyle stylize`` command gives alone. On CPU a batch buys nothing (a batch of 8 ran slower per image
  than one).
* ``"vmap"`` (``"auto"`` elsewhere, and with several processes): one vmapped program whose batch axis is
  sharded over a 1-D mesh (``jax.sharding``), so more devices run a larger sweep in the same time; L-BFGS
  keeps one history and line search per member. A member then equals its command to float32 rounding, not
  bit for bit: the batch's size changes how XLA blocks its sums, and L-BFGS amplifies the last bits. On
  several hosts call ``jax.distributed.initialize()`` first and pass ``devices=jax.devices()``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxstyle.errors import InputError, ResourceError
from jaxstyle.io import images as imageio
from jaxstyle.io.vgg_weights import load_vgg19
from jaxstyle.nets import vgg
from jaxstyle.objective import losses
from jaxstyle.optim.loop import Member, Progress, Run, optimize, optimize_members
from jaxstyle.optim.problem import finish, setup_problem
from jaxstyle.runtime.placement import to_host
from jaxstyle.settings import presets
from jaxstyle.settings.style import StyleConfig

Batching = Literal["auto", "map", "vmap"]
BATCHINGS: tuple[str, ...] = typing.get_args(Batching)


def resolve_batching(batching: str, devices: Sequence[jax.Device]) -> str:
  """``"auto"``: ``"map"`` on CPU devices of this process, ``"vmap"`` otherwise."""
  if batching not in BATCHINGS:
    raise InputError(f"batching must be one of {', '.join(BATCHINGS)}, not {batching!r}")
  several = any(d.process_index != jax.process_index() for d in devices)
  if batching == "map" and several:
    raise InputError("batching 'map' runs on this process's devices; with devices of several processes use 'vmap'")
  if batching == "auto":
    return "map" if not several and all(d.platform == "cpu" for d in devices) else "vmap"
  return batching


class SweepMemoryError(ResourceError):
  """Even one member per device does not fit in device memory."""


@dataclasses.dataclass(frozen=True)
class SweepResult:
  """The outcome of :func:`stylize_sweep`.

  Attributes:
    images: ``(B, H, W, 3)`` float32 RGB in [0, 1].
    history: as :class:`~jaxstyle.optim.stylize.Result`'s, each with a leading ``B`` axis.
    losses: one dict of final weighted loss parts and ``"total"`` per member.
    timings: ``compile_s``, ``run_s``, ``image_steps_per_s`` (members x steps / s),
      ``batch`` (members per compiled batch, or run at once with ``"map"``) and ``devices``.
    batching: how the members ran, ``"map"`` or ``"vmap"`` (see the module).
    status: ``"completed"``, or ``"stopped"`` (``stop()`` returned true: every member as far as it got).
    steps_done: the steps each member ran (fewer than the config's after a stop; 0 for one that had not begun).
  """

  images: np.ndarray
  history: dict[str, np.ndarray]
  losses: list[dict[str, float]]
  timings: dict[str, float]
  batching: str = "vmap"
  status: str = "completed"
  steps_done: tuple[int, ...] = ()

  @property
  def exact(self) -> bool:
    """Whether each member is bit for bit what it gives alone (``"map"``)."""
    return self.batching == "map"


def stack_weights(weightings: Sequence[losses.LossWeights]) -> losses.LossWeights:
  """Stacks per-member :class:`LossWeights` (same layers) along a new leading axis."""
  return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x, jnp.float32) for x in xs]), *weightings)


def _is_oom(e: Exception) -> bool:
  text = str(e)
  return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def _take(tree, idx: np.ndarray):
  return jax.tree.map(lambda x: jnp.asarray(x)[idx], tree)


def stylize_sweep(
  content: Any,
  style: Any,
  config: StyleConfig,
  weights: losses.LossWeights,
  *,
  params: Mapping | None = None,
  mask: Any = None,
  regions: Sequence | None = None,
  init_image: Any = None,
  batch_size: int | None = None,
  devices: Sequence[jax.Device] | None = None,
  callback: Callable[[Progress], None] | None = None,
  batching: str = "auto",
  stop: Callable[[], bool] | None = None,
) -> SweepResult:
  """Runs one stylization per member of ``weights``, members side by side or in batched programs.

  Each member equals a separate :func:`~jaxstyle.stylize` with the same settings and seed (its config from
  :meth:`SweepSpec.grid`): bit for bit with ``batching="map"``, to float32 rounding with ``"vmap"``.

  Args:
    content: ``(H, W, 3)`` RGB in [0, 1], or a path.
    style: one style image or path, or a list of them (blended by ``config.images.style_blend``).
    config: the shared settings; its style layers must include every layer that a
      member weights (see :class:`SweepSpec`).
    weights: :class:`LossWeights` with a leading batch axis ``B`` on every leaf.
    params: VGG19 params; default ``load_vgg19()``.
    mask, regions, init_image: as :func:`~jaxstyle.stylize`'s.
    batch_size: ``"vmap"``: members per compiled batch (default all, rounded up to a multiple of the device
      count); ``"map"``: members run at once (default one per device). Halved while it does not fit in memory.
    devices: devices to run the members on (default all local devices).
    callback: progress of the first member of each batch.
    batching: ``"auto"``, ``"map"`` or ``"vmap"`` (see the module).
    stop: polled after every chunk (as :func:`~jaxstyle.stylize`'s); when it returns true the running members
      end with their images so far and the members not yet begun keep their start image (their loss evaluated
      there), with ``status == "stopped"``.

  Returns:
    :class:`SweepResult`.
  """
  params = load_vgg19() if params is None else params
  config = config.resolve()
  total = _members(weights)
  if config.images.scales:
    raise InputError("sweeps run at one scale: set size, not scales")
  content_rgb = imageio.as_image(content, "the content")
  # Winograd kernels transformed once, for the targets and every batch.
  params = vgg.prepare(params, config.network.conv, layers=config.layers)
  problem = setup_problem(params, content_rgb, style, config, mask=mask, regions=regions, init_image=init_image)
  devices = list(devices) if devices is not None else jax.local_devices()
  mode = resolve_batching(batching, devices)
  if mode == "map":
    run = functools.partial(_run_members, problem.start, params, problem.targets, weights, config, devices)
    parts, batch = run(batch_size or len(devices), callback=callback, stop=stop)
  else:
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    params, targets = jax.device_put((params, problem.targets), NamedSharding(mesh, P()))
    first = -(-min(batch_size or total, total) // mesh.size) * mesh.size
    parts, batch = _run_batches(problem.start, params, targets, weights, config, mesh, first, callback=callback,
                                stop=stop)  # fmt: skip
  return _collect(parts, content_rgb, config, total, batch, len(devices), mode)


class _Part(NamedTuple):
  """One batch's members (or one member): their run, how many are real (not padding), and the seconds they
  add to the sweep's time (members run at once share their loop's)."""

  run: Run
  keep: int
  run_s: float


def _members(weights: losses.LossWeights) -> int:
  sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(weights)}
  if len(sizes) != 1 or None in sizes:
    raise InputError("every leaf of a sweep's weights needs the same leading batch axis")
  return sizes.pop()


def _run_members(
  x0, params, targets, weights, config, devices, at_once: int, *, callback, stop
) -> tuple[list[_Part], int]:
  """Every member alone with the single-image programs, ``at_once`` of them side by side on the devices in
  turn (halved while they do not fit in memory together); after a stop, those left as they start."""
  total = _members(weights)
  parts, start, stopped = [], 0, False
  while start < total:
    group = range(start, min(start + at_once, total))
    members = [Member(x0, params, targets, _take(weights, i), device=devices[j % len(devices)])
               for j, i in enumerate(group)]  # fmt: skip
    try:
      runs = optimize_members(members, _after_stop(config) if stopped else config, callback=callback, stop=stop)
      runs = [dataclasses.replace(r, status="stopped") for r in runs] if stopped else runs
      stopped = stopped or any(r.status == "stopped" for r in runs)
    except (jax.errors.JaxRuntimeError, ResourceError) as e:
      if at_once == 1 or (not isinstance(e, ResourceError) and not _is_oom(e)):
        raise
      at_once = max(1, at_once // 2)
      continue
    parts += [_Part(r, 1, r.timings["run_s"] if k == 0 else 0.0) for k, r in enumerate(runs)]
    start += len(runs)
  return parts, at_once


def _run_batches(x0, params, targets, weights, config, mesh, batch: int, *, callback, stop) -> tuple[list[_Part], int]:
  """Every member, ``batch`` at a time (the last batch padded with copies: one executable for all), halving
  the batch while it does not fit in memory; after a stop, the batches left as they start."""
  total, n_dev = _members(weights), mesh.size
  sharded = NamedSharding(mesh, P("batch"))
  parts, start, stopped = [], 0, False
  while start < total:
    idx = np.minimum(np.arange(start, start + batch), total - 1)
    xb = jax.device_put(np.broadcast_to(x0, (batch,) + x0.shape), sharded)
    try:
      run = optimize(xb, params, targets, jax.device_put(_take(weights, idx), sharded),
                     _after_stop(config) if stopped else config, batched=True, callback=callback,
                     stop=stop)  # fmt: skip
      run = dataclasses.replace(run, status="stopped") if stopped else run
      stopped = stopped or run.status == "stopped"
    except (jax.errors.JaxRuntimeError, ResourceError) as e:
      if not isinstance(e, ResourceError) and not _is_oom(e):
        raise
      if batch <= n_dev:
        if isinstance(e, ResourceError):
          raise
        h, w = x0.shape[:2]
        raise SweepMemoryError(
          f"one member of {w}x{h} px per device does not fit in device memory; lower --size"
        ) from None
      batch = max(n_dev, (batch // 2) // n_dev * n_dev)
      continue
    parts.append(_Part(run, min(batch, total - start), run.timings["run_s"]))
    start += parts[-1].keep
  return parts, batch


def _after_stop(config: StyleConfig) -> StyleConfig:
  """The config of members left when a sweep stops: no steps, so each keeps its start image and its loss there
  (the result still has every member)."""
  return config.set(steps=0)


def _collect(parts: list[_Part], content, config, total: int, batch: int, n_dev: int, mode: str) -> SweepResult:
  """The members in order, padding dropped; images finished (colour) and gathered from every process."""
  one = mode == "map"  # a member's own Run has no batch axis

  def rows(a, keep: int) -> np.ndarray:
    a = np.asarray(a)
    return a[None] if one else a[:keep]

  # to_host: with devices in several processes, every process gathers every member
  images = np.concatenate([np.stack([finish(im, content, config) for im in rows(to_host(p.run.image), p.keep)])
                           for p in parts])  # fmt: skip
  longest = max(parts, key=lambda p: len(p.run.history["step"])).run.history
  history = {k: longest[k] if k == "step" else _rows([rows(p.run.history[k], p.keep) for p in parts]) for k in longest}
  finals = [{k: float(np.ravel(v)[i]) for k, v in p.run.losses.items()} for p in parts for i in range(p.keep)]
  steps_done = tuple(int(p.run.step) for p in parts for _ in range(p.keep))
  run_s = sum(p.run_s for p in parts)
  timings = {"compile_s": sum(p.run.timings["compile_s"] for p in parts), "run_s": run_s}
  status = "stopped" if any(p.run.status == "stopped" for p in parts) else "completed"
  image_steps = total * config.run.steps if status == "completed" else sum(steps_done)
  timings.update(image_steps_per_s=image_steps / run_s if run_s > 0 else 0.0, batch=batch, devices=n_dev)
  return SweepResult(images=images, history=history, losses=finals, timings=timings, batching=mode, status=status,
                     steps_done=steps_done)  # fmt: skip


def _rows(blocks: list[np.ndarray]) -> np.ndarray:
  """One history's blocks of members stacked, NaN-padded to the longest (members a stop cut short ran fewer)."""
  n = max(b.shape[1] for b in blocks)
  if all(b.shape[1] == n for b in blocks):
    return np.concatenate(blocks)
  return np.concatenate([np.pad(b.astype(np.float32), ((0, 0), (0, n - b.shape[1])), constant_values=np.nan)
                         for b in blocks])  # fmt: skip


# --------------------------------------------------------------------------- grids of settings


@dataclasses.dataclass(frozen=True)
class SweepSpec:
  """A grid of settings: every combination of the given values.

  Attributes:
    ratios: alpha/beta values; beta = ``config.loss.content_weight / ratio``.
    style_layer_sets: subsets of style layers; each set's weights are the config's
      weights of those layers, rescaled so that they sum to what the full set sums to.
    tv_weights: total-variation weights.

  Rows of the contact sheet are (layer set, tv weight) pairs; columns are ratios.
  """

  ratios: tuple[float, ...] | None = None
  style_layer_sets: tuple[tuple[str, ...], ...] | None = None
  tv_weights: tuple[float, ...] | None = None

  def run_config(self, config: StyleConfig) -> StyleConfig:
    """The shared config: the union of every set's style layers, in network order."""
    if not self.style_layer_sets:
      return config
    base = {vgg.canonical_layer(n): w for n, w in config.loss.style_layers}
    names = set(base)
    for s in self.style_layer_sets:
      names |= {vgg.canonical_layer(n) for n in s}
    union = tuple(sorted(names, key=vgg.layer_depth))
    return config.set(style_layers=tuple((n, base.get(n, 1.0)) for n in union))

  def grid(self, config: StyleConfig) -> tuple[list[dict], list[StyleConfig], int]:
    """Every member as (labels, standalone config); also the number of columns. Every member's config reads the
    shared config's layers (:meth:`run_config`), those outside its layer set at weight 0."""
    run = self.run_config(config)
    base = dict(run.loss.style_layers)
    full = sum(_layer_weights(config))
    labels, configs = [], []
    sets = self.style_layer_sets or [None]
    tvs = self.tv_weights or [None]
    ratios = self.ratios or [None]
    for layers, tv, ratio in itertools.product(sets, tvs, ratios):
      changes: dict[str, Any] = {}
      label: dict[str, Any] = {}
      if layers is not None:
        names = tuple(vgg.canonical_layer(n) for n in layers)
        raw = sum(base[n] for n in names)
        scale = full / raw if raw > 0 else 1.0
        # every layer of the shared config, weight 0 outside the set: the member's command then runs the very
        # program the sweep ran for it
        changes["style_layers"] = tuple((n, w * scale if n in names else 0.0) for n, w in run.loss.style_layers)
        label["style_layers"] = list(names)
      if tv is not None:
        changes["tv_weight"] = float(tv)
        label["tv_weight"] = float(tv)
      if ratio is not None:
        changes["style_weight"] = config.loss.content_weight / ratio
        label["ratio"] = float(ratio)
      labels.append(label)
      configs.append(config.set(**changes))
    return labels, configs, len(ratios)

  def weights(self, config: StyleConfig) -> losses.LossWeights:
    """The batched weights of :meth:`grid`'s members (over :meth:`run_config`'s layers)."""
    return stack_weights([member.loss.weights() for member in self.grid(config)[1]])


def _layer_weights(config: StyleConfig) -> tuple[float, ...]:
  return tuple(w for _, w in config.loss.style_layers)


def label_text(label: Mapping[str, Any]) -> str:
  """A short caption: ``a/b=1e-03 relu1_1..relu3_1 tv=0``."""
  parts = []
  if "ratio" in label:
    parts.append(f"a/b={label['ratio']:.0e}")
  if "style_layers" in label:
    ls = label["style_layers"]
    parts.append(ls[0] if len(ls) == 1 else f"{ls[0]}..{ls[-1]}")
  if "tv_weight" in label:
    parts.append(f"tv={label['tv_weight']:g}")
  return " ".join(parts) or "base"


def member_filename(i: int, label: Mapping[str, Any]) -> str:
  slug = label_text(label).replace("a/b=", "r").replace(" ", "_").replace("..", "-").replace("=", "")
  return f"{i:03d}_{slug}.png"


def figure3(**overrides: Any) -> tuple[StyleConfig, SweepSpec]:
  """Gatys et al. 2016, Figure 3: rows use style layers relu1_1 alone up to
  relu1_1..relu5_1; columns alpha/beta = 1e-5, 1e-4, 1e-3, 1e-2. From white noise, as in
  the paper."""
  config = presets.gatys(**{"init": "noise", **overrides})
  names = vgg.STYLE_LAYERS
  spec = SweepSpec(ratios=(1e-5, 1e-4, 1e-3, 1e-2), style_layer_sets=tuple(names[: k + 1] for k in range(len(names))))
  return config, spec


def device_summary() -> str:
  d = jax.local_devices()
  return f"{len(d)} x {d[0].device_kind} ({d[0].platform}), {jax.process_count()} process(es), pid {os.getpid()}"
