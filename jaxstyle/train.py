"""Training a feed-forward stylization network for one style (Johnson, Alahi & Fei-Fei 2016).

The network is Magenta's arbitrary-style :class:`~jaxstyle.magenta.Transformer`, started from its pretrained
params with the style image's predicted vector (:func:`~jaxstyle.magenta.predict_style`) as a trainable
vector. The loss is a preset's objective (:mod:`jaxstyle.presets`): for each crop, content = the crop's own
VGG19 features, style = the style image's Gram matrices (computed once), averaged over the batch. Adam trains
only the chosen subset (``train``: ``vector``, ``cin`` = the CIN gamma/beta Dense layers and the vector, or
``all``); the other params get zero updates and stay bitwise equal.

Data: each step draws ``batch`` square crops of ``size`` px from the content photographs, each first scaled
so that its short side is uniform in [``size``, ``max_scale * size``] (never upscaled), and mirrored half the
time. The draws come from a NumPy generator seeded by ``(seed, step)``, so a resumed run sees the same crops
as an uninterrupted one. The batch axis is sharded over a 1-D mesh of all devices (``jax.sharding``); params,
VGG19 and targets are replicated.

Evaluation: the mean objective over whole held-out images, each resized so that its long side is ``size``
(not cropped), one image at a time; content = the image itself, style = the same Gram targets.

Library entry points: :func:`train` (arrays in, :class:`TrainResult` out; it writes only the checkpoint path
it is given), :func:`evaluate`, :func:`load_images`, :func:`save_model` / :func:`load_model`,
:func:`save_checkpoint` / :func:`load_checkpoint`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxstyle import images as imageio
from jaxstyle import losses, magenta, magenta_weights, presets, vgg
from jaxstyle.checkpoint import CheckpointError
from jaxstyle.config import (
  BOOL,
  FLOAT,
  INT,
  Section,
  StyleConfig,
  _choices,
  _finite_nonneg,
  _int_at_least,
  _optional,
  _optional_check,
  _positive,
  setting,
)
from jaxstyle.errors import InputError, WeightsError

TRAIN_SUBSETS = ("vector", "cin", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
FORMAT_TRAINED = "jaxstyle-magenta-trained"
FORMAT_VERSION = 1
CHECKPOINT_VERSION = 1


def _at_least_one(v: Any) -> str | None:
  ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 1
  return None if ok else "must be a number of at least 1"


@dataclasses.dataclass(frozen=True)
class TrainSettings(Section):
  """How a feed-forward network is trained for one style; the objective is a preset's."""

  preset: str = setting(
    "gatys", "the preset whose objective (loss and network) is trained", codec=_choices(presets.PRESETS)
  )
  train: str = setting(
    "cin",
    "what is trained: the style vector, the CIN gamma/beta layers and the vector (cin), or every parameter (all)",
    codec=_choices(TRAIN_SUBSETS),
  )
  steps: int = setting(1000, "training steps", codec=INT, check=_int_at_least(0), resumable=True)
  batch: int = setting(4, "crops per step (a multiple of the device count)", codec=INT, check=_int_at_least(1))
  size: int = setting(
    256,
    "side of the square training crops and long side of evaluation images in px",
    codec=INT,
    check=_int_at_least(16),
  )
  max_scale: float = setting(
    1.5,
    "photographs are scaled to a random short side in [size, max_scale * size] before cropping",
    codec=FLOAT,
    check=_at_least_one,
  )
  flip: bool = setting(True, "mirror half the crops horizontally", codec=BOOL)
  lr: float = setting(1e-3, "Adam's learning rate", codec=FLOAT, check=_positive)
  content_weight: float | None = setting(
    None,
    "override the preset's content weight (none: the preset's)",
    codec=_optional(FLOAT),
    check=_optional_check(_finite_nonneg),
  )
  style_weight: float | None = setting(
    None,
    "override the preset's style weight (none: the preset's)",
    codec=_optional(FLOAT),
    check=_optional_check(_finite_nonneg),
  )
  tv_weight: float | None = setting(
    None,
    "override the preset's TV weight (none: the preset's)",
    codec=_optional(FLOAT),
    check=_optional_check(_finite_nonneg),
  )
  style_size: int | None = setting(
    None,
    "long side of the style image for its Gram targets (none: size times the preset's style_scale)",
    codec=_optional(INT),
    check=_optional_check(_int_at_least(16)),
  )
  seed: int = setting(0, "seed of the crops, scales and flips", codec=INT, check=_int_at_least(0))
  report_every: int = setting(10, "steps between progress reports", codec=INT, check=_int_at_least(1), resumable=True)
  eval_every: int | None = setting(
    None,
    "steps between evaluations on the held-out images (none: only at the end)",
    codec=_optional(INT),
    check=_optional_check(_int_at_least(1)),
    resumable=True,
  )
  checkpoint_every: int | None = setting(
    None,
    "steps between checkpoints (none: only at the end, when a checkpoint path is given)",
    codec=_optional(INT),
    check=_optional_check(_int_at_least(1)),
    resumable=True,
  )

  def config(self) -> StyleConfig:
    """The preset with this section's overrides: its ``loss``, ``network`` and ``images.style_scale`` are used."""
    overrides = {k: getattr(self, k) for k in ("content_weight", "style_weight", "tv_weight")}
    return presets.get(self.preset, **{k: v for k, v in overrides.items() if v is not None})

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, record: Mapping[str, Any]) -> TrainSettings:
    return cls(**record)


