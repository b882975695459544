"""Training a feed-forward stylization network for one style (Johnson, Alahi & Fei-Fei 2016).

The network is Magenta's arbitrary-style :class:`~jaxstyle.nets.magenta.Transformer`, started from its pretrained
params with the style image's predicted vector (:func:`~jaxstyle.nets.magenta.predict_style`) as a trainable
vector. The loss is a preset's objective, the same one optimization uses (:mod:`jaxstyle.objective`): for each
crop, content = the crop's own VGG19 features, style = the style image's Gram matrices
(:func:`~jaxstyle.objective.targets.style_targets`, computed once), averaged over the batch
(:func:`~jaxstyle.objective.loss.batch_loss`). Adam trains only the chosen subset (``train``: ``vector``,
``cin`` = the CIN gamma/beta Dense layers and the vector, or ``all``); the other params get zero updates and
stay bitwise equal.

Data: random crops of the content photographs (:mod:`jaxstyle.fast.data`). The batch axis is sharded over a 1-D
mesh of all devices (``jax.sharding``); params, VGG19 and targets are replicated.

Evaluation: the mean objective over whole held-out images, each resized so that its long side is ``size``
(not cropped), one image at a time; content = the image itself, style = the same Gram targets.

Library entry points: :func:`train` (arrays in, :class:`TrainResult` out; it writes only the checkpoint path
it is given), :func:`evaluate`; the files are :mod:`jaxstyle.fast.model_file`'s.
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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.fast import data
from jaxstyle.fast.model_file import TrainCheckpoint, check_resume, load_checkpoint, save_checkpoint
from jaxstyle.io import images as imageio
from jaxstyle.io import magenta_weights
from jaxstyle.nets import magenta, vgg
from jaxstyle.objective import losses
from jaxstyle.objective.loss import batch_loss
from jaxstyle.objective.targets import Form, Targets, style_targets
from jaxstyle.settings.train import TrainSettings

HISTORY = ("loss", "content", "style", "tv")


# --------------------------------------------------------------------------- objective


class StyleObjective(NamedTuple):
  """The arrays of a preset's objective for one style (a pytree; its :class:`~jaxstyle.objective.targets.Form`
  goes beside it).

  Attributes:
    vgg: VGG19 params prepared for the preset's convolution algorithm.
    targets: the style image's Gram matrices ``(1, C, C)`` by layer, and the pool gains (``None`` unless the
      pooling is not the native one); no content (each crop is its own).
    weights: the loss weights.
  """

  vgg: dict
  targets: Targets
  weights: losses.LossWeights


def make_objective(vgg_params: Mapping, style_image: ArrayLike, settings: TrainSettings) -> tuple[StyleObjective, Form]:
  """The objective of ``settings.preset`` against one style image.

  Args:
    vgg_params: VGG19 params.
    style_image: ``(H, W, 3)`` RGB in [0, 1]; resized so that its long side is ``settings.style_size`` (default
      ``size`` times the preset's ``style_scale``) before its Gram matrices are taken.
    settings: the training settings.

  Returns:
    ``(objective, form)``.
  """
  config = settings.config()
  form = config.form()
  style = imageio.as_image(style_image, "the style image")
  side = settings.style_size or max(1, round(settings.size * config.images.style_scale))
  style = imageio.resize(style, side)
  need = max(vgg.layer_stride(n) for n in form.layers)
  if min(style.shape[:2]) < need:
    raise InputError(f"style image is {style.shape[1]}x{style.shape[0]} px at {side} px, too small (needs {need})")
  params = vgg.prepare(vgg_params, config.network.conv, layers=form.layers)
  gains = None
  if form.rescaled:  # no content image is fixed here, so the gains are measured on the style image
    gains = vgg.pool_gains(params, jnp.asarray(style)[None], native=form.native_pooling, pooling=form.pooling)
  grams = style_targets(params, style, form, gains=gains)
  return StyleObjective(params, Targets({}, grams, pool_gains=gains), config.loss.weights()), form


def _stylize(transformer_params: Mapping, vector: jax.Array, x: jax.Array) -> jax.Array:
  return magenta.transfer(transformer_params, x, jnp.broadcast_to(vector[None], (x.shape[0], vector.shape[-1])))


def _loss(objective: StyleObjective, form: Form, outputs: jax.Array, contents: jax.Array):
  return batch_loss(outputs, contents, objective.vgg, objective.targets, objective.weights, form=form)


@functools.partial(jax.jit, static_argnums=1)
def _eval_one(objective: StyleObjective, form: Form, transformer_params, vector, image):
  x = image[None]
  total, parts = _loss(objective, form, _stylize(transformer_params, vector, x), x)
  return {"total": total[0], **{k: v[0] for k, v in parts.items()}}


def evaluate(
  transformer_params: Mapping,
  vector: ArrayLike,
  images: Sequence[ArrayLike],
  objective: StyleObjective,
  form: Form,
  *,
  size: int | None = None,
) -> dict[str, float]:
  """The mean objective of a transformer and style vector over whole images.

  Args:
    transformer_params: :class:`~jaxstyle.nets.magenta.Transformer` params.
    vector: ``(D,)`` the style vector.
    images: ``(H, W, 3)`` RGB in [0, 1] each.
    objective, form: from :func:`make_objective`.
    size: resize each image so that its long side is ``size`` first (``None``: as given).

  Returns:
    ``{"total", "content", "style", "tv"}``, each the mean over the images.
  """
  images = data.eval_images(images, size) if size is not None else data.as_images(images, "evaluation image")
  vector = jnp.asarray(vector, jnp.float32)
  per = [_eval_one(objective, form, transformer_params, vector, jnp.asarray(im)) for im in images]
  return {k: float(np.mean([float(p[k]) for p in per])) for k in per[0]}


def zero_shot_loss(
  vgg_params: Mapping,
  predictor_params: Mapping,
  transformer_params: Mapping,
  style_image: ArrayLike,
  images: Sequence[ArrayLike],
  settings: TrainSettings,
) -> dict[str, float]:
  """:func:`evaluate` of the pretrained transformer with the style image's predicted vector, at ``settings.size``."""
  objective, form = make_objective(vgg_params, style_image, settings)
  vector = magenta.predict_style(predictor_params, np.asarray(style_image, np.float32))
  return evaluate(transformer_params, vector, images, objective, form, size=settings.size)


def held_out_images(images: Sequence[ArrayLike], settings: TrainSettings, form: Form) -> list[np.ndarray]:
  """Held-out images at ``settings.size`` (long side), checked against the deepest layer's stride."""
  out = data.eval_images(images, settings.size)
  need = max(max(vgg.layer_stride(n) for n in form.layers), magenta.MIN_SIDE)
  for i, im in enumerate(out):
    if min(im.shape[:2]) < need:
      raise InputError(
        f"evaluation image {i} is {im.shape[1]}x{im.shape[0]} px at size {settings.size}; "
        f"both sides need at least {need}"
      )
  return out


# --------------------------------------------------------------------------- optimizer and step


def _label(path: tuple, train: str) -> str:
  keys = [getattr(k, "key", getattr(k, "name", None)) for k in path]
  if keys[0] == "vector" or train == "all" or (train == "cin" and "norm" in keys):
    return "train"
  return "frozen"


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
  """Adam on the trained subset of ``{"transformer": params, "vector": (D,)}``; zero updates elsewhere."""
  return _optimizer(settings.lr, settings.train)


@functools.lru_cache(maxsize=16)
def _optimizer(lr: float, train: str) -> optax.GradientTransformation:
  labels = lambda tree: jax.tree_util.tree_map_with_path(lambda p, _: _label(p, train), tree)  # noqa: E731
  return optax.multi_transform({"train": optax.adam(lr), "frozen": optax.set_to_zero()}, labels)


@functools.lru_cache(maxsize=16)
def _step_fn(form: Form, lr: float, train: str) -> Callable:
  """One compiled training step, cached so that runs with the same settings share it."""
  opt = _optimizer(lr, train)

  def loss_fn(params, crops, objective):
    total, parts = _loss(objective, form, _stylize(params["transformer"], params["vector"], crops), crops)
    return jnp.mean(total), {k: jnp.mean(v) for k, v in parts.items()}

  def step(state, crops, objective):
    params, opt_state = state
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, crops, objective)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **parts}

  return jax.jit(step, donate_argnums=0)


