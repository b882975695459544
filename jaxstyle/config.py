"""Settings of a stylization: one frozen dataclass, validated, convertible to loss pytrees."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp

from jaxstyle import losses, vgg

OPTIMIZERS = ("lbfgs", "adam")
POOLINGS = ("max", "avg")
INITS = ("content", "noise", "gray", "style")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
  """Everything that defines a stylization. Start from a preset and ``replace`` fields.

  Layer names are canonical VGG19 names or aliases (see :func:`jaxstyle.vgg.canonical_layer`).

  Attributes:
    name: the preset this config came from, for the record.
    content_layers: layers whose activations are matched to the content image.
    content_layer_weights: one weight per content layer (default all 1).
    style_layers: layers whose Gram matrices are matched to the style image.
    style_layer_weights: one weight per style layer (default all 1).
    content_weight: alpha.
    style_weight: beta.
    tv_weight: weight of the total-variation term (computed on [0, 1] RGB).
    gram_norm: Gram normalisation, ``"none"``, ``"hw"`` or ``"chw"``.
    content_reduction: ``"mean"``, ``"sum"`` or ``"half_sum"`` of squared errors.
    style_reduction: ``"mean"``, ``"sum"`` or ``"half_sum"`` over Gram entries.
    style_layer_norm: ``"none"``, or ``"chw"`` to divide each style layer's loss by
      that layer's C*H*W (the PyTorch course's formula).
    tv_kind: ``"l1"`` or ``"l2"``.
    tv_reduction: ``"sum"`` or ``"mean"``.
    optimizer: ``"lbfgs"`` or ``"adam"``.
    lbfgs_linesearch: ``"backtracking"`` (Armijo; one loss-and-gradient per step when
      the full step is accepted, cheap under ``vmap``: :mod:`jaxstyle.lbfgs`) or
      ``"zoom"`` (optax's strong-Wolfe line search).
    learning_rate: Adam's step size in [0, 1] pixel units; L-BFGS scales its
      line-searched step by it (1.0 leaves the line search alone).
    adam_b1, adam_b2, adam_eps: Adam's moment decays and epsilon.
    lbfgs_memory: number of L-BFGS correction pairs (100, as torch's L-BFGS and the
      Torch7 ``optim.lbfgs`` of Gatys-era code keep: on pastiche's objective at 256 px,
      300 steps reach what 385 steps reach with 10, bench/RESULTS.md). Each pair stores two images.
    steps: optimizer steps.
    size: longest side of the content image in px (``None``: keep the input size).
    style_scale: style image's longest side relative to the content's.
    style_blend: weights of several style images (normalised; default equal).
    preserve_color: ``"none"``, ``"luminance"`` (transfer on luminance, keep the
      content's chroma) or ``"histogram"`` (match the style's colour mean and covariance
      to the content's first); see :mod:`jaxstyle.color`.
    scales: coarse-to-fine longest sides, e.g. ``(256, 512, 1024)``; each scale runs
      ``steps`` steps from the upsampled result of the one before, and the last one is
      the output size (``size`` is ignored). ``None``: one scale, ``size``.
    coarse_steps: steps at each scale but the last (``None``: ``steps``). Cheap coarse
      steps settle the large structures: on pastiche's objective at 256 px, scales
      (64, 128, 256) with 100 coarse steps reached the loss of 300 single-scale steps in
      0.72x their time (bench/RESULTS.md).
    init: ``"content"``, ``"noise"`` (uniform white noise), ``"gray"``, ``"style"``
      (Gaussian noise with the style image's per-channel mean and spread), or an image path.
    seed: random seed for noise initialisation.
    pooling: ``"max"`` or ``"avg"``.
    conv: the VGG convolution algorithm: ``"direct"``, ``"winograd"`` (F(4x4, 3x3) on
      the layers at least 128 channels wide: a quarter of their multiplies, output within
      ~1e-5 of direct; :mod:`jaxstyle.winograd`), or ``"auto"`` (Winograd on CPU, direct
      on GPU/TPU whose libraries choose their own algorithms).
    native_pooling: the pooling the loss weights were calibrated with (presets set it).
      When ``pooling`` differs, pool outputs are rescaled so that activation magnitudes
      on the content image match the native pooling's (:func:`jaxstyle.vgg.pool_gains`)
      and the weights still fit. ``None``: never rescale.
    clip: project the image onto [0, 1] after every step (Adam) instead of only at
      the end.
    report_every: steps per compiled chunk; progress is reported between chunks.
  """

  name: str = "custom"
  content_layers: tuple[str, ...] = vgg.CONTENT_LAYERS
  content_layer_weights: tuple[float, ...] | None = None
  style_layers: tuple[str, ...] = vgg.STYLE_LAYERS
  style_layer_weights: tuple[float, ...] | None = None
  content_weight: float = 1.0
  style_weight: float = 1e3
  tv_weight: float = 0.0
  gram_norm: str = "chw"
  content_reduction: str = "half_sum"
  style_reduction: str = "sum"
  style_layer_norm: str = "none"
  tv_kind: str = "l1"
  tv_reduction: str = "sum"
  optimizer: str = "lbfgs"
  lbfgs_linesearch: str = "backtracking"
  learning_rate: float = 1.0
  adam_b1: float = 0.9
  adam_b2: float = 0.999
  adam_eps: float = 1e-8
  lbfgs_memory: int = 100
  steps: int = 500
  size: int | None = 512
  style_scale: float = 1.0
  style_blend: tuple[float, ...] | None = None
  preserve_color: str = "none"
  scales: tuple[int, ...] | None = None
  coarse_steps: int | None = None
  init: str = "content"
  seed: int = 0
  pooling: str = "max"
  native_pooling: str | None = None
  conv: str = "auto"
  clip: bool = False
  report_every: int = 25

  def replace(self, **changes: Any) -> StyleConfig:
    """A copy with some fields changed, validated."""
    return dataclasses.replace(self, **changes).validate()

  def validate(self) -> StyleConfig:
    """Checks every field; raises ``ValueError`` with a one-line message."""
    for field in ("content_layers", "style_layers"):
      names = getattr(self, field)
      if not isinstance(names, tuple):
        raise ValueError(f"{field} must be a tuple of layer names")
      for n in names:
        vgg.canonical_layer(n)
      if len(set(map(vgg.canonical_layer, names))) != len(names):
        raise ValueError(f"{field} names a layer twice")
    if not self.content_layers and not self.style_layers:
      raise ValueError("at least one content or style layer is needed")
    for field, layers in (("content_layer_weights", self.content_layers), ("style_layer_weights", self.style_layers)):
      w = getattr(self, field)
      if w is not None and len(w) != len(layers):
        raise ValueError(f"{field} has {len(w)} values for {len(layers)} layers")
      for v in w or ():
        _check_weight(field, v)
    for field in ("content_weight", "style_weight", "tv_weight"):
      _check_weight(field, getattr(self, field))
    _choice("gram_norm", self.gram_norm, losses.GRAM_NORMS)
    _choice("content_reduction", self.content_reduction, losses.REDUCTIONS)
    _choice("style_reduction", self.style_reduction, losses.REDUCTIONS)
    _choice("style_layer_norm", self.style_layer_norm, ("none", "chw"))
    _choice("tv_kind", self.tv_kind, losses.TV_KINDS)
    _choice("tv_reduction", self.tv_reduction, ("sum", "mean"))
    _choice("optimizer", self.optimizer, OPTIMIZERS)
    _choice("lbfgs_linesearch", self.lbfgs_linesearch, ("backtracking", "zoom"))
    _choice("pooling", self.pooling, POOLINGS)
    _choice("conv", self.conv, vgg.CONV_ALGORITHMS)
    if self.native_pooling is not None:
      _choice("native_pooling", self.native_pooling, POOLINGS)
    for field in ("learning_rate", "adam_eps", "style_scale"):
      v = getattr(self, field)
      if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ValueError(f"{field} must be a positive number, not {v!r}")
    for field in ("adam_b1", "adam_b2"):
      if not 0 <= getattr(self, field) < 1:
        raise ValueError(f"{field} must be in [0, 1)")
    for field in ("steps", "report_every", "lbfgs_memory"):
      v = getattr(self, field)
      if not isinstance(v, int) or isinstance(v, bool) or v < (0 if field == "steps" else 1):
        raise ValueError(f"{field} must be a {'non-negative' if field == 'steps' else 'positive'} integer, not {v!r}")
    if self.style_blend is not None:
      if not isinstance(self.style_blend, tuple) or not self.style_blend:
        raise ValueError("style_blend must be a non-empty tuple of weights")
      for v in self.style_blend:
        _check_weight("style_blend", v)
      if sum(self.style_blend) <= 0:
        raise ValueError("style_blend weights must not all be zero")
    _choice("preserve_color", self.preserve_color, ("none", "luminance", "histogram"))
    if self.scales is not None:
      if not isinstance(self.scales, tuple) or not self.scales:
        raise ValueError("scales must be a non-empty tuple of sizes")
      for v in self.scales:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
          raise ValueError(f"scales must be positive integers, not {v!r}")
      if list(self.scales) != sorted(self.scales):
        raise ValueError("scales must go from coarse to fine (increasing)")
    if self.coarse_steps is not None and (
      not isinstance(self.coarse_steps, int) or isinstance(self.coarse_steps, bool) or self.coarse_steps < 0
    ):
      raise ValueError(f"coarse_steps must be a non-negative integer, not {self.coarse_steps!r}")
    if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
      raise ValueError(f"size must be a positive integer, not {self.size!r}")
    if not isinstance(self.init, str) or not self.init:
      raise ValueError("init must be 'content', 'noise', 'gray', 'style' or an image path")
    return self

  @property
  def layers(self) -> tuple[str, ...]:
    """Canonical names of every layer the objective reads."""
    names = [vgg.canonical_layer(n) for n in self.content_layers + self.style_layers]
    return tuple(dict.fromkeys(names))

  def loss_weights(self) -> losses.LossWeights:
    """The differentiable weights as a :class:`~jaxstyle.losses.LossWeights` pytree."""
    cw = self.content_layer_weights or (1.0,) * len(self.content_layers)
    sw = self.style_layer_weights or (1.0,) * len(self.style_layers)
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return losses.LossWeights(
      content=f32(self.content_weight),
      style=f32(self.style_weight),
      tv=f32(self.tv_weight),
      content_layers={vgg.canonical_layer(n): f32(w) for n, w in zip(self.content_layers, cw, strict=True)},
      style_layers={vgg.canonical_layer(n): f32(w) for n, w in zip(self.style_layers, sw, strict=True)},
    )

  def loss_spec(self) -> losses.LossSpec:
    """The static form of the objective."""
    return losses.LossSpec(
      gram_norm=self.gram_norm,
      content_reduction=self.content_reduction,
      style_reduction=self.style_reduction,
      style_layer_norm=self.style_layer_norm,
      tv_kind=self.tv_kind,
      tv_reduction=self.tv_reduction,
    )

  @property
  def output_size(self) -> int | None:
    """The longest side of the result (the last scale, or ``size``)."""
    return self.scales[-1] if self.scales else self.size

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def auto_scales(size: int, *, start: int = 256, factor: float = 2.0) -> tuple[int, ...]:
  """A geometric coarse-to-fine ladder ending at ``size``: ``auto_scales(1024) == (256, 512, 1024)``."""
  out = [size]
  while out[-1] / factor >= start:
    out.append(round(out[-1] / factor))
  return tuple(reversed(out))


def _check_weight(field: str, v: Any) -> None:
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
    raise ValueError(f"{field} must be a finite non-negative number, not {v!r}")


def _choice(field: str, v: Any, options: tuple[str, ...]) -> None:
  if v not in options:
    raise ValueError(f"{field} must be one of {', '.join(options)}; got {v!r}")