def _resumable() -> set[str]:
  return {f.name for f in dataclasses.fields(TrainSettings) if f.metadata["resumable"]}


# --------------------------------------------------------------------------- data


def load_images(folder: str | os.PathLike, *, min_side: int | None = None) -> list[np.ndarray]:
  """Every image file of a folder (not its subfolders), sorted by name.

  Args:
    folder: a directory of photographs.
    min_side: refuse images whose short side is smaller than this.

  Returns:
    a list of ``(H, W, 3)`` float32 RGB in [0, 1].

  Raises:
    InputError: not a folder, no images in it, an unreadable or too small image (one line).
  """
  folder = Path(folder)
  if not folder.is_dir():
    raise InputError(f"{folder}: not a folder of images")
  paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
  if not paths:
    raise InputError(f"{folder}: no images there (looked for {', '.join(IMAGE_SUFFIXES)})")
  out = []
  for p in paths:
    im = imageio.load_image(p)
    if min_side is not None and min(im.shape[:2]) < min_side:
      raise InputError(f"{p}: {im.shape[1]}x{im.shape[0]} px is smaller than the {min_side} px crop")
    out.append(im)
  return out


def _as_images(images: Sequence[ArrayLike], what: str) -> list[np.ndarray]:
  out = []
  for i, im in enumerate(images):
    a = np.asarray(im, np.float32)
    if a.ndim != 3 or a.shape[-1] != 3:
      raise InputError(f"{what} {i} must be (H, W, 3), got shape {a.shape}")
    out.append(a)
  if not out:
    raise InputError(f"no {what}s given")
  return out


def prepare_photos(photos: Sequence[ArrayLike], settings: TrainSettings) -> list[np.ndarray]:
  """Content photographs checked and downscaled once so that the short side is at most
  ``round(max_scale * size)`` (crops never need more); ``(H, W, 3)`` float32 each."""
  photos = _as_images(photos, "content image")
  cap = max(settings.size, round(settings.max_scale * settings.size))
  out = []
  for i, im in enumerate(photos):
    h, w = im.shape[:2]
    if min(h, w) < settings.size:
      raise InputError(f"content image {i} is {w}x{h} px, smaller than the {settings.size} px crop")
    if min(h, w) > cap:
      s = cap / min(h, w)
      im = imageio.resize(im, (max(cap, round(h * s)), max(cap, round(w * s))))
    out.append(im)
  return out