# --------------------------------------------------------------------------- progress and results


@dataclasses.dataclass(frozen=True)
class TrainProgress:
  """What a progress callback receives (every ``report_every`` steps, at evaluations and at the end).

  Attributes:
    step: steps done.
    steps: steps planned.
    loss: mean objective of the last step's batch (before its update).
    parts: its weighted ``content``, ``style``, ``tv`` parts.
    steps_per_second: since the run (or the resume) started, its first step (compilation) left out and
      evaluations included.
    elapsed: seconds since the run (or the resume) started.
    eval: the held-out evaluation made at this step, if any (``total``, ``content``, ``style``, ``tv``).
  """

  step: int
  steps: int
  loss: float
  parts: dict[str, float]
  steps_per_second: float
  elapsed: float
  eval: dict[str, float] | None = None

  @property
  def eta(self) -> float:
    """Seconds left at the current speed."""
    return (self.steps - self.step) / self.steps_per_second if self.steps_per_second > 0 else math.inf


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """What :func:`train` returns.

  Attributes:
    transformer_params: the trained :class:`~jaxstyle.nets.magenta.Transformer` params (NumPy leaves).
    vector: ``(D,)`` the trained style vector.
    steps_done: steps done in all (a resumed run's included).
    stopped: ``stop`` ended the run before ``steps``.
    history: ``step`` (1-based), ``loss``, ``content``, ``style``, ``tv`` per step, ``(steps_done,)`` each.
    evals: one dict per evaluation: ``step`` and the mean ``total``, ``content``, ``style``, ``tv``.
    timings: ``compile_s`` (the first step), ``run_s`` (the others), ``steps_per_second``, ``devices``.
  """

  transformer_params: dict
  vector: np.ndarray
  steps_done: int
  stopped: bool
  history: dict[str, np.ndarray]
  evals: list[dict[str, float]]
  timings: dict[str, float]


