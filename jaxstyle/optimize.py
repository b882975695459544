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
from jaxstyle import losses, vgg
from jaxstyle.config import StyleConfig


class Targets(NamedTuple):
  """What the objective matches: content activations ``(1, H, W, C)`` and style Gram
  matrices ``(1, C, C)``, by canonical layer name."""

  content: dict[str, jax.Array]
  style: dict[str, jax.Array]


class Static(NamedTuple):
  """The hashable part of a run: what a compiled executable depends on besides shapes."""

  spec: losses.LossSpec
  pooling: str
  layers: tuple[str, ...]
  optimizer: str
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
  """What a progress callback receives after each chunk."""

  step: int
  steps: int
  losses: dict[str, float]
  elapsed: float
  steps_per_second: float

  @property
  def eta(self) -> float:
    return (self.steps - self.step) / self.steps_per_second if self.steps_per_second > 0 else math.inf


@dataclasses.dataclass(frozen=True)
class Result:
  """The outcome of :func:`stylize`.

  Attributes:
    image: ``(H, W, 3)`` float32 RGB in [0, 1].
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
  x = jnp.asarray(image)[None]
  feats = vgg.extract_features(params, x, static.layers, pooling=static.pooling)
  total, parts = losses.total_loss(feats, targets.content, targets.style, x, weights, static.spec)
  return total[0], {k: v[0] for k, v in parts.items()}


def _optimizer(static: Static) -> optax.GradientTransformationExtraArgs:
  if static.optimizer == "lbfgs":
    lr = None if static.learning_rate == 1.0 else static.learning_rate
    return optax.lbfgs(learning_rate=lr, memory_size=static.lbfgs_memory)
  return optax.adam(static.learning_rate, b1=static.adam_b1, b2=static.adam_b2, eps=static.adam_eps)


def init_state(image, params, targets, weights, *, static: Static):
  """The optimizer state for one ``(H, W, 3)`` image.

  For L-BFGS the state is seeded with the loss and gradient at ``image`` so that every
  step reads them from the state (the line search leaves them there for the next
  step); this avoids ``optax.value_and_grad_from_state``'s ``lax.cond``, which under
  ``vmap`` would evaluate both branches.
  """
  state = _optimizer(static).init(image)
  if static.optimizer == "lbfgs":
    value_fn = lambda x: objective(x, params, targets, weights, static=static)[0]  # noqa: E731
    value, grad = jax.value_and_grad(value_fn)(image)
    state = optax.tree.set(state, value=value, grad=grad)
  return state


def run_chunk(image, state, num_steps, params, targets, weights, *, static: Static):
  """Runs ``num_steps <= static.chunk`` optimizer steps on one image.

  Returns:
    ``(image, state, values, parts)``: ``values`` is ``(static.chunk,)``, the loss at
    the iterate each step started from (entries past ``num_steps`` are NaN); ``parts``
    the weighted loss parts at the returned image.
  """
  opt = _optimizer(static)
  fun = lambda x: objective(x, params, targets, weights, static=static)  # noqa: E731
  value_fn = lambda x: fun(x)[0]  # noqa: E731

  def body(i, carry):
    x, s, values = carry
    if static.optimizer == "lbfgs":
      value, grad = optax.tree.get(s, "value"), optax.tree.get(s, "grad")
      updates, s = opt.update(grad, s, x, value=value, grad=grad, value_fn=value_fn)
    else:
      value, grad = jax.value_and_grad(value_fn)(x)
      updates, s = opt.update(grad, s, x)
    x = optax.apply_updates(x, updates)
    if static.clip:
      x = jnp.clip(x, 0.0, 1.0)
    return x, s, values.at[i].set(value)

  values = jnp.full((static.chunk,), jnp.nan, jnp.float32)
  image, state, values = jax.lax.fori_loop(0, num_steps, body, (image, state, values))
  _, parts = fun(image)
  return image, state, values, parts


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


def initial_image(content: np.ndarray, config: StyleConfig) -> np.ndarray:
  """The starting image: the content, seeded uniform noise, flat gray, or a file."""
  if config.init == "content":
    return content.copy()
  if config.init == "noise":
    key = jax.random.key(config.seed)
    return np.asarray(jax.random.uniform(key, content.shape, jnp.float32))
  if config.init == "gray":
    return np.full(content.shape, 0.5, np.float32)
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
) -> tuple[jax.Array, dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
  """Runs ``config.steps`` steps from ``image``; the loop shared by stylize and sweeps.

  Args:
    image: ``(H, W, 3)``, or ``(B, H, W, 3)`` when ``batched``.
    params: VGG19 params.
    targets: from :func:`compute_targets`.
    weights: scalar leaves, or leaves with a leading ``B`` axis when ``batched``.
    config: settings.
    batched: vmap over the leading axis of image and weights.
    callback: called after each chunk with :class:`Progress` (losses of member 0).

  Returns:
    ``(image, history, final_parts, timings)``, numpy arrays with a leading ``B``
    axis when ``batched``.
  """
  static = Static.from_config(config)
  x = jnp.array(image, jnp.float32, copy=True)  # the loop donates it; never the caller's buffer
  # A batch sharded over devices keeps every per-member output sharded the same way.
  out_sharding = x.sharding if batched and isinstance(x.sharding, jax.sharding.NamedSharding) else None
  init_fn, t_init = compiled(
    "init", init_state, (x, params, targets, weights), static=static, batched=batched, out_sharding=out_sharding
  )
  state = init_fn(x, params, targets, weights)
  n = jnp.int32(0)
  chunk_fn, t_chunk = compiled(
    "chunk",
    run_chunk,
    (x, state, n, params, targets, weights),
    static=static,
    batched=batched,
    donate=(0, 1),
    out_sharding=out_sharding,
  )
  totals, report = [], {"step": [], "content": [], "style": [], "tv": []}
  done, t0 = 0, time.perf_counter()
  parts = None
  while done < config.steps:
    k = min(config.report_every, config.steps - done)
    x, state, values, parts = chunk_fn(x, state, jnp.int32(k), params, targets, weights)
    values = np.asarray(values)
    totals.append(values[..., :k])
    done += k
    report["step"].append(done)
    for name in ("content", "style", "tv"):
      report[name].append(np.asarray(parts[name]))
    if callback is not None:
      elapsed = time.perf_counter() - t0
      first = (lambda v: float(np.ravel(v)[0])) if batched else float
      now = {name: first(parts[name]) for name in ("content", "style", "tv")}
      now["total"] = sum(now.values())
      callback(Progress(done, config.steps, now, elapsed, done / elapsed if elapsed > 0 else 0.0))
  run_s = time.perf_counter() - t0
  if parts is None:  # zero steps: evaluate the start
    x, state, _, parts = chunk_fn(x, state, jnp.int32(0), params, targets, weights)
  final = {name: np.asarray(v) for name, v in parts.items()}
  final["total"] = final["content"] + final["style"] + final["tv"]
  history = {"total": np.concatenate(totals, axis=-1) if totals else np.zeros(x.shape[:-3] + (0,), np.float32)}
  history.update({k: np.stack(v, axis=-1) if v else np.zeros(x.shape[:-3] + (0,)) for k, v in report.items()})
  history["step"] = np.asarray(report["step"], np.int64)
  timings = {"compile_s": t_init + t_chunk, "run_s": run_s, "steps_per_s": config.steps / run_s if run_s > 0 else 0.0}
  return jnp.clip(x, 0.0, 1.0), history, final, timings


def stylize(
  content: ArrayLike | str | os.PathLike,
  style: ArrayLike | str | os.PathLike,
  config: StyleConfig | None = None,
  *,
  params: Mapping | None = None,
  callback: Callable[[Progress], None] | None = None,
) -> Result:
  """Renders ``content`` in the style of ``style`` (Gatys et al. 2016).

  Args:
    content: ``(H, W, 3)`` RGB in [0, 1], or an image path.
    style: ``(H', W', 3)`` RGB in [0, 1], or an image path, or a list of them to
      blend (weights ``config.style_blend``).
    config: settings; default ``presets.gatys()``.
    params: VGG19 params; default ``load_vgg19()``.
    callback: receives a :class:`Progress` after every chunk of steps.

  Returns:
    a :class:`Result`; ``result.image`` is ``(H'', W'', 3)`` with the content's aspect
    ratio and longest side ``config.size``.
  """
  if config is None:
    from jaxstyle import presets

    config = presets.gatys()
  config = config.validate()
  if params is None:
    from jaxstyle.weights import load_vgg19

    params = load_vgg19()
  content, style = prepare_images(content, style, config)
  targets = compute_targets(params, content, style, config)
  x0 = initial_image(content, config)
  image, history, final, timings = optimize(x0, params, targets, config.loss_weights(), config, callback=callback)
  return Result(
    image=image,
    history=history,
    losses={k: float(v) for k, v in final.items()},
    timings=timings,
    config=config,
  )
