"""Optimizing an image: the objective, one compiled chunk of optax steps, and the loop.

The image is the optimization variable, ``(H, W, 3)`` RGB in [0, 1] units. Steps run
in compiled chunks of ``config.report_every`` steps (a ``lax.fori_loop`` whose trip
count is an argument, so a short last chunk reuses the same executable); the Python
loop between chunks only reports progress. Every piece is written for one image and
``jax.vmap``-ed for sweeps (:mod:`jaxstyle.sweep`).
"""

from __future__ import annotations

import dataclasses
import functools
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

from jaxstyle import images as imageio
from jaxstyle import lbfgs, losses, vgg
from jaxstyle.config import StyleConfig


class Targets(NamedTuple):
  """What the objective matches: content activations ``(1, H, W, C)`` and style Gram
  matrices ``(1, C, C)``, by canonical layer name. With a ``mask`` (``(H, W, 1)``, 1 =
  stylize), the optimized variable ``z`` becomes the image ``mask * z + (1 - mask) *
  anchor``, so the unmasked region stays the ``anchor`` (the content) exactly."""

  content: dict[str, jax.Array]
  style: dict[str, jax.Array]
  mask: jax.Array | None = None
  anchor: jax.Array | None = None


def compose(z: jax.Array, targets: Targets) -> jax.Array:
  """The image a variable ``z`` stands for (``z`` itself without a mask)."""
  if targets.mask is None:
    return z
  return targets.mask * z + (1.0 - targets.mask) * targets.anchor


class Static(NamedTuple):
  """The hashable part of a run: what a compiled executable depends on besides shapes."""

  spec: losses.LossSpec
  pooling: str
  layers: tuple[str, ...]
  optimizer: str
  lbfgs_linesearch: str
  learning_rate: float
  adam_b1: float
  adam_b2: float
  adam_eps: float
  lbfgs_memory: int
  clip: bool
  chunk: int

  @classmethod
  def from_config(cls, config: StyleConfig) -> Static:
    return cls(
      spec=config.loss_spec(),
      pooling=config.pooling,
      layers=config.layers,
      optimizer=config.optimizer,
      lbfgs_linesearch=config.lbfgs_linesearch,
      learning_rate=float(config.learning_rate),
      adam_b1=float(config.adam_b1),
      adam_b2=float(config.adam_b2),
      adam_eps=float(config.adam_eps),
      lbfgs_memory=int(config.lbfgs_memory),
      clip=bool(config.clip),
      chunk=int(config.report_every),
    )


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
    scales: per scale of a coarse-to-fine run: ``size`` (H, W), ``first_loss``,
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


# --------------------------------------------------------------------------- objective


def compute_targets(
  params: Mapping, content: ArrayLike, style: ArrayLike | Sequence[ArrayLike], config: StyleConfig
) -> Targets:
  """Content activations and style Grams, computed once.

  Several style images give one target: the weighted mean of their Gram matrices with
  ``config.style_blend`` (equal weights by default), as in jcjohnson's neural-style.

  Args:
    params: VGG19 params.
    content: ``(H, W, 3)`` RGB in [0, 1].
    style: ``(H', W', 3)`` RGB in [0, 1], or a list of such images.
    config: the settings (layers, pooling, Gram normalisation, blend).

  Returns:
    :class:`Targets`.
  """
  styles = list(style) if isinstance(style, (list, tuple)) else [style]
  blend = style_blend_weights(config, len(styles))
  key = _target_key(config)
  parts = [_targets(params, jnp.asarray(content)[None], jnp.asarray(s)[None], key) for s in styles]
  grams = {k: sum(w * t.style[k] for w, t in zip(blend, parts, strict=True)) for k in parts[0].style}
  return Targets(parts[0].content, grams)


def style_blend_weights(config: StyleConfig, n: int) -> list[float]:
  """The blend weights of ``n`` style images, normalised to sum to 1."""
  w = list(config.style_blend) if config.style_blend is not None else [1.0] * n
  if len(w) != n:
    raise ValueError(f"style_blend has {len(w)} weights for {n} style images")
  return [v / sum(w) for v in w]


def _target_key(config: StyleConfig) -> tuple:
  return (
    tuple(vgg.canonical_layer(n) for n in config.content_layers),
    tuple(vgg.canonical_layer(n) for n in config.style_layers),
    config.pooling,
    config.gram_norm,
  )


@functools.partial(jax.jit, static_argnums=3)
def _targets(params, content, style, key) -> Targets:
  content_layers, style_layers, pooling, gram_norm = key
  c = vgg.extract_features(params, content, content_layers, pooling=pooling) if content_layers else {}
  s = vgg.extract_features(params, style, style_layers, pooling=pooling) if style_layers else {}
  return Targets(c, {k: losses.gram_matrix(v, normalize=gram_norm) for k, v in s.items()})