# --------------------------------------------------------------------------- training


class _Start(NamedTuple):
  """Where a run starts: params and optimizer state (host copies), step, history and evaluations so far."""

  params: dict
  opt_state: Any
  step: int
  history: dict[str, list[float]]
  evals: list[dict]


def train(
  style_image: ArrayLike,
  content_images: Sequence[ArrayLike],
  settings: TrainSettings,
  *,
  vgg_params: Mapping,
  predictor_params: Mapping | None = None,
  transformer_params: Mapping,
  vector: ArrayLike | None = None,
  eval_images: Sequence[ArrayLike] | None = None,
  callback: Callable[[TrainProgress], None] | None = None,
  resume: str | os.PathLike | TrainCheckpoint | None = None,
  checkpoint: str | os.PathLike | None = None,
  stop: Callable[[], bool] | None = None,
  devices: Sequence[jax.Device] | None = None,
) -> TrainResult:
  """Trains Magenta's transformer for one style image under a preset's objective.

  Args:
    style_image: ``(H, W, 3)`` RGB in [0, 1].
    content_images: ``(H, W, 3)`` RGB photographs, each at least ``settings.size`` px on its short side.
    settings: the training settings.
    vgg_params: VGG19 params (``load_vgg19()``).
    predictor_params: :class:`~jaxstyle.nets.magenta.StylePredictor` params, for the initial vector.
    transformer_params: the initial :class:`~jaxstyle.nets.magenta.Transformer` params (pretrained).
    vector: the initial ``(D,)`` style vector instead of the predicted one (then ``predictor_params`` may be
      omitted).
    eval_images: held-out ``(H, W, 3)`` images evaluated every ``eval_every`` steps and at the end.
    callback: receives a :class:`TrainProgress`.
    resume: a checkpoint (path or :func:`~jaxstyle.fast.model_file.load_checkpoint`'s result) to continue from.
    checkpoint: a file to write checkpoints to, every ``checkpoint_every`` steps and at the end.
    stop: called after every step; ``True`` ends the run there (e.g. a wall-clock budget).
    devices: devices the batch is sharded over (default ``jax.devices()``).

  Returns:
    :class:`TrainResult`.
  """
  devices = list(jax.devices() if devices is None else devices)
  if settings.batch % len(devices):
    up = -(-settings.batch // len(devices)) * len(devices)
    raise InputError(f"batch {settings.batch} is not a multiple of the {len(devices)} devices; use {up}")
  photos = data.prepare_photos(content_images, settings)
  style = data.as_images([style_image], "style image")[0]
  objective, form = make_objective(vgg_params, style, settings)
  held_out = held_out_images(eval_images, settings, form) if eval_images is not None else None
  prints = {"style": data.fingerprint([style]), "content": data.fingerprint(photos)}
  start = _start(style, settings, predictor_params, transformer_params, vector, resume, prints)
  run = _Training(settings, form, objective, devices, start, held_out, prints, checkpoint)
  return run.run(photos, callback=callback, stop=stop)


def _start(style, settings, predictor_params, transformer_params, vector, resume, prints) -> _Start:
  """The initial params (pretrained transformer, predicted or given vector) and optimizer state, or a
  checkpoint's after checking it belongs to this run."""
  if vector is None:
    if predictor_params is None:
      raise InputError("give predictor_params (to predict the initial vector) or the vector itself")
    vector = magenta.predict_style(predictor_params, style)
  model = magenta.transformer_of(transformer_params)
  magenta_weights.check_model_params(transformer_params, model, where="transformer")
  # Host copies, so that donating the state never consumes the caller's arrays.
  params = {"transformer": jax.tree.map(np.array, dict(transformer_params)), "vector": np.array(vector, np.float32)}
  opt_state = make_optimizer(settings).init(params)
  if resume is None:
    return _Start(params, opt_state, 0, {k: [] for k in HISTORY}, [])
  ckpt = resume if isinstance(resume, TrainCheckpoint) else load_checkpoint(resume)
  where = resume if not isinstance(resume, TrainCheckpoint) else "checkpoint"
  opt_state = check_resume(ckpt, params, opt_state, settings, prints, where)
  step = ckpt.step
  history = {k: list(np.asarray(ckpt.history.get(k, np.zeros(0)))[:step]) for k in HISTORY}
  return _Start(jax.tree.map(np.array, ckpt.params), opt_state, step, history, [dict(e) for e in ckpt.evals])


class _Training:
  """One training run's state between steps: the device state, the metrics not yet fetched, the history."""

  def __init__(self, settings, form, objective, devices, start: _Start, held_out, prints, checkpoint):
    self.settings, self.form, self.held_out, self.prints, self.checkpoint = settings, form, held_out, prints, checkpoint
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    replicated, self.sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
    self.state = jax.device_put((start.params, start.opt_state), replicated)
    self.objective = jax.device_put(objective, replicated)
    self.step_fn = _step_fn(form, float(settings.lr), settings.train)
    self.start, self.step, self.history, self.evals = start.step, start.step, start.history, start.evals
    self.pending: list[dict] = []  # device scalars, fetched at reports so that steps are dispatched ahead
    self.devices = len(devices)

  def run(self, photos, *, callback, stop) -> TrainResult:
    s = self.settings
    t0 = time.perf_counter()
    t_first, stopped = None, False
    while self.step < s.steps:
      self.advance(photos)
      if t_first is None:
        jax.block_until_ready(self.pending[-1])
        t_first = time.perf_counter()
      elif len(self.pending) > 1:
        # One step in flight (the host draws the next crops meanwhile), no more: `stop` then acts within a step.
        jax.block_until_ready(self.pending[-2])
      stopped = stop is not None and self.step < s.steps and bool(stop())
      last = self.step == s.steps or stopped
      ev = self.evaluate() if self.held_out is not None and (last or _due(self.step, s.eval_every)) else None
      if self.checkpoint is not None and (last or _due(self.step, s.checkpoint_every)):
        self.save()
      if callback is not None and (last or ev is not None or self.step % s.report_every == 0):
        callback(self.progress(t0, t_first, ev))
      if stopped:
        break
    return self.result(t0, t_first, stopped)

  def advance(self, photos) -> None:
    crops = jax.device_put(data.sample_crops(photos, self.step, self.settings), self.sharded)
    self.state, metrics = self.step_fn(self.state, crops, self.objective)
    self.pending.append(metrics)
    self.step += 1

  def params(self) -> dict:
    """Host copies of the params: the next step donates the device buffers."""
    return jax.tree.map(np.array, self.state[0])

  def evaluate(self) -> dict[str, float]:
    p = self.params()
    out = {"step": self.step, **evaluate(p["transformer"], p["vector"], self.held_out, self.objective, self.form)}
    self.evals.append(out)
    return out

  def flush(self) -> None:
    for m in jax.device_get(self.pending):
      for k in HISTORY:
        self.history[k].append(float(m[k]))
    self.pending.clear()

  def history_arrays(self) -> dict[str, np.ndarray]:
    self.flush()
    return {"step": np.arange(1, self.step + 1), **{k: np.asarray(v, np.float32) for k, v in self.history.items()}}

  def save(self) -> None:
    save_checkpoint(
      self.checkpoint, self.state[0], self.state[1], self.step, settings=self.settings,
      history=self.history_arrays(), evals=self.evals, fingerprints=self.prints,
    )  # fmt: skip

  def progress(self, t0: float, t_first: float, ev) -> TrainProgress:
    self.flush()
    now = time.perf_counter()
    done = self.step - self.start
    rate = (done - 1) / (now - t_first) if done > 1 and now > t_first else 0.0
    parts = {k: self.history[k][-1] for k in ("content", "style", "tv")}
    return TrainProgress(self.step, self.settings.steps, self.history["loss"][-1], parts, rate, now - t0, ev)

  def result(self, t0: float, t_first: float | None, stopped: bool) -> TrainResult:
    history = self.history_arrays()
    if self.held_out is not None and (not self.evals or self.evals[-1]["step"] != self.step):
      self.evaluate()  # a run with nothing left to do still reports its network
    end = time.perf_counter()
    run_s = end - (t_first or end)
    done = self.step - self.start
    final = self.params()
    timings = {
      "compile_s": (t_first - t0) if t_first is not None else 0.0,
      "run_s": run_s,
      "steps_per_second": (done - 1) / run_s if done > 1 and run_s > 0 else 0.0,
      "devices": self.devices,
    }
    return TrainResult(final["transformer"], final["vector"], self.step, stopped, history, self.evals, timings)


def _due(step: int, every: int | None) -> bool:
  return bool(every) and step % every == 0
