"""Magenta's feed-forward (fast) style networks as Flax Linen modules.

Three networks, NHWC float32 RGB in [0, 1], applied functionally like :class:`jaxstyle.vgg.VGG19`:

* :class:`StylePredictor`: MobileNetV2 (width 1.0) mapping a style image to a 100-d style vector; Magenta's
  mobile arbitrary-style predictor, distilled from InceptionV3 (Ghiasi et al. 2017).
* :class:`Transformer`: the small image transformer conditioned on that vector through conditional
  instance normalization (CIN), whose gamma and beta are affine maps of the vector.
* :class:`MultiStyle26`: a transformer whose CIN gamma and beta are weighted sums of 26 learned styles
  (Dumoulin, Shlens & Kudlur 2017).

The modules hold no weights and do no I/O; :mod:`jaxstyle.io.magenta_weights` converts Magenta's released graphs
and loads them. Given a :class:`TileRun`, the transformers run one tile of :mod:`jaxstyle.fast.tiled`'s exact
tiled stylization. Everything here is jit-, vmap- and grad-safe. A batch of N style vectors (or weightings) with
one content image stylizes it N ways in one call::

  predictor, transformer = magenta_weights.load_arbitrary()
  vectors = predict_style(predictor, paintings)                     # (N, 100)
  own = predict_style(predictor, photo)                             # (100,)
  out = jax.jit(transfer)(transformer, photo, interpolate(own, vectors, 0.8))   # (N, H, W, 3)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.nets import magenta_kernels as cpu

STYLE_DIM = 100
NUM_STYLES = 26
# The package the 26 styles come from names none of them (its README: "the model I started from never came
# with any"), so they are numbered.
STYLE_NAMES = tuple(f"style {i}" for i in range(NUM_STYLES))
STYLE_SIZE = 256  # the side the predictor was trained at
CIN_EPS = 1e-5
# (expansion t, channels c, repeats n, first stride s) per stage of MobileNetV2 width 1.0 (Sandler et al. 2018).
MOBILENET_V2_BLOCKS = (
  (1, 16, 1, 1),
  (6, 24, 2, 2),
  (6, 32, 3, 2),
  (6, 64, 4, 2),
  (6, 96, 3, 1),
  (6, 160, 3, 2),
  (6, 320, 1, 1),
)
# The transformers work on a multiple of 4 (two stride-2 convolutions, two x2 upsamplings); after padding to it,
# the quarter-size features need 2 pixels for their 1-pixel reflection, so 5 is the smallest side.
MULTIPLE = 4
MIN_SIDE = 5

_DIMS = ("NHWC", "HWIO", "NHWC")
# Which convolutions the transformers run: "cpu" (magenta_kernels: strips and phase forms, fast on XLA:CPU),
# "plain" (one lax convolution per layer, for GPU and TPU, whose libraries pick their own algorithms), or
# "auto" (cpu on the CPU backend, plain elsewhere). The same params and sums either way.
KERNELS = ("auto", "cpu", "plain")


def resolve_kernels(kernels: str, backend: str | None = None) -> str:
  """``"auto"`` is ``"cpu"`` on the CPU backend and ``"plain"`` elsewhere."""
  if kernels not in KERNELS:
    raise InputError(f"kernels must be one of {', '.join(KERNELS)}, not {kernels!r}")
  if kernels == "auto":
    return "cpu" if (backend or jax.default_backend()) == "cpu" else "plain"
  return kernels


# --------------------------------------------------------------------------- building blocks


def instance_norm(
  x: ArrayLike,
  gamma: ArrayLike,
  beta: ArrayLike,
  *,
  eps: float = CIN_EPS,
  moments: tuple[ArrayLike, ArrayLike] | None = None,
) -> jax.Array:
  """Conditional instance normalization.

  Args:
    x: ``(N, H, W, C)`` features (``N`` may be 1 when ``gamma`` has a batch: it is broadcast).
    gamma: ``(N, C)`` scales.
    beta: ``(N, C)`` offsets.
    eps: added to the variance.
    moments: ``(mean, var)``, ``(N, C)`` or ``(1, C)`` each, to normalize with instead of ``x``'s own: a
      tile's run (:mod:`jaxstyle.fast.tiled`) gives the whole image's.

  Returns:
    ``(N, H, W, C)``: each image's channels normalized by their own mean and population variance over H and W
    (or ``moments``), then scaled by ``gamma`` and shifted by ``beta``.
  """
  x, gamma, beta = jnp.asarray(x), jnp.asarray(gamma), jnp.asarray(beta)
  if moments is None:
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    centered = x - mean
    var = jnp.mean(jnp.square(centered), axis=(1, 2), keepdims=True)
  else:
    mean, var = (jnp.asarray(m)[:, None, None, :] for m in moments)
    centered = x - mean
  return centered * jax.lax.rsqrt(var + eps) * gamma[:, None, None, :] + beta[:, None, None, :]


def reflect_pad(x: ArrayLike, pad: int) -> jax.Array:
  """``(N, H, W, C)`` -> ``(N, H + 2 pad, W + 2 pad, C)``, mirrored without repeating the edge (TF MirrorPad
  REFLECT, ONNX Pad reflect)."""
  return jnp.pad(jnp.asarray(x), ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def pad_to_multiple(x: ArrayLike, multiple: int = MULTIPLE) -> jax.Array:
  """Reflect-pads ``(N, H, W, C)`` at the bottom and right up to the next multiple of ``multiple``."""
  x = jnp.asarray(x)
  h, w = x.shape[1:3]
  return jnp.pad(x, ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)), mode="reflect")


def upsample_nearest(x: ArrayLike, factor: int = 2) -> jax.Array:
  """``(N, H, W, C)`` -> ``(N, factor H, factor W, C)``, each pixel repeated (nearest neighbour)."""
  return jnp.repeat(jnp.repeat(jnp.asarray(x), factor, axis=1), factor, axis=2)


# --------------------------------------------------------------------------- style predictor


class _InvertedResidual(nn.Module):
  """MobileNetV2 block: 1x1 expand (ReLU6), 3x3 depthwise (ReLU6), linear 1x1 project, residual add when shapes
  allow (no activation after it). Convolutions carry the folded batch norm as their bias."""

  expansion: int
  features: int
  stride: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    y = x
    if self.expansion != 1:
      y = jax.nn.relu6(nn.Conv(c * self.expansion, (1, 1), name="expand")(y))
    hidden = y.shape[-1]
    # "SAME" is TF's: at stride 2 on an even side the one padding pixel goes at the bottom/right.
    depthwise = nn.Conv(hidden, (3, 3), self.stride, padding="SAME", feature_group_count=hidden, name="depthwise")
    y = jax.nn.relu6(depthwise(y))
    y = nn.Conv(self.features, (1, 1), name="project")(y)
    return x + y if self.stride == 1 and c == self.features else y


class StylePredictor(nn.Module):
  """MobileNetV2 up to ``Conv_1``, spatial mean, then a linear map to the style vector.

  Param names follow the TF graph: ``Conv``, ``expanded_conv``, ``expanded_conv_1`` ... (each with
  ``expand``/``depthwise``/``project``), ``Conv_1`` and ``bottleneck`` (Magenta's ``mobilenet_conv/Conv``).

  Attributes:
    stem: channels of the first 3x3 stride-2 convolution.
    blocks: ``(expansion, channels, repeats, first stride)`` per stage.
    head: channels of the last 1x1 convolution (``Conv_1``).
    style_dim: length of the style vector.
  """

  stem: int = 32
  blocks: Sequence[tuple[int, int, int, int]] = MOBILENET_V2_BLOCKS
  head: int = 1280
  style_dim: int = STYLE_DIM

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Style vectors of images.

    Args:
      x: ``(N, H, W, 3)`` RGB in [0, 1] (the network was trained at 256 x 256).

    Returns:
      ``(N, style_dim)`` float32.
    """
    x = jax.nn.relu6(nn.Conv(self.stem, (3, 3), 2, padding="SAME", name="Conv")(x))
    i = 0
    for t, c, n, s in self.blocks:
      for j in range(n):
        x = _InvertedResidual(t, c, s if j == 0 else 1, name=f"expanded_conv_{i}" if i else "expanded_conv")(x)
        i += 1
    x = jax.nn.relu6(nn.Conv(self.head, (1, 1), name="Conv_1")(x))
    return nn.Dense(self.style_dim, name="bottleneck")(jnp.mean(x, axis=(1, 2)))


# --------------------------------------------------------------------------- transformers


class VectorNorm(nn.Module):
  """CIN whose gamma and beta are affine maps of a style vector (Magenta's ``StyleNorm/Conv_1`` and
  ``StyleNorm/Conv`` 1x1 convolutions)."""

  @nn.compact
  def __call__(self, x: jax.Array, vector: jax.Array, moments: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """``x`` ``(N, H, W, C)`` normalized (with ``moments``, see :func:`instance_norm`), ``vector`` ``(N, D)``."""
    c = x.shape[-1]
    return instance_norm(x, nn.Dense(c, name="gamma")(vector), nn.Dense(c, name="beta")(vector), moments=moments)


class WeightedNorm(nn.Module):
  """CIN whose gamma and beta are ``weights @ table``: one learned row per style, mixed by the weights."""

  @nn.compact
  def __call__(self, x: jax.Array, weights: jax.Array, moments: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """``x`` ``(N, H, W, C)`` normalized (with ``moments``, see :func:`instance_norm`), ``weights`` ``(N, S)``."""
    shape = (weights.shape[-1], x.shape[-1])
    gamma = self.param("gamma", nn.initializers.ones_init(), shape, jnp.float32)
    beta = self.param("beta", nn.initializers.zeros_init(), shape, jnp.float32)
    return instance_norm(x, weights @ gamma, weights @ beta, moments=moments)


class TileRun(NamedTuple):
  """One tile of a tiled run (:mod:`jaxstyle.fast.tiled`) as a transformer sees it.

  The network's input is the tile's window of the padded image; every CIN normalizes with the whole image's
  statistics instead of the window's, and reports those of its input over the tile's core, so that the
  whole image's can be summed from all tiles' before the next normalized layer needs them.

  Attributes:
    core: ``(4,)`` int32 ``top, left, bottom, right`` of the tile's core in the window, in input pixels
      (multiples of :data:`MULTIPLE`).
    moments: the whole image's ``(mean, var)`` of each normalized layer's input, ``(N, C)`` each (``N`` may be
      1 before the first CIN), in call order; ``None`` normalizes with the window's own, as untiled.
    target: int32 scalar, the normalized layer being measured: the convolutions of the layers after it are
      skipped (their outputs are zeros); ``len(moments)`` or more runs everything.
  """

  core: jax.Array
  moments: tuple[tuple[jax.Array, jax.Array], ...] | None
  target: jax.Array


class _Slot(NamedTuple):
  """A normalized layer's place in a :class:`TileRun`: its index among the normalized layers (call order),
  and the window's ``(h, w)`` in input pixels."""

  run: TileRun
  index: int
  window: tuple[int, int]


def _core_moments(z: jax.Array, tile: _Slot, s: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(count, mean, m2)`` of the tile's core in ``z``, a :func:`_phase_norm` view ``(N, h, w s*s, C)`` whose
  rows and groups of ``s*s`` columns are square blocks of the window: the core's pixels at this resolution, its
  per-channel mean ``(N, C)``, and its sum of squared deviations from that mean ``(N, C)``.

  Centred per tile, so that combining tiles (Chan et al.'s parallel variance) loses nothing to float32 where a
  whole-image sum of squares would.
  """
  _, h, wz, _ = z.shape
  block = tile.window[0] // h  # input pixels per row of z; cores are aligned to every layer's blocks
  top, left, bottom, right = (tile.run.core[i] // block for i in range(4))
  rows, cols = jnp.arange(h), jnp.arange(wz) // (s * s)
  inside = ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None, :]
  mask = inside[None, :, :, None].astype(z.dtype)
  count = jnp.sum(mask)  # each element of z is one pixel of the layer's full-resolution map
  mean = jnp.sum(z * mask, axis=(1, 2)) / count
  m2 = jnp.sum(jnp.square(z - mean[:, None, None, :]) * mask, axis=(1, 2))
  return count, mean, m2


def _phase_norm(norm, y, cond, s, tile: _Slot | None = None):
  """CIN of a map in phase form: statistics over every pixel of the full-resolution map. With ``tile``, the
  statistics are :class:`TileRun`'s and the result is ``(normalized, core moments of y)``."""
  n, h, w, cs = y.shape
  z = y.reshape(n, h, w * s * s, cs // (s * s))
  if tile is None:
    out = norm(z, cond)  # N may grow: one image, several conditions
    return out.reshape(out.shape[0], h, w, cs)
  report = _core_moments(z, tile, s)
  out = norm(z, cond, None if tile.run.moments is None else tile.run.moments[tile.index])
  return out.reshape(out.shape[0], h, w, cs), report


def _plain_conv(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=_DIMS)


def _layer_conv(x, kernel, *, stride: int, upsample: bool, phases_in: int, phases_out: int, kernels: str) -> jax.Array:
  """:class:`_Layer`'s padding and convolution (a pure function of arrays, so that it can run under
  ``lax.cond``): with ``kernels="plain"`` one lax convolution of a plain map; with ``"cpu"`` the strips
  and phase forms of :mod:`jaxstyle.nets.magenta_kernels`."""
  r = kernel.shape[0] // 2
  conv = cpu.conv if kernels == "cpu" else _plain_conv
  if phases_in == phases_out == 1:
    if upsample:
      x = upsample_nearest(x)
    return conv(reflect_pad(x, r), kernel, stride)
  if upsample:  # a plain low-resolution map to phase form
    return conv(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge"), cpu.phase_kernel(kernel, "up"))
  if phases_out == 1:  # stride 2 from phase form (factor 2)
    return conv(jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)), mode="edge"), cpu.phase_kernel(kernel, "down"))
  full = x if phases_in == 1 else cpu.depth_to_space(x, phases_in)
  return conv(cpu.space_to_depth(reflect_pad(full, r), phases_out), cpu.phase_kernel(kernel, "same", phases_out))


class _Layer(nn.Module):
  """Optional nearest x2 upsampling, reflection padding by ``kernel // 2``, a VALID convolution, then either a
  bias (``norm=None``) or CIN. A bias before CIN would be cancelled by its mean, so there is none.

  ``phases_in`` and ``phases_out`` give the phase factor (:func:`~jaxstyle.nets.magenta_kernels.space_to_depth`)
  of the input and the output (1: a plain map, the only form of ``kernels="plain"``); the arithmetic is the same
  up to rounding, the params the same. Supported: 1 -> 1 (anything); 1 -> 2 with upsampling (3x3, "sub-pixel":
  the upsampled map is never built); 2 -> 1 at stride 2 (3x3); 1 or 2 -> s (stride 1, ``kernel // 2`` a multiple
  of s). A phase-form convolution runs with a kernel transformed from the stored one inside the computation
  (:func:`~jaxstyle.nets.magenta_kernels.phase_kernel`).

  With ``tile`` (normalized layers of a tiled run) the result is ``(output, core moments of the CIN's input)``.
  """

  features: int
  kernel: int
  stride: int = 1
  upsample: bool = False
  norm: type[nn.Module] | None = None
  kernels: str = "cpu"

  @nn.compact
  def __call__(
    self, x: jax.Array, cond: jax.Array, phases_in: int = 1, phases_out: int = 1, *, tile: _Slot | None = None
  ):
    shape = (self.kernel, self.kernel, x.shape[-1] // phases_in**2, self.features)
    kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
    conv = functools.partial(
      _layer_conv,
      stride=self.stride,
      upsample=self.upsample,
      phases_in=phases_in,
      phases_out=phases_out,
      kernels=self.kernels,
    )
    if tile is None:
      y = conv(x, kernel)
    else:
      # A statistics pass needs nothing after the layer it measures: skipping those convolutions makes pass k
      # cost the network up to layer k, with one compiled program for every k.
      spec = jax.eval_shape(conv, x, kernel)
      y = jax.lax.cond(tile.index <= tile.run.target, conv, lambda *_: jnp.zeros(spec.shape, spec.dtype), x, kernel)
    if self.norm is None:
      bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
      return y + jnp.tile(bias, phases_out**2).reshape((1, 1, 1, -1))
    return _phase_norm(self.norm(name="norm"), y, cond, phases_out, tile)


def check_inputs(x: jax.Array, cond: jax.Array, cond_dim: int, what: str) -> None:
  if x.ndim != 4 or x.shape[-1] != 3:
    raise InputError(f"images must be (N, H, W, 3), got shape {tuple(x.shape)}")
  if min(x.shape[1:3]) < MIN_SIDE:
    raise InputError(f"image is {x.shape[2]}x{x.shape[1]}; both sides need at least {MIN_SIDE} pixels")
  if cond.ndim != 2 or cond.shape[-1] != cond_dim:
    raise InputError(f"{what} must be (N, {cond_dim}), got shape {tuple(cond.shape)}")
  if x.shape[0] not in (1, cond.shape[0]):
    raise InputError(f"{x.shape[0]} images and {cond.shape[0]} {what}: give as many, or one image")


def _feed_forward(x, cond, *, contract, expand, residual_blocks, norm, contract_norm, kernels, tile=None):
  """Magenta's transformer body, shared by both networks (called from their compact ``__call__``).

  With ``kernels="cpu"`` the full-resolution layers run in phase form
  (:func:`~jaxstyle.nets.magenta_kernels.space_to_depth`): the first 9x9 convolution produces it, the
  stride-2 one consumes it; the second upsampling layer produces it and the last 9x9 one consumes it, so
  only the input and the output exist at full resolution. ``"plain"`` runs every layer on plain maps. With
  ``tile`` (a :class:`TileRun`) the result is ``(image, moments)``: each normalized layer's core moments
  (:func:`_core_moments`), in call order.
  """
  if len(contract) != 3 or len(expand) != 2:
    raise ValueError(f"contract needs 3 widths and expand 2, got {tuple(contract)} and {tuple(expand)}")
  kernels = resolve_kernels(kernels)
  phased = kernels == "cpu"
  first, up = (cpu.FIRST_PHASES, 2) if phased else (1, 1)
  last = cpu.last_phases(expand[1], 3) if phased else 1
  h, w = x.shape[1:3]
  y = pad_to_multiple(x)
  window = y.shape[1:3]
  reports = []

  def apply(layer: _Layer, y: jax.Array, phases_in: int = 1, phases_out: int = 1) -> jax.Array:
    if tile is None or layer.norm is None:
      return layer(y, cond, phases_in, phases_out)
    y, report = layer(y, cond, phases_in, phases_out, tile=_Slot(tile, len(reports), window))
    reports.append(report)
    return y

  layer = functools.partial(_Layer, kernels=kernels)
  first_norm = norm if contract_norm else None
  y = nn.relu(apply(layer(contract[0], 9, norm=first_norm, name="contract1"), y, 1, first))
  y = nn.relu(apply(layer(contract[1], 3, 2, norm=first_norm, name="contract2"), y, first, 1))
  y = nn.relu(apply(layer(contract[2], 3, 2, norm=first_norm, name="contract3"), y))
  width = contract[-1]
  # One image with N conditions: everything before the first CIN runs once; CIN's broadcast makes the batch.
  for b in range(1, residual_blocks + 1):
    r = nn.relu(apply(layer(width, 3, norm=norm, name=f"residual{b}_1"), y))
    y = y + apply(layer(width, 3, norm=norm, name=f"residual{b}_2"), r)  # no activation after the add
  y = nn.relu(apply(layer(expand[0], 3, upsample=True, norm=norm, name="expand1"), y, 1, up))
  y = cpu.depth_to_space(y, up) if up > 1 else y
  y = nn.relu(apply(layer(expand[1], 3, upsample=True, norm=norm, name="expand2"), y, 1, up))
  y = jax.nn.sigmoid(apply(layer(3, 9, norm=norm, name=f"expand{len(expand) + 1}"), y, up, last))
  out = (cpu.depth_to_space(y, last) if last > 1 else y)[:, :h, :w]
  return out if tile is None else (out, tuple(reports))


class Transformer(nn.Module):
  """Magenta's arbitrary-style transformer (mobile widths 8/16/32), conditioned on a style vector.

  Contract: 9x9 stride 1, 3x3 stride 2, 3x3 stride 2, each with bias and ReLU; ``residual_blocks`` blocks of
  (conv, CIN, ReLU, conv, CIN) + input; expand: nearest x2, 3x3, CIN, ReLU, twice; 9x9 to RGB, CIN, sigmoid.
  Every convolution reflect-pads by half its size and runs VALID; the input is reflect-padded at the bottom and
  right to a multiple of 4 and the output cropped back. CIN's gamma is ``Dense(vector)`` (``norm/gamma``) and
  beta likewise (``norm/beta``).

  Attributes:
    contract: widths of the three contracting convolutions (the residual width is the last).
    expand: widths of the two upsampling convolutions.
    residual_blocks: number of residual blocks.
    style_dim: length of the style vector.
    kernels: the convolutions it runs (:data:`KERNELS`; not a shape: files do not record it).
  """

  contract: Sequence[int] = (8, 16, 32)
  expand: Sequence[int] = (16, 8)
  residual_blocks: int = 5
  style_dim: int = STYLE_DIM
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, vector: jax.Array, *, tile: TileRun | None = None):
    """Stylizes images.

    Args:
      x: ``(N, H, W, 3)`` or ``(1, H, W, 3)`` RGB in [0, 1], any H, W of at least 5.
      vector: ``(N, style_dim)`` style vectors.
      tile: run as one tile of a tiled run (:mod:`jaxstyle.fast.tiled`): ``x`` is the tile's window.

    Returns:
      ``(N, H, W, 3)`` RGB in (0, 1); with ``tile``, ``(image, moments)``: each normalized layer's
      ``(count, mean, m2)`` over the tile's core (scalar, ``(N, C)``, ``(N, C)``), in call order.
    """
    check_inputs(x, vector, self.style_dim, "style vectors")
    return _feed_forward(
      x,
      vector,
      contract=self.contract,
      expand=self.expand,
      residual_blocks=self.residual_blocks,
      norm=VectorNorm,
      contract_norm=False,
      kernels=self.kernels,
      tile=tile,
    )


class MultiStyle26(nn.Module):
  """The 26-style network of Dumoulin et al. 2017 (as shipped for TensorFlow's Android demo).

  Same body as :class:`Transformer` but with CIN after every convolution (the contracting ones too, which then
  have no bias), six residual blocks, contract widths 32/32/32 and expand widths 8/4. CIN's gamma and beta are
  ``weights @ table`` with ``(num_styles, C)`` tables ``norm/gamma`` and ``norm/beta``.

  Attributes:
    contract: widths of the three contracting convolutions.
    expand: widths of the two upsampling convolutions.
    residual_blocks: number of residual blocks.
    num_styles: number of learned styles.
    kernels: the convolutions it runs (:data:`KERNELS`).
  """

  contract: Sequence[int] = (32, 32, 32)
  expand: Sequence[int] = (8, 4)
  residual_blocks: int = 6
  num_styles: int = NUM_STYLES
  kernels: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, weights: jax.Array, *, tile: TileRun | None = None):
    """Stylizes images.

    Args:
      x: ``(N, H, W, 3)`` or ``(1, H, W, 3)`` RGB in [0, 1], any H, W of at least 5.
      weights: ``(N, num_styles)`` style weights, used as given (see :func:`multistyle` for normalization).
      tile: run as one tile of a tiled run (:mod:`jaxstyle.fast.tiled`): ``x`` is the tile's window.

    Returns:
      ``(N, H, W, 3)`` RGB in (0, 1); with ``tile``, ``(image, moments)``: each normalized layer's
      ``(count, mean, m2)`` over the tile's core (scalar, ``(N, C)``, ``(N, C)``), in call order.
    """
    check_inputs(x, weights, self.num_styles, "style weightings")
    return _feed_forward(
      x,
      weights,
      contract=self.contract,
      expand=self.expand,
      residual_blocks=self.residual_blocks,
      norm=WeightedNorm,
      contract_norm=True,
      kernels=self.kernels,
      tile=tile,
    )


# --------------------------------------------------------------------------- params


def example_inputs(model: nn.Module) -> tuple[jax.Array, ...]:
  """Small inputs of the right kinds for ``model.init`` (shapes of params do not depend on their size)."""
  if isinstance(model, StylePredictor):
    return (jnp.zeros((1, 32, 32, 3), jnp.float32),)
  if isinstance(model, Transformer):
    return jnp.zeros((1, 16, 16, 3), jnp.float32), jnp.zeros((1, model.style_dim), jnp.float32)
  if isinstance(model, MultiStyle26):
    return jnp.zeros((1, 16, 16, 3), jnp.float32), jnp.full((1, model.num_styles), 1.0 / model.num_styles, jnp.float32)
  raise TypeError(f"not a Magenta network: {type(model).__name__}")


def param_shapes(model: nn.Module) -> dict:
  """``model``'s params tree as ``jax.ShapeDtypeStruct`` leaves, computed without allocating weights."""
  return jax.eval_shape(model.init, jax.random.key(0), *example_inputs(model))["params"]


def init_params(key: jax.Array, model: nn.Module) -> dict:
  """Random params for ``model`` at any widths (e.g. ``Transformer(contract=(4, 4, 8), expand=(4, 4))``).

  Kernels are LeCun-normal (Flax's default), CIN scales about 1 + N(0, 0.1²), biases and CIN offsets N(0, 0.1²)
  rather than zeros, so that tests exercise them. Drawn with NumPy from ``key`` (no network is run or compiled).
  """
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
  flat = traverse_util.flatten_dict(param_shapes(model))
  out = {}
  for path, spec in flat.items():
    noise = rng.standard_normal(spec.shape)
    if path[-1] == "kernel":
      value = noise / np.sqrt(np.prod(spec.shape[:-1]))
    elif "gamma" in path:  # a CIN scale's table or the bias of its Dense
      value = 1.0 + 0.1 * noise
    else:
      value = 0.1 * noise
    out[path] = jnp.asarray(value, spec.dtype)
  return traverse_util.unflatten_dict(out)


def model_config(model: nn.Module) -> dict:
  """The attributes that define ``model``'s shapes, as plain JSON-able values."""
  skip = ("parent", "name", "kernels")  # kernels choose arithmetic, not shapes
  return {f.name: _plain(getattr(model, f.name)) for f in dataclasses.fields(model) if f.name not in skip}


def _plain(v):
  return [_plain(a) for a in v] if isinstance(v, (tuple, list)) else v


def _tuples(v):
  return tuple(_tuples(a) for a in v) if isinstance(v, (tuple, list)) else v


def model_from_config(cls: type[nn.Module], config: Mapping) -> nn.Module:
  """Inverse of :func:`model_config`."""
  return cls(**{k: _tuples(v) for k, v in config.items()})


def transformer_of(params: Mapping, *, kernels: str = "auto") -> Transformer:
  """The :class:`Transformer` whose shapes ``params`` has (widths read from the kernels)."""
  dim = int(params["expand1"]["norm"]["gamma"]["kernel"].shape[0])
  return Transformer(**_body_widths(params), style_dim=dim, kernels=kernels)


def multistyle26_of(params: Mapping, *, kernels: str = "auto") -> MultiStyle26:
  """The :class:`MultiStyle26` whose shapes ``params`` has."""
  return MultiStyle26(
    **_body_widths(params), num_styles=int(params["expand1"]["norm"]["gamma"].shape[0]), kernels=kernels
  )


def _body_widths(params: Mapping) -> dict:
  width = lambda name: int(params[name]["kernel"].shape[-1])
  blocks = sum(1 for k in params if k.startswith("residual") and k.endswith("_1"))
  return {
    "contract": tuple(width(f"contract{i}") for i in (1, 2, 3)),
    "expand": (width("expand1"), width("expand2")),
    "residual_blocks": blocks,
  }


def halo(model: Transformer | MultiStyle26) -> int:
  """The narrowest exact halo of a tile's window in input pixels: the receptive field's radius rounded up to
  :data:`MULTIPLE`, the networks' total stride.

  ``c``, the number of wrong rows at a window's edge (its own padding there is not the image), grows by
  ``kernel // 2`` at each stride-1 convolution, becomes ``ceil((c + 1) / 2)`` at each stride-2 one (output
  ``i`` reads rows ``2i - 1 .. 2i + 1``) and ``2c + 1`` at each upsampling 3x3 one: 55 px for the arbitrary
  transformer (5 residual blocks), 63 for MultiStyle26 (6), so halos of 56 and 64.
  """
  c = 4  # contract1: 9x9
  c = -(-(c + 1) // 2)  # contract2: 3x3, stride 2
  c = -(-(c + 1) // 2)  # contract3: 3x3, stride 2
  c += 2 * model.residual_blocks  # two 3x3 per block; the skip adds nothing
  c = 2 * c + 1  # expand1: nearest x2, 3x3
  c = 2 * c + 1  # expand2: nearest x2, 3x3
  c += 4  # expand3: 9x9
  return -(-c // MULTIPLE) * MULTIPLE


def model_of(params: Mapping, *, kernels: str = "auto") -> Transformer | MultiStyle26:
  """The :class:`Transformer` or :class:`MultiStyle26` whose shapes ``params`` has (a Transformer's CIN scales
  are Dense layers, MultiStyle26's are tables)."""
  if "params" in params:
    params = params["params"]
  if isinstance(params["expand1"]["norm"]["gamma"], Mapping):
    return transformer_of(params, kernels=kernels)
  return multistyle26_of(params, kernels=kernels)


# --------------------------------------------------------------------------- library functions


# Compiled once per shape, so that plain calls do not run the network op by op; the functions below stay
# traceable under the caller's own jit and vmap.
@functools.partial(jax.jit, static_argnums=0)
def run(model: nn.Module, params: Mapping, *args: jax.Array) -> jax.Array:
  """``model.apply({"params": params}, *args)``, compiled once per model and shapes."""
  return model.apply({"params": params}, *args)


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _predict(
  model: StylePredictor, params: Mapping, x: jax.Array, style_size: int | None, square_crop: bool
) -> jax.Array:
  if square_crop:
    x = center_square(x)
  if style_size is not None and x.shape[1:3] != (style_size, style_size):
    x = jax.image.resize(x, (x.shape[0], style_size, style_size, 3), "lanczos3", antialias=True)
    x = jnp.clip(x, 0.0, 1.0)
  return model.apply({"params": params}, x)


def _images(x: ArrayLike, what: str) -> tuple[jax.Array, bool]:
  x = jnp.asarray(x, jnp.float32)
  single = x.ndim == 3
  x = x[None] if single else x
  if x.ndim != 4 or x.shape[-1] != 3:
    raise InputError(f"{what} must be (N, H, W, 3) or (H, W, 3), got shape {tuple(jnp.shape(x))}")
  return x, single


def _rows(v: ArrayLike, what: str) -> tuple[jax.Array, bool]:
  v = jnp.asarray(v, jnp.float32)
  single = v.ndim == 1
  v = v[None] if single else v
  if v.ndim != 2:
    raise InputError(f"{what} must be (N, D) or (D,), got shape {tuple(jnp.shape(v))}")
  return v, single


def center_square(images: ArrayLike) -> jax.Array:
  """The central square crop of ``(N, H, W, C)`` images, side ``min(H, W)``."""
  x = jnp.asarray(images)
  h, w = x.shape[1:3]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  return x[:, top : top + s, left : left + s]


def predict_style(
  params: Mapping,
  style_images: ArrayLike,
  *,
  style_size: int | None = STYLE_SIZE,
  square_crop: bool = True,
  model: StylePredictor | None = None,
) -> jax.Array:
  """Style vectors of style images (Magenta's arbitrary-style predictor).

  Args:
    params: :class:`StylePredictor` params (``magenta_weights.load_arbitrary()[0]``).
    style_images: ``(N, H, W, 3)`` or ``(H, W, 3)`` RGB in [0, 1].
    style_size: side the images are resized to (Lanczos, antialiased) before the network; ``None`` keeps them.
    square_crop: take the central square first, as the mobile model's own pipeline does; with ``False`` the
      image is squashed to a square.
    model: the network's shape; default the real :class:`StylePredictor`.

  Returns:
    ``(N, 100)`` style vectors, or ``(100,)`` for one ``(H, W, 3)`` image.
  """
  x, single = _images(style_images, "style images")
  v = _predict(StylePredictor() if model is None else model, params, x, style_size, square_crop)
  return v[0] if single else v


def interpolate(content_vector: ArrayLike, style_vector: ArrayLike, strength: ArrayLike) -> jax.Array:
  """Magenta's identity interpolation: ``strength * style + (1 - strength) * content``.

  With the content image's own style vector as ``content_vector``, strength 0 reproduces the content closely
  and 1 is the full style.

  Args:
    content_vector: ``(D,)`` or ``(N, D)``, usually ``predict_style`` of the content image.
    style_vector: ``(D,)`` or ``(N, D)``.
    strength: a scalar or ``(N,)``.

  Returns:
    ``(N, D)``, or ``(D,)`` when all inputs are unbatched.
  """
  c, t, s = (jnp.asarray(a, jnp.float32) for a in (content_vector, style_vector, strength))
  s = s[..., None]  # per-row strength: (N, 1) or (1,)
  ndim = max(c.ndim, t.ndim, s.ndim)
  c, t, s = (a.reshape((1,) * (ndim - a.ndim) + a.shape) for a in (c, t, s))
  return s * t + (1.0 - s) * c


def transfer(params: Mapping, content: ArrayLike, vector: ArrayLike) -> jax.Array:
  """Stylizes images with style vectors (Magenta's arbitrary-style transformer), at their own size.

  Args:
    params: :class:`Transformer` params (``magenta_weights.load_arbitrary()[1]``).
    content: ``(N, H, W, 3)`` or ``(H, W, 3)`` RGB in [0, 1], any H, W of at least 5.
    vector: ``(N, 100)`` or ``(100,)`` style vectors. One image with N vectors gives N stylizations.

  Returns:
    ``(N, H, W, 3)`` RGB in (0, 1), or ``(H, W, 3)`` when both inputs are unbatched.
  """
  x, single_x = _images(content, "content")
  v, single_v = _rows(vector, "style vectors")
  out = run(transformer_of(params), params, x, v)
  return out[0] if single_x and single_v else out


def normalize_weights(weights: ArrayLike) -> jax.Array:
  """Style weights scaled to sum to 1 along the last axis (they should be non-negative, not all zero)."""
  w = jnp.asarray(weights, jnp.float32)
  return w / jnp.sum(w, axis=-1, keepdims=True)


def multistyle(params: Mapping, content: ArrayLike, weights: ArrayLike, *, normalize: bool = True) -> jax.Array:
  """Stylizes images with a weighting of the 26 built-in styles.

  Args:
    params: :class:`MultiStyle26` params (``magenta_weights.load_multistyle26()``).
    content: ``(N, H, W, 3)`` or ``(H, W, 3)`` RGB in [0, 1], any H, W of at least 5.
    weights: ``(N, 26)`` or ``(26,)`` non-negative style weights (``jax.nn.one_hot(i, 26)`` for style ``i``).
      One image with N weightings gives N stylizations.
    normalize: scale each weighting to sum 1, as the network was trained with.

  Returns:
    ``(N, H, W, 3)`` RGB in (0, 1), or ``(H, W, 3)`` when both inputs are unbatched.
  """
  x, single_x = _images(content, "content")
  w, single_w = _rows(weights, "style weights")
  w = normalize_weights(w) if normalize else w
  out = run(multistyle26_of(params), params, x, w)
  return out[0] if single_x and single_w else out