def objective(
  image: ArrayLike,
  params: Mapping,
  targets: Targets,
  weights: losses.LossWeights,
  *,
  static: Static,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The weighted loss of one image.

  Args:
    image: ``(H, W, 3)`` RGB in [0, 1] units.
    params: VGG19 params.
    targets: from :func:`compute_targets`.
    weights: a :class:`~jaxstyle.losses.LossWeights` of scalars.
    static: the static settings.

  Returns:
    ``(total, parts)``: a scalar and a dict of weighted scalar parts.
  """
  x = compose(jnp.asarray(image), targets)[None]
  feats = vgg.extract_features(params, x, static.layers, pooling=static.pooling)
  total, parts = losses.total_loss(feats, targets.content, targets.style, x, weights, static.spec)
  return total[0], {k: v[0] for k, v in parts.items()}


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


# --------------------------------------------------------------------------- compiling

_CACHE: dict[Any, Any] = {}


def _signature(args) -> tuple:
  leaves, tree = jax.tree.flatten(args)
  return tree, tuple((np.shape(x), getattr(x, "dtype", type(x)), getattr(x, "sharding", None)) for x in leaves)


def compiled(
  name: str, fn: Callable, args: tuple, *, static: Static, batched: bool, donate=(), out_sharding=None
) -> tuple[Callable, float]:
  """Ahead-of-time compiles ``fn(*args, static=static)``, vmapped over ``BATCH_AXES[name]``
  when ``batched``; returns the executable and the seconds spent.

  ``out_sharding`` pins every output (all carry the batch axis when batched) so that a
  chunk's outputs can be fed straight back in. Executables are kept per shapes,
  shardings and static settings, so a second run of the same kind compiles nothing.
  """
  key = (name, static, batched, out_sharding, _signature(args))
  if key in _CACHE:
    return _CACHE[key], 0.0
  f = lambda *a: fn(*a, static=static)  # noqa: E731
  if batched:
    f = jax.vmap(f, in_axes=BATCH_AXES[name])
  t0 = time.perf_counter()
  exe = jax.jit(f, donate_argnums=donate, out_shardings=out_sharding).lower(*args).compile()
  _CACHE[key] = exe
  return exe, time.perf_counter() - t0


class ResourceError(ValueError):
  """A run does not fit in the device's memory; the message names the largest size that does."""


def available_memory(device: jax.Device) -> int | None:
  """Free bytes on ``device``: the allocator's limit on accelerators, free RAM on CPU."""
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:  # MemAvailable counts reclaimable cache, unlike sysconf's free pages
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return None


def check_memory(executable, image_shape: tuple[int, ...], *, available: int | None = None) -> None:
  """Refuses up front a compiled step whose buffers exceed free device memory.

  Activation memory grows with the pixel count, so the largest longest side that fits
  is estimated as ``side * sqrt(free / need)``.
  """
  try:
    m = executable.memory_analysis()
    need = int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)
  except Exception:  # noqa: BLE001 - not every backend reports it
    return
  if available is None:
    devices = executable.input_shardings[0][0].device_set if executable.input_shardings else None
    available = available_memory(next(iter(devices)) if devices else jax.devices()[0])
  if available is None or need <= available:
    return
  h, w = image_shape[-3], image_shape[-2]
  side = int(max(h, w) * math.sqrt(available / need) * 0.95)
  raise ResourceError(
    f"a {w}x{h} px run needs about {need / 2**30:.1f} GiB but {available / 2**30:.1f} GiB is free; "
    f"the largest size that fits is about {side} px (--size {side})"
  )


# Which arguments carry the sweep axis: images, optimizer states and loss weights do;
# VGG params, targets and the step count are shared.
BATCH_AXES = {
  "init": (0, None, None, 0),
  "chunk": (0, 0, None, None, None, 0),
}


# --------------------------------------------------------------------------- loop


def as_image(x: ArrayLike | str | os.PathLike) -> np.ndarray:
  """A path or an ``(H, W, 3)`` array to float32 RGB."""
  if isinstance(x, (str, os.PathLike)):
    return imageio.load_image(x)
  arr = np.asarray(x, np.float32)
  if arr.ndim != 3 or arr.shape[-1] != 3:
    raise ValueError(f"an image must be (H, W, 3), got shape {arr.shape}")
  return arr