def sample_crops(photos: Sequence[np.ndarray], step: int, settings: TrainSettings) -> np.ndarray:
  """The crops of one step, a pure function of ``(settings.seed, step)``.

  Args:
    photos: from :func:`prepare_photos`.
    step: the step number (0-based).
    settings: ``batch``, ``size``, ``max_scale``, ``flip``, ``seed``.

  Returns:
    ``(batch, size, size, 3)`` float32.
  """
  rng = np.random.default_rng([settings.seed, step])
  size = settings.size
  out = np.empty((settings.batch, size, size, 3), np.float32)
  for b in range(settings.batch):
    # Every draw is made whatever the settings, so that each crop's randomness is fixed by (seed, step, b).
    i, u, fy, fx, flip = rng.integers(len(photos)), rng.random(), rng.random(), rng.random(), rng.random()
    im = photos[i]
    h, w = im.shape[:2]
    short = min(h, w)
    top_short = min(short, round(settings.max_scale * size))
    target = size + u * (top_short - size)  # the short side after scaling
    side = min(short, max(size, round(size * short / target)))  # the crop's side before scaling
    y, x = round(fy * (h - side)), round(fx * (w - side))
    crop = im[y : y + side, x : x + side]
    if side != size:
      crop = imageio.resize(crop, (size, size))
    if settings.flip and flip < 0.5:
      crop = crop[:, ::-1]
    out[b] = crop
  return out


def _fingerprint(images: Sequence[np.ndarray]) -> str:
  h = hashlib.sha256()
  for im in images:
    a = np.ascontiguousarray(im, np.float32)
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


# --------------------------------------------------------------------------- objective


class ObjectiveForm(NamedTuple):
  """The static, hashable part of an objective: what its compiled programs depend on besides shapes."""

  spec: losses.LossSpec
  pooling: str
  layers: tuple[str, ...]
  content_layers: tuple[str, ...]


class Objective(NamedTuple):
  """The arrays of a preset's objective for one style (a pytree; its :class:`ObjectiveForm` goes beside it).

  Attributes:
    vgg: VGG19 params prepared for the preset's convolution algorithm.
    grams: the style image's Gram matrices ``(1, C, C)`` by layer.
    weights: the loss weights.
    pool_gains: ``(5,)`` or ``None`` (see :func:`jaxstyle.vgg.pool_gains`).
  """

  vgg: dict
  grams: dict
  weights: losses.LossWeights
  pool_gains: jax.Array | None


def make_objective(
  vgg_params: Mapping, style_image: ArrayLike, settings: TrainSettings
) -> tuple[Objective, ObjectiveForm]:
  """The objective of ``settings.preset`` against one style image.

  Args:
    vgg_params: VGG19 params.
    style_image: ``(H, W, 3)`` RGB in [0, 1]; resized so that its long side is ``settings.style_size`` (default
      ``size`` times the preset's ``style_scale``) before its Gram matrices are taken.
    settings: the training settings.

  Returns:
    ``(objective, form)``: the arrays and the :class:`ObjectiveForm`.
  """
  config = settings.config()
  loss, net = config.loss, config.network
  style = _as_images([style_image], "style image")[0]
  side = settings.style_size or max(1, round(settings.size * config.images.style_scale))
  style = imageio.resize(style, side)
  need = max(vgg.layer_stride(n) for n in loss.layers)
  if min(style.shape[:2]) < need:
    raise InputError(f"style image is {style.shape[1]}x{style.shape[0]} px at {side} px, too small (needs {need})")
  params = vgg.prepare(vgg_params, net.conv, layers=loss.layers)
  gains = None
  if net.native_pooling is not None and net.native_pooling != net.pooling:
    # No content image is fixed here, so the gains are measured on the style image.
    gains = vgg.pool_gains(params, jnp.asarray(style)[None], native=net.native_pooling, pooling=net.pooling)
  static = ObjectiveForm(
    spec=loss.spec(),
    pooling=net.pooling,
    layers=loss.layers,
    content_layers=tuple(dict.fromkeys(vgg.canonical_layer(n) for n, _ in loss.content_layers)),
  )
  style_layers = tuple(vgg.canonical_layer(n) for n, _ in loss.style_layers)
  grams = _style_grams(params, jnp.asarray(style)[None], gains, static, style_layers)
  return Objective(params, grams, loss.weights(), gains), static


