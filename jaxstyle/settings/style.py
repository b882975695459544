"""The settings of a stylization by optimization: five sections, one per concern, in :class:`StyleConfig`.

:class:`LossSettings` (layers, weights, forms), :class:`OptimizerSettings`, :class:`ImageSettings` (sizes,
colour, start, masks), :class:`NetworkSettings` (pooling, convolution algorithm, tiles) and
:class:`RunSettings` (steps, intervals). ``config.set(steps=100, style_weight=1e4)`` routes flat field names
to their sections; :meth:`StyleConfig.resolve` turns what is decided at run time (``scales="auto"``) into
what runs, and :meth:`StyleConfig.form` gives the objective's form. Every field is declared once
(:func:`~jaxstyle.settings.fields.setting`); see :mod:`jaxstyle.settings.fields` for what follows from it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np

from jaxstyle.errors import InputError
from jaxstyle.nets import vgg
from jaxstyle.objective import losses
from jaxstyle.objective.targets import Form
from jaxstyle.settings.fields import (
  Codec,
  Settings,
  at_least,
  codec_for,
  each,
  finite_nonneg,
  increasing,
  positive,
  setting,
  unit,
)

Optimizer = Literal["lbfgs", "adam"]
LineSearch = Literal["backtracking", "zoom"]
ColorMode = Literal["none", "luminance", "histogram"]
Pooling = Literal["max", "avg", "maxblur"]
InitKind = Literal["content", "noise", "gray", "mean", "style", "fast"]
OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)
LINE_SEARCHES: tuple[str, ...] = typing.get_args(LineSearch)
COLOR_MODES: tuple[str, ...] = typing.get_args(ColorMode)
POOLINGS: tuple[str, ...] = typing.get_args(Pooling)
INIT_KINDS: tuple[str, ...] = typing.get_args(InitKind)
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
_SPEC = losses.LossSpec()  # the loss forms' defaults are declared once, there


def _parse_layers(text: str) -> tuple[tuple[str, float], ...]:
  if text.strip().lower() == "none":
    return ()
  out = []
  for item in text.split(","):
    item = item.strip()
    if item:
      name, _, w = item.partition(":")
      out.append((name.strip(), float(w) if w.strip() else 1.0))
  return tuple(out)


def _is_layers(v: Any) -> bool:
  return isinstance(v, tuple) and all(
    isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (int, float)) for p in v
  )


LAYERS = Codec(
  _parse_layers,
  lambda v: ",".join(f"{n}:{float(w)!r}" for n, w in v) or "none",
  _is_layers,
  "L[:W],...|none",
  expected="layers with optional weights, e.g. relu1_1:1,relu2_1:0.75",
  kind="a tuple of (layer, weight) pairs",
)
Layers = Annotated[tuple[tuple[str, float], ...], LAYERS]  # (layer name, weight) pairs
# a tile side in px, "auto" or None; the codec of that type with a clearer message
Tile = Annotated[
  int | Literal["auto"] | None,
  dataclasses.replace(
    codec_for(int | Literal["auto"] | None), metavar="PX|auto|none", expected="a tile side in px, auto or none"
  ),
]
FilePath = Annotated[str, Codec(str, str, lambda v: isinstance(v, str) and v != "", "PATH", kind="a path")]
# Region maps, one per style image, as separate words: --style-regions sky.png ground.png
Regions = Annotated[
  tuple[str, ...],
  Codec(
    str,
    str,
    lambda v: isinstance(v, tuple) and all(isinstance(p, str) and p for p in v),
    "MAP",
    nargs="+",
    kind="a tuple of paths",
  ),  # fmt: skip
]


def _layers_check(v: Any) -> str | None:
  try:
    names = [vgg.canonical_layer(n) for n, _ in v]
  except ValueError as e:
    return f"names {e}"
  if len(set(names)) != len(names):
    return "names a layer twice"
  for _, w in v:
    if finite_nonneg(w):
      return f"has weight {w!r}; layer weights must be finite non-negative numbers"
  return None


def tile_check(v: Any) -> str | None:
  return None if v == "auto" or v >= 1 else "must be a positive integer (px), 'auto' or None"


@dataclasses.dataclass(frozen=True)
class LossSettings(Settings):
  """The objective: ``alpha * content + beta * style + tv_weight * TV`` (:mod:`jaxstyle.objective.losses`)."""

  content_layers: Layers = setting(
    (("relu4_2", 1.0),), "content layers and weights, e.g. relu4_2 or relu4_2:1,relu5_2:0.5", check=_layers_check
  )
  style_layers: Layers = setting(
    tuple((n, 1.0) for n in vgg.STYLE_LAYERS),
    "style layers and weights, e.g. relu1_1:1,relu2_1:0.75",
    check=_layers_check,
  )
  content_weight: float = setting(1.0, "alpha, the content weight", check=finite_nonneg)
  style_weight: float = setting(1e3, "beta, the style weight", check=finite_nonneg)
  tv_weight: float = setting(0.0, "total-variation weight (TV on [0, 1] RGB)", check=finite_nonneg)
  gram_norm: losses.GramNorm = setting(_SPEC.gram_norm, "Gram matrix divided by nothing, H*W or C*H*W")
  content_reduction: losses.Reduction = setting(
    _SPEC.content_reduction, "content squared errors: sum, mean or half sum"
  )
  style_reduction: losses.Reduction = setting(_SPEC.style_reduction, "style squared Gram errors: sum, mean or half sum")
  style_layer_norm: losses.LayerNorm = setting(
    _SPEC.style_layer_norm, "divide each style layer's loss by its C*H*W (the PyTorch course)"
  )
  tv_kind: losses.TVKind = setting(_SPEC.tv_kind, "TV of absolute (l1) or squared (l2) differences")
  tv_reduction: losses.TVReduction = setting(_SPEC.tv_reduction, "TV summed or averaged")

  def __post_init__(self):
    for name in ("content_layers", "style_layers"):  # bare names weigh 1
      v = getattr(self, name)
      if isinstance(v, (tuple, list)):
        object.__setattr__(self, name, tuple((p, 1.0) if isinstance(p, str) else tuple(p) for p in v))
    super().__post_init__()

  def _check(self) -> None:
    if not self.content_layers and not self.style_layers:
      raise InputError("content_layers and style_layers are both empty; at least one layer is needed")

  @property
  def layers(self) -> tuple[str, ...]:
    """Canonical names of every layer the objective reads."""
    names = [vgg.canonical_layer(n) for n, _ in self.content_layers + self.style_layers]
    return tuple(dict.fromkeys(names))

  def weights(self) -> losses.LossWeights:
    """The differentiable weights as a :class:`~jaxstyle.objective.losses.LossWeights` pytree of float32 scalars."""
    f32 = np.float32
    return losses.LossWeights(
      content=f32(self.content_weight),
      style=f32(self.style_weight),
      tv=f32(self.tv_weight),
      content_layers={vgg.canonical_layer(n): f32(w) for n, w in self.content_layers},
      style_layers={vgg.canonical_layer(n): f32(w) for n, w in self.style_layers},
    )

  def spec(self) -> losses.LossSpec:
    """The static form of the objective."""
    return losses.LossSpec(
      gram_norm=self.gram_norm,
      content_reduction=self.content_reduction,
      style_reduction=self.style_reduction,
      style_layer_norm=self.style_layer_norm,
      tv_kind=self.tv_kind,
      tv_reduction=self.tv_reduction,
    )


@dataclasses.dataclass(frozen=True)
class OptimizerSettings(Settings):
  """How the image is optimized; every kind goes through one optax step (:mod:`jaxstyle.optim.step`)."""

  kind: Optimizer = setting("lbfgs", "lbfgs or adam", flag="--optimizer")
  learning_rate: float | None = setting(
    None,
    "Adam's step in [0, 1] pixel units; scales L-BFGS's line-searched step (none: 1 for L-BFGS, 0.02 for Adam)",
    check=positive,
    flag="--lr",
  )
  line_search: LineSearch = setting(
    "backtracking", "L-BFGS line search: backtracking (Armijo, cheap under vmap) or zoom (optax's strong Wolfe)"
  )
  memory: int = setting(
    100, "L-BFGS correction pairs (each holds two images)", check=at_least(1), flag="--lbfgs-memory"
  )
  b1: float = setting(0.9, "Adam's first-moment decay", check=unit, flag="--adam-b1")
  b2: float = setting(0.999, "Adam's second-moment decay", check=unit, flag="--adam-b2")
  eps: float = setting(1e-8, "Adam's epsilon", check=positive, flag="--adam-eps")
  clip: bool = setting(False, "project the image onto [0, 1] after every step")

  @property
  def lr(self) -> float:
    """The learning rate in effect."""
    return DEFAULT_LR[self.kind] if self.learning_rate is None else float(self.learning_rate)


@dataclasses.dataclass(frozen=True)
class PictureSettings(Settings):
  """What both pipelines share about pictures: the output's size, several styles' blend, colour, a mask."""

  size: int | None = setting(512, "longest side of the output in px (none: the content's own size)", check=at_least(1))
  style_blend: tuple[float, ...] | None = setting(
    None, "weights of several style images (none: equal)", check=each(finite_nonneg)
  )
  preserve_color: ColorMode = setting(
    "none", "keep the content's colours: transfer luminance only, or match the style's colours first"
  )
  mask: FilePath | None = setting(None, "mask image: white stylizes, black keeps the content")

  def _check(self) -> None:
    if self.style_blend is not None and sum(self.style_blend) <= 0:
      raise InputError("style_blend weights must not all be zero")


@dataclasses.dataclass(frozen=True)
class ImageSettings(PictureSettings):
  """Sizes, colour, the starting image, masks and region maps."""

  scales: tuple[int, ...] | Literal["auto"] | None = setting(
    None,
    "coarse-to-fine sizes, e.g. 256,512,1024, or 'auto' for a x2 ladder from 256 up to --size",
    check=lambda v: None if v == "auto" else (at_least(1)(v) or increasing(v)),
  )
  coarse_steps: int | tuple[int, ...] | None = setting(
    None,
    "steps at each scale but the last: one count for all, or one per coarse scale, e.g. 300,100,30 (none: --steps)",
    check=at_least(0),
  )
  style_scale: float = setting(1.0, "style image size relative to the content", check=positive)
  init: str = setting(
    "content",
    "start from: content, noise, gray, mean (the ImageNet mean pixel plus faint noise, as neural-style), style "
    "(noise with the style's colours), fast (the feed-forward network's output), or an image path",
    check=lambda v: None if v else "must be a non-empty string",
  )
  seed: int = setting(0, "random seed of the noise starts", check=at_least(0))
  style_regions: Regions | None = setting(None, "one region map per style image (white: that style applies there)")

  def _check(self) -> None:
    super()._check()
    if isinstance(self.coarse_steps, tuple) and self.scales != "auto":  # "auto" is checked once resolved
      coarse = len(self.scales or ()) - 1
      if len(self.coarse_steps) != coarse:
        raise InputError(
          f"coarse_steps has {len(self.coarse_steps)} counts for {max(coarse, 0)} coarse scales "
          "(give one count, or one per scale but the last)"
        )

  def resolve(self) -> ImageSettings:
    """With ``scales="auto"`` the ladder of :func:`auto_scales` up to ``size`` (one scale for ``size=None``)."""
    if self.scales != "auto":
      return self
    return self.replace(scales=None if self.size is None else auto_scales(self.size))

  @property
  def output_size(self) -> int | None:
    """The longest side of the result (the last scale, or ``size``)."""
    return self.scales[-1] if isinstance(self.scales, tuple) else self.size

  @property
  def init_is_image(self) -> bool:
    """``init`` names an image file."""
    return self.init not in INIT_KINDS


@dataclasses.dataclass(frozen=True)
class NetworkSettings(Settings):
  """The VGG19 as the objective runs it."""

  pooling: Pooling = setting("max", "VGG pooling: max, avg, or maxblur (anti-aliased max: no period-2 pattern)")
  native_pooling: Pooling | None = setting(
    None, "the pooling the loss weights were calibrated for; with the other one pool outputs are rescaled"
  )
  conv: vgg.ConvAlgorithm = setting(
    "auto", "VGG convolutions: auto (Winograd on CPU, direct on GPU/TPU), direct or winograd"
  )
  tile: Tile = setting(
    None,
    "run the VGG tile by tile (exact; memory bounded by the tile): a tile side in px, auto (only when the whole "
    "image does not fit in memory) or none",
    check=tile_check,
  )


@dataclasses.dataclass(frozen=True)
class RunSettings(Settings):
  """How long, and when to report and save. None of these changes the result."""

  steps: int = setting(500, "optimizer steps (at the last scale)", check=at_least(0), resumable=True)
  report_every: int = setting(25, "steps between progress reports and checkpoints", check=at_least(1), resumable=True)
  save_every: int | None = setting(None, "also write OUT_<step>.ext every N steps", check=at_least(1), resumable=True)
  chunk: int = setting(
    50,
    "most steps per compiled chunk (a chunk also ends where a report or save is due)",
    check=at_least(1),
    resumable=True,
  )


SECTIONS: dict[str, type[Settings]] = {
  "loss": LossSettings,
  "optimizer": OptimizerSettings,
  "images": ImageSettings,
  "network": NetworkSettings,
  "run": RunSettings,
}


@dataclasses.dataclass(frozen=True)
class StyleConfig(Settings):
  """Everything that defines a stylization. Start from a preset and :meth:`set` fields.

  Attributes:
    name: the preset it came from (``--preset``).
    loss, optimizer, images, network, run: the sections.
  """

  name: str = "custom"
  loss: LossSettings = dataclasses.field(default_factory=LossSettings)
  optimizer: OptimizerSettings = dataclasses.field(default_factory=OptimizerSettings)
  images: ImageSettings = dataclasses.field(default_factory=ImageSettings)
  network: NetworkSettings = dataclasses.field(default_factory=NetworkSettings)
  run: RunSettings = dataclasses.field(default_factory=RunSettings)

  def set(self, **changes: Any) -> StyleConfig:
    """A copy with fields changed by their flat names (``steps=100``, ``style_weight=1e4``)
    or whole sections (``run=RunSettings(...)``).

    Switching ``kind`` (the optimizer) without a ``learning_rate`` resets it to the new
    kind's default, since L-BFGS and Adam steps live on different scales.
    """
    top = {k: changes.pop(k) for k in list(changes) if k == "name" or k in SECTIONS}
    for k, v in top.items():
      if k in SECTIONS and not isinstance(v, SECTIONS[k]):
        hint = " (the optimizer's kind is set with kind=...)" if k == "optimizer" else ""
        raise InputError(f"{k} takes a {SECTIONS[k].__name__}, not {v!r}{hint}")
    config = dataclasses.replace(self, **top) if top else self
    per: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
      section = _OWNER.get(key)
      if section is None:
        raise InputError(f"unknown setting {key!r}")
      per.setdefault(section, {})[key] = value
    opt = per.get("optimizer", {})
    if "kind" in opt and opt["kind"] != config.optimizer.kind and "learning_rate" not in opt:
      opt["learning_rate"] = None
    for section, values in per.items():
      config = dataclasses.replace(config, **{section: getattr(config, section).replace(**values)})
    return config

  def resolve(self) -> StyleConfig:
    """The config as it runs: ``scales="auto"`` replaced by the sizes of its ladder. Records, checkpoints and
    reproduction commands hold resolved configs."""
    images = self.images.resolve()
    return self if images is self.images else dataclasses.replace(self, images=images)

  @property
  def layers(self) -> tuple[str, ...]:
    return self.loss.layers

  def form(self) -> Form:
    """The objective's form (:class:`~jaxstyle.objective.targets.Form`)."""
    canon = lambda layers: tuple(dict.fromkeys(vgg.canonical_layer(n) for n, _ in layers))  # noqa: E731
    return Form(
      spec=self.loss.spec(),
      pooling=self.network.pooling,
      content_layers=canon(self.loss.content_layers),
      style_layers=canon(self.loss.style_layers),
      native_pooling=self.network.native_pooling,
    )

  @classmethod
  def from_dict(cls, record: Mapping[str, Any]) -> StyleConfig:
    """The inverse of :meth:`to_dict`."""
    return dataclasses.replace(super().from_dict(record), name=record.get("name", "custom"))

  def flat(self) -> dict[str, Any]:
    """Every field by its flat name."""
    return {"name": self.name, **{d.field: self.value(d) for d in self.declarations()}}


_OWNER = {d.field: d.section for d in StyleConfig.declarations()}


def auto_scales(size: int, *, start: int = 256, factor: float = 2.0) -> tuple[int, ...]:
  """A geometric coarse-to-fine ladder ending at ``size``: ``auto_scales(1024) == (256, 512, 1024)``."""
  out = [size]
  while out[-1] / factor >= start:
    out.append(round(out[-1] / factor))
  return tuple(reversed(out))