def prepare_images(content, style, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
  """Loads and resizes content (longest side ``config.size``) and each style image
  (longest side ``style_scale`` times the content's), and checks they reach the deepest
  layer. ``style`` is one image or a list; a list is returned."""
  content = as_image(content)
  if config.size is not None:
    content = imageio.resize(content, config.size)
  side = max(1, round(max(content.shape[:2]) * config.style_scale))
  styles = [imageio.resize(as_image(s), side) for s in (style if isinstance(style, (list, tuple)) else [style])]
  if not styles:
    raise ValueError("at least one style image is needed")
  style_blend_weights(config, len(styles))
  need = max(vgg.layer_stride(n) for n in config.layers)
  for what, im in [("content", content)] + [("style", s) for s in styles]:
    if min(im.shape[:2]) < need:
      raise ValueError(
        f"{what} image is {im.shape[1]}x{im.shape[0]} px, too small for layer "
        f"{max(config.layers, key=vgg.layer_depth)} (needs at least {need} px per side)"
      )
  return content, styles


def initial_image(content: np.ndarray, config: StyleConfig, style: list[np.ndarray] | None = None) -> np.ndarray:
  """The starting image: the content, seeded uniform noise, flat gray, seeded noise with
  the style images' colour statistics, or a file."""
  if config.init == "content":
    return content.copy()
  if config.init == "noise":
    key = jax.random.key(config.seed)
    return np.asarray(jax.random.uniform(key, content.shape, jnp.float32))
  if config.init == "gray":
    return np.full(content.shape, 0.5, np.float32)
  if config.init == "style":
    if style is None:
      raise ValueError("init 'style' needs the style image")
    ref = np.concatenate([np.reshape(s, (-1, 3)) for s in style])
    noise = np.asarray(jax.random.normal(jax.random.key(config.seed), content.shape, jnp.float32))
    return np.clip(ref.mean(0) + noise * ref.std(0), 0.0, 1.0).astype(np.float32)
  return imageio.resize(imageio.load_image(config.init), content.shape[:2])


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
    params: VGG19 params.
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
  x = jnp.array(image if resume is None else resume.image, jnp.float32, copy=True)  # the loop donates x
  # A batch sharded over devices keeps every per-member output sharded the same way.
  out_sharding = x.sharding if batched and isinstance(x.sharding, jax.sharding.NamedSharding) else None
  if out_sharding is None and isinstance(image, jax.Array) and batched:
    x = jax.device_put(x, image.sharding)
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


class Problem(NamedTuple):
  """One scale of a stylization, ready to optimize."""

  content: np.ndarray  # (H, W, 3) the content at this scale, in the working colour space
  styles: list[np.ndarray]
  targets: Targets
  start: np.ndarray  # (H, W, 3) the starting variable


def as_mask(mask: ArrayLike | str | os.PathLike) -> np.ndarray:
  """A path or array to an ``(H, W, 1)`` float mask in [0, 1] (1 = stylize)."""
  m = imageio.load_image(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask, np.float32)
  if m.ndim == 2:
    m = m[..., None]
  if m.ndim != 3 or m.shape[-1] not in (1, 3):
    raise ValueError(f"a mask must be (H, W), (H, W, 1) or (H, W, 3), got shape {m.shape}")
  return np.clip(m.mean(axis=-1, keepdims=True), 0.0, 1.0).astype(np.float32)


def color_inputs(content: np.ndarray, styles: list[np.ndarray], config: StyleConfig):
  """Content and styles in the working colour space of ``config.preserve_color``."""
  from jaxstyle import color

  if config.preserve_color == "histogram":
    return content, [color.match_histogram(st, content) for st in styles]
  if config.preserve_color == "luminance":
    return color.luminance_image(content), [color.luminance_image(st, like=content) for st in styles]
  return content, styles


def finish(image: ArrayLike, content: np.ndarray, config: StyleConfig) -> np.ndarray:
  """The output image: with ``preserve_color="luminance"`` the result's luminance on the
  content's chroma (``content`` in RGB, resized to the image)."""
  from jaxstyle import color

  image = np.asarray(image, np.float32)
  if config.preserve_color == "luminance":
    return color.recombine(image, imageio.resize(content, image.shape[:2]))
  return image


def setup_problem(params, content, style, config: StyleConfig, *, mask=None, start=None) -> Problem:
  """Resizes, recolours and computes targets for one scale (``config.size``).

  Args:
    params: VGG19 params.
    content: ``(H, W, 3)`` RGB (any size) or a path.
    style: one style image or path, or a list of them.
    config: settings of this scale.
    mask: optional ``(H, W[, 1])`` mask or path; 1 = stylize, 0 = keep the content.
    start: optional image to start from (resized to this scale), e.g. the previous scale's result.
  """
  content, styles = prepare_images(content, style, config)
  work, styles = color_inputs(content, styles, config)
  targets = compute_targets(params, work, styles, config)
  if mask is not None:
    m = imageio.resize(np.repeat(as_mask(mask), 3, axis=-1), work.shape[:2])[..., :1]
    targets = targets._replace(mask=jnp.asarray(m), anchor=jnp.asarray(work))
  if start is not None:
    x0 = imageio.resize(np.asarray(start, np.float32), work.shape[:2])
    if config.preserve_color == "luminance":
      x0 = color_inputs(x0, [], config)[0]
  else:
    x0 = initial_image(work, config, styles)
  return Problem(work, styles, targets, x0)


def stylize(
  content: ArrayLike | str | os.PathLike,
  style: ArrayLike | str | os.PathLike | Sequence,
  config: StyleConfig | None = None,
  *,
  params: Mapping | None = None,
  mask: ArrayLike | str | os.PathLike | None = None,
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
  for k, size in enumerate(config.scales or (config.size,)):
    scale_config = dataclasses.replace(config, size=size, scales=None)
    problem = setup_problem(params, content, styles, scale_config, mask=mask, start=previous)
    run = optimize(
      problem.start,
      params,
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