@functools.partial(jax.jit, static_argnums=(3, 4))
def _style_grams(params, style, gains, static: ObjectiveForm, style_layers: tuple[str, ...]) -> dict:
  if not style_layers:
    return {}
  feats = vgg.extract_features(params, style, style_layers, pooling=static.pooling, pool_gains=gains)
  return {k: losses.gram_matrix(v, normalize=static.spec.gram_norm) for k, v in feats.items()}


def batch_objective(
  objective: Objective, static: ObjectiveForm, outputs: jax.Array, contents: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The objective of each stylized image against its own content.

  Args:
    objective: from :func:`make_objective`.
    static: from :func:`make_objective`.
    outputs: ``(N, H, W, 3)`` the network's outputs.
    contents: ``(N, H, W, 3)`` the images they were made from.

  Returns:
    ``(total, parts)``: ``(N,)`` and the weighted ``(N,)`` parts ``content``, ``style``, ``tv``.
  """
  kw = {"pooling": static.pooling, "pool_gains": objective.pool_gains}
  content = {}
  if static.content_layers:
    content = jax.lax.stop_gradient(vgg.extract_features(objective.vgg, contents, static.content_layers, **kw))
  feats = vgg.extract_features(objective.vgg, outputs, static.layers, **kw)
  return losses.total_loss(feats, content, objective.grams, outputs, objective.weights, static.spec)


def _stylize(transformer_params: Mapping, vector: jax.Array, x: jax.Array) -> jax.Array:
  return magenta.transfer(transformer_params, x, jnp.broadcast_to(vector[None], (x.shape[0], vector.shape[-1])))


@functools.partial(jax.jit, static_argnums=1)
def _eval_one(objective: Objective, static: ObjectiveForm, transformer_params, vector, image):
  x = image[None]
  total, parts = batch_objective(objective, static, _stylize(transformer_params, vector, x), x)
  return {"total": total[0], **{k: v[0] for k, v in parts.items()}}


def eval_images(images: Sequence[ArrayLike], size: int) -> list[np.ndarray]:
  """Held-out images resized so that their long side is ``size`` (how :func:`evaluate` sees them)."""
  return [imageio.resize(im, size) for im in _as_images(images, "evaluation image")]


def evaluate(
  transformer_params: Mapping,
  vector: ArrayLike,
  images: Sequence[ArrayLike],
  objective: Objective,
  static: ObjectiveForm,
  *,
  size: int | None = None,
) -> dict[str, float]:
  """The mean objective of a transformer and style vector over whole images.

  Args:
    transformer_params: :class:`~jaxstyle.magenta.Transformer` params.
    vector: ``(D,)`` the style vector.
    images: ``(H, W, 3)`` RGB in [0, 1] each.
    objective, static: from :func:`make_objective`.
    size: resize each image so that its long side is ``size`` first (``None``: as given).

  Returns:
    ``{"total", "content", "style", "tv"}``, each the mean over the images.
  """
  images = eval_images(images, size) if size is not None else _as_images(images, "evaluation image")
  vector = jnp.asarray(vector, jnp.float32)
  per = [_eval_one(objective, static, transformer_params, vector, jnp.asarray(im)) for im in images]
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
  objective, static = make_objective(vgg_params, style_image, settings)
  vector = magenta.predict_style(predictor_params, np.asarray(style_image, np.float32))
  return evaluate(transformer_params, vector, images, objective, static, size=settings.size)


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
  labels = lambda tree: jax.tree_util.tree_map_with_path(lambda p, _: _label(p, train), tree)
  return optax.multi_transform({"train": optax.adam(lr), "frozen": optax.set_to_zero()}, labels)


@functools.lru_cache(maxsize=16)
def _step_fn(static: ObjectiveForm, lr: float, train: str) -> Callable:
  """One compiled training step, cached so that runs with the same settings share it."""
  opt = _optimizer(lr, train)

  def loss_fn(params, crops, objective):
    out = _stylize(params["transformer"], params["vector"], crops)
    total, parts = batch_objective(objective, static, out, crops)
    return jnp.mean(total), {k: jnp.mean(v) for k, v in parts.items()}

  def step(state, crops, objective):
    params, opt_state = state
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, crops, objective)
    updates, opt_state = opt.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), {"loss": loss, **parts}

  return jax.jit(step, donate_argnums=0)


# --------------------------------------------------------------------------- progress, results, checkpoints


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
    transformer_params: the trained :class:`~jaxstyle.magenta.Transformer` params (NumPy leaves).
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


class Checkpoint(NamedTuple):
  """A training run's state as :func:`load_checkpoint` reads it."""

  params: dict  # {"transformer": ..., "vector": ...}, NumPy leaves
  opt_state_leaves: list[np.ndarray]
  step: int
  history: dict[str, np.ndarray]
  evals: list[dict[str, float]]
  settings: dict
  fingerprints: dict[str, str]


def _flat(tree: Mapping) -> dict[str, np.ndarray]:
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


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
  """Writes a training checkpoint (``.npz``, read back with ``allow_pickle=False``) atomically.

  Args:
    path: the file.
    params: ``{"transformer": ..., "vector": ...}``.
    opt_state: the optimizer state (its leaves are stored in ``jax.tree`` order).
    step: steps done.
    settings: the run's settings (recorded; checked on resume).
    history: per-step arrays, as :class:`TrainResult`'s.
    evals: the evaluations so far.
    fingerprints: digests of the style and content images (checked on resume).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  flat = _flat(params)
  arrays = {f"param_{i}": a for i, a in enumerate(flat.values())}
  arrays.update({f"opt_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(opt_state))})
  arrays.update({f"history_{k}": np.asarray(v) for k, v in history.items()})
  record = {
    "version": CHECKPOINT_VERSION,
    "settings": settings.to_dict(),
    "param_names": list(flat),
    "num_opt": len(jax.tree.leaves(opt_state)),
    "evals": [dict(e) for e in evals],
    "fingerprints": dict(fingerprints or {}),
    # Crops are drawn from (seed, step), so seed and step are the whole random state.
    "rng": {"kind": "numpy.default_rng([seed, step])", "seed": settings.seed},
  }
  with imageio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, step=np.int64(step), record=np.asarray(json.dumps(record, sort_keys=True)), **arrays)
  return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
  """Reads a checkpoint written by :func:`save_checkpoint` (no pickles).

  Raises:
    CheckpointError: missing or corrupt file (one line).
  """
  path = Path(path)
  if not path.is_file():
    raise CheckpointError(f"{path}: no checkpoint there")
  try:
    with np.load(path, allow_pickle=False) as z:
      record = json.loads(str(z["record"]))
      if record.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {record.get('version')} is not {CHECKPOINT_VERSION}")
      flat = {name: z[f"param_{i}"] for i, name in enumerate(record["param_names"])}
      opt = [z[f"opt_{i}"] for i in range(int(record["num_opt"]))]
      history = {k[len("history_") :]: z[k] for k in z.files if k.startswith("history_")}
      step = int(z["step"])
  except CheckpointError:
    raise
  except (OSError, KeyError, ValueError, EOFError, TypeError) as e:
    raise CheckpointError(f"{path}: corrupt checkpoint ({' '.join(str(e).split())})") from None
  params = traverse_util.unflatten_dict(flat, sep="/")
  return Checkpoint(params, opt, step, history, record["evals"], record["settings"], record["fingerprints"])


def _check_resume(ckpt: Checkpoint, params: Mapping, opt_state: Any, settings: TrainSettings, prints: dict, where):
  now, saved = settings.to_dict(), ckpt.settings
  may_change = _resumable()
  differ = sorted(k for k in set(now) | set(saved) if k not in may_change and now.get(k) != saved.get(k))
  if differ:
    raise CheckpointError(f"{where}: made with other settings ({', '.join(differ)} differ)")
  for k, v in prints.items():
    if ckpt.fingerprints.get(k) != v:
      raise CheckpointError(f"{where}: made with other {k} images")
  if ckpt.step > settings.steps:
    raise CheckpointError(f"{where}: already at step {ckpt.step}, past steps {settings.steps}")
  want, got = _flat(params), _flat(ckpt.params)
  if list(want) != list(got) or any(want[k].shape != got[k].shape for k in want):
    raise CheckpointError(f"{where}: its network has other params than the one given")
  leaves, treedef = jax.tree.flatten(opt_state)
  if len(leaves) != len(ckpt.opt_state_leaves) or any(
    np.shape(a) != np.shape(b) for a, b in zip(leaves, ckpt.opt_state_leaves, strict=True)
  ):
    raise CheckpointError(f"{where}: its optimizer state does not fit these settings")
  return treedef.unflatten([np.asarray(x) for x in ckpt.opt_state_leaves])


# --------------------------------------------------------------------------- training


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
  resume: str | os.PathLike | Checkpoint | None = None,
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
    predictor_params: :class:`~jaxstyle.magenta.StylePredictor` params, for the initial vector.
    transformer_params: the initial :class:`~jaxstyle.magenta.Transformer` params (pretrained).
    vector: the initial ``(D,)`` style vector instead of the predicted one (then ``predictor_params`` may be
      omitted).
    eval_images: held-out ``(H, W, 3)`` images evaluated every ``eval_every`` steps and at the end.
    callback: receives a :class:`TrainProgress`.
    resume: a checkpoint (path or :func:`load_checkpoint`'s result) to continue from.
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
  photos = prepare_photos(content_images, settings)
  style = _as_images([style_image], "style image")[0]
  objective, static = make_objective(vgg_params, style, settings)
  held_out = eval_images_for(eval_images, settings, static) if eval_images is not None else None
  if vector is None:
    if predictor_params is None:
      raise InputError("give predictor_params (to predict the initial vector) or the vector itself")
    vector = magenta.predict_style(predictor_params, style)
  vector = np.asarray(vector, np.float32)
  magenta_weights.check_params(transformer_params, magenta.transformer_of(transformer_params), where="transformer")
  # Host copies, so that donating the state never consumes the caller's arrays.
  params = {"transformer": jax.tree.map(np.array, dict(transformer_params)), "vector": np.array(vector)}
  opt = make_optimizer(settings)
  opt_state = opt.init(params)
  prints = {"style": _fingerprint([style]), "content": _fingerprint(photos)}
  start, history, evals = 0, {k: [] for k in ("loss", "content", "style", "tv")}, []
  if resume is not None:
    ckpt = resume if isinstance(resume, Checkpoint) else load_checkpoint(resume)
    where = resume if not isinstance(resume, Checkpoint) else "checkpoint"
    opt_state = _check_resume(ckpt, params, opt_state, settings, prints, where)
    params = jax.tree.map(np.array, ckpt.params)
    start, evals = ckpt.step, [dict(e) for e in ckpt.evals]
    history = {k: list(np.asarray(ckpt.history.get(k, np.zeros(0)))[:start]) for k in history}

  mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
  state = jax.device_put((params, opt_state), replicated)
  objective = jax.device_put(objective, replicated)
  step_fn = _step_fn(static, float(settings.lr), settings.train)

  def current_params():  # copies: the next step donates these buffers
    return jax.tree.map(np.array, state[0])

  def run_eval(step: int) -> dict[str, float]:
    p = current_params()
    out = {"step": step, **evaluate(p["transformer"], p["vector"], held_out, objective, static)}
    evals.append(out)
    return out

  pending: list[dict] = []  # device scalars, fetched at reports so that steps are dispatched ahead

  def flush():
    for m in jax.device_get(pending):
      for k in history:
        history[k].append(float(m[k]))
    pending.clear()

  def save(step: int):
    flush()
    hist = {"step": np.arange(1, step + 1), **{k: np.asarray(v, np.float32) for k, v in history.items()}}
    save_checkpoint(
      checkpoint, state[0], state[1], step, settings=settings, history=hist, evals=evals, fingerprints=prints
    )

  t0 = time.perf_counter()
  compile_s, t_first = 0.0, None
  step, stopped = start, False
  while step < settings.steps:
    crops = jax.device_put(sample_crops(photos, step, settings), sharded)
    state, metrics = step_fn(state, crops, objective)
    pending.append(metrics)
    step += 1
    if t_first is None:
      jax.block_until_ready(metrics)
      t_first = time.perf_counter()
      compile_s = t_first - t0
    elif len(pending) > 1:
      # One step in flight (the host draws the next crops meanwhile), no more: `stop` then acts within a step.
      jax.block_until_ready(pending[-2])
    stopped = stop is not None and step < settings.steps and bool(stop())
    last = step == settings.steps or stopped
    ev = None
    if held_out is not None and (last or (settings.eval_every and step % settings.eval_every == 0)):
      ev = run_eval(step)
    if checkpoint is not None and (last or (settings.checkpoint_every and step % settings.checkpoint_every == 0)):
      save(step)
    if callback is not None and (last or ev is not None or step % settings.report_every == 0):
      flush()
      now = time.perf_counter()
      rate = (step - start - 1) / (now - t_first) if step - start > 1 and now > t_first else 0.0
      parts = {k: history[k][-1] for k in ("content", "style", "tv")}
      callback(TrainProgress(step, settings.steps, history["loss"][-1], parts, rate, now - t0, ev))
    if stopped:
      break
  flush()
  if held_out is not None and (not evals or evals[-1]["step"] != step):
    run_eval(step)  # a run with nothing left to do still reports its network
  end = time.perf_counter()
  run_s = end - (t_first or end)
  final = current_params()
  return TrainResult(
    transformer_params=final["transformer"],
    vector=final["vector"],
    steps_done=step,
    stopped=stopped,
    history={"step": np.arange(1, step + 1), **{k: np.asarray(v, np.float32) for k, v in history.items()}},
    evals=evals,
    timings={
      "compile_s": compile_s,
      "run_s": run_s,
      "steps_per_second": (step - start - 1) / run_s if step - start > 1 and run_s > 0 else 0.0,
      "devices": len(devices),
    },
  )


def eval_images_for(images: Sequence[ArrayLike], settings: TrainSettings, static: ObjectiveForm) -> list[np.ndarray]:
  """Held-out images at ``settings.size`` (long side), checked against the deepest layer's stride."""
  out = eval_images(images, settings.size)
  need = max(max(vgg.layer_stride(n) for n in static.layers), magenta.MIN_SIDE)
  for i, im in enumerate(out):
    if min(im.shape[:2]) < need:
      raise InputError(
        f"evaluation image {i} is {im.shape[1]}x{im.shape[0]} px at size {settings.size}; "
        f"both sides need at least {need}"
      )
  return out


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
  :mod:`jaxstyle.magenta_weights`' layout and dataset ``vector``.

  Root attributes: ``format`` (``jaxstyle-magenta-trained``), ``format_version`` (1), ``settings`` (JSON),
  ``style`` (the style's name), ``style_path``, ``steps_done``, ``transformer_config`` (JSON), ``source``,
  ``license``, ``input``, and ``attrs``.
  """
  import h5py

  model = magenta.transformer_of(transformer_params)
  params = magenta_weights.check_params(transformer_params, model, where="transformer params")
  v = np.asarray(vector, np.float32)
  if v.shape != (model.style_dim,) or not np.all(np.isfinite(v)):
    raise WeightsError(f"vector must be ({model.style_dim},) finite float32, got {v.dtype}{list(v.shape)}")
  if style_name is None:
    style_name = Path(style_path).stem if style_path is not None else "unnamed"
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with imageio.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
    f.attrs.update(
      format=FORMAT_TRAINED,
      format_version=FORMAT_VERSION,
      settings=json.dumps(settings.to_dict(), sort_keys=True),
      style=style_name,
      style_path=os.fspath(style_path) if style_path is not None else "",
      steps_done=-1 if steps_done is None else int(steps_done),
      transformer_config=json.dumps(magenta.model_config(model)),
      source=f"jaxstyle.train from Magenta's arbitrary-style transformer ({magenta_weights.WHEEL_REQUIREMENT})",
      license=magenta_weights.LICENSE,
      input=magenta_weights.INPUT,
      **dict(attrs or {}),
    )
    for name, arr in _flat(params).items():
      f.create_dataset(f"transformer/{name}", data=arr)
    f.create_dataset("vector", data=v)
  return path


def load_model(path: str | os.PathLike, *, with_attrs: bool = False):
  """Reads a file written by :func:`save_model`, checking every leaf against the network's own shapes.

  Returns:
    ``(transformer_params, vector)`` as ``jax.Array`` trees; with ``with_attrs`` also the root attributes
    (``settings`` and ``transformer_config`` decoded).

  Raises:
    WeightsError: missing, foreign, corrupt or mis-shaped file (one line).
  """
  import h5py

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise WeightsError(f"{path}: no trained model there")
  try:
    with h5py.File(path, "r") as f:
      attrs = {k: (v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v) for k, v in f.attrs.items()}
      if attrs.get("format") != FORMAT_TRAINED:
        raise WeightsError(f"{path}: not a {FORMAT_TRAINED} file (format {attrs.get('format')!r})")
      if attrs.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path}: format version {attrs.get('format_version')} is not {FORMAT_VERSION}")
      group, vec = f.get("transformer"), f.get("vector")
      if not isinstance(group, h5py.Group) or not isinstance(vec, h5py.Dataset):
        raise WeightsError(f"{path}: no transformer group or vector")
      flat = {}
      group.visititems(lambda n, o: flat.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
      vector = np.asarray(vec[()])
      for k in ("settings", "transformer_config"):
        attrs[k] = json.loads(attrs[k])
  except WeightsError:
    raise
  except (OSError, KeyError, ValueError, TypeError) as e:
    raise WeightsError(f"{path}: corrupt or truncated model file ({' '.join(str(e).split())})") from None
  try:
    model = magenta.model_from_config(magenta.Transformer, attrs["transformer_config"])
  except (KeyError, TypeError) as e:
    raise WeightsError(f"{path}: bad transformer_config attribute ({e})") from None
  params = magenta_weights.check_params(traverse_util.unflatten_dict(flat, sep="/"), model, where=path)
  if vector.shape != (model.style_dim,) or vector.dtype != np.float32 or not np.all(np.isfinite(vector)):
    raise WeightsError(f"{path}: vector is {vector.dtype}{list(vector.shape)}, expected float32[{model.style_dim}]")
  out = (jax.tree.map(jnp.asarray, params), jnp.asarray(vector))
  return (*out, attrs) if with_attrs else out
