"""Quality measures of stylized images that do not depend on any preset's loss.

Every measure is a pure function of ``(N, H, W, C)`` arrays (NHWC: images are RGB in
[0, 1], features are VGG19 activations) that returns one value per image, shape
``(N,)`` (``(N, P)`` for :func:`periodic_energy`), and runs plain, under ``jax.jit``
and under ``jax.vmap``. Targets (a style's or a content's features or pixels) are
``(1, ...)`` (shared by the batch) or ``(N, ...)``. Options are keyword-only and
static (Python values that fix shapes), so they must not be traced.

* Style: :func:`gram_distance` (relative Frobenius distance of Gram matrices) and
  :func:`sliced_wasserstein` (relative sliced Wasserstein-2 distance of the feature
  distributions), averaged over relu1_1..relu5_1 by :func:`style_distance` and
  :func:`style_swd`.
* Content: :func:`feature_distance` at relu4_2, :func:`content_distance`.
* Colour: :func:`color_distance` of RGB means and covariances.
* Artifacts: :func:`border_energy` (edges piled up in the outer frame) and
  :func:`periodic_energy` (patterns repeating every 2, 4, 8, 16 px: checkerboards, dot
  lattices, grid lines, JPEG-like blocks), :func:`periodic_peak` (the strongest single
  peak of such a pattern over the whole picture: a faint one-pixel checkerboard) and
  :func:`periodic_amplitude` (that pattern's amplitude, to tell a visible one from a faint one).

:func:`score` computes them all for a list of images (VGG features jitted once per
shape) and :func:`score_table` formats them for a terminal.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.io import images as imageio
from jaxstyle.nets import vgg
from jaxstyle.objective import losses

STYLE_LAYERS: tuple[str, ...] = vgg.STYLE_LAYERS
CONTENT_LAYER = "relu4_2"
# Sliced Wasserstein: random unit directions from a fixed seed (the same at every layer).
SWD_PROJECTIONS = 64
SWD_SEED = 0
# Artifacts: the outer frame's width; the grid periods probed, the spectral neighbourhood's
# half-width in bins and the longest tile side of periodic_energy.
BORDER_WIDTH = 2
PERIODS: tuple[int, ...] = (2, 4, 8, 16)
PERIODIC_RADIUS = 3
PERIODIC_TILE = 64
# periodic_peak: the periods scored by `score` (a one-pixel checkerboard or stripes), the
# neighbourhood's half-width, and the bins next to a peak left out (the Hann window's main lobe).
PEAK_PERIODS: tuple[int, ...] = (2,)
PEAK_RADIUS = 4
PEAK_GAP = 1
# Rec. 601 luma weights (the Y of YIQ, as in jaxstyle.color).
LUMA = (0.299, 0.587, 0.114)
_EPS = 1e-12
# Edge magnitudes (|Laplacian| of [0, 1] luminance) below this are float32 rounding, not signal.
EDGE_EPS = 1e-6

METRICS = (
  (
    "style_gram",
    "style_swd",
    "content",
    "color_to_style",
    "color_to_content",
    "border",
  )
  + tuple(f"periodic_{p}" for p in PERIODS)
  + tuple(f"peak_{p}{s}" for p in PEAK_PERIODS for s in ("", "_grey"))
)


def _nhwc(x: ArrayLike, what: str, channels: int | None = None) -> jax.Array:
  x = jnp.asarray(x, jnp.float32)
  if x.ndim != 4 or (channels is not None and x.shape[-1] != channels):
    want = f"(N, H, W, {channels})" if channels else "(N, H, W, C)"
    raise ValueError(f"{what} must be {want}, got shape {x.shape}")
  return x


def _check_target(x: jax.Array, t: jax.Array, what: str) -> None:
  if t.shape[0] not in (1, x.shape[0]):
    raise ValueError(f"{what} must have a batch of 1 or {x.shape[0]}, got shape {t.shape}")


# --------------------------------------------------------------------------- feature measures


def gram_distance(features: ArrayLike, target: ArrayLike) -> jax.Array:
  """Relative Frobenius distance between Gram matrices.

  ``d = ||G(F) - G(T)||_F / ||G(T)||_F`` with ``G(F)[c, d] = sum_p F[p, c] F[p, d] / (H W)``
  (:func:`jaxstyle.losses.gram_matrix` with ``normalize="hw"``), so that feature maps of
  different sizes compare. 0 for identical statistics; 1 for an all-zero map.

  Args:
    features: ``(N, H, W, C)``.
    target: ``(1, H', W', C)`` or ``(N, H', W', C)``, any size.

  Returns:
    ``(N,)`` float32.
  """
  f, t = _nhwc(features, "features"), _nhwc(target, "target")
  _check_target(f, t, "target")
  g = losses.gram_matrix(f, normalize="hw")
  a = losses.gram_matrix(t, normalize="hw")
  num = jnp.sqrt(jnp.sum(jnp.square(g - a), axis=(1, 2)))
  den = jnp.sqrt(jnp.sum(jnp.square(a), axis=(1, 2)))
  return num / jnp.maximum(den, _EPS)


def feature_distance(features: ArrayLike, target: ArrayLike) -> jax.Array:
  """Relative L2 distance between feature maps of the same shape.

  ``d = ||F - T||_2 / ||T||_2``, norms over all ``H x W x C`` entries.

  Args:
    features: ``(N, H, W, C)``.
    target: ``(1, H, W, C)`` or ``(N, H, W, C)``.

  Returns:
    ``(N,)`` float32.
  """
  f, t = _nhwc(features, "features"), _nhwc(target, "target")
  _check_target(f, t, "target")
  if f.shape[1:] != t.shape[1:]:
    raise ValueError(f"features {f.shape} and target {t.shape} must have the same H, W, C")
  num = jnp.sqrt(jnp.sum(jnp.square(f - t), axis=(1, 2, 3)))
  den = jnp.sqrt(jnp.sum(jnp.square(t), axis=(1, 2, 3)))
  return num / jnp.maximum(den, _EPS)


def swd_directions(channels: int, *, num_projections: int = SWD_PROJECTIONS, seed: int = SWD_SEED) -> jax.Array:
  """The random unit directions of :func:`sliced_wasserstein`.

  Columns of a ``(channels, num_projections)`` standard normal matrix drawn with
  ``jax.random.normal(jax.random.key(seed), ...)``, each scaled to unit L2 norm: uniform
  on the sphere, the same for every call with the same arguments.

  Returns:
    ``(channels, num_projections)`` float32.
  """
  theta = jax.random.normal(jax.random.key(seed), (channels, num_projections), jnp.float32)
  return theta / jnp.linalg.norm(theta, axis=0, keepdims=True)


def _quantile_weights(n: int, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  # Level u_i = (i + 1/2) / q of a sorted sample of n sits at position u_i n - 1/2 (Hazen),
  # written (i + 1/2) n / q - 1/2 so that it is exactly i when n == q (no interpolation).
  pos = np.clip((np.arange(q) + 0.5) * n / q - 0.5, 0.0, n - 1)
  lo = np.floor(pos).astype(np.int32)
  hi = np.minimum(lo + 1, n - 1).astype(np.int32)
  return lo, hi, (pos - lo).astype(np.float32)


def _quantiles(sorted_x: jax.Array, q: int) -> jax.Array:
  # sorted_x: (N, n, K) sorted along axis 1 -> (N, q, K) linearly interpolated quantiles.
  n = sorted_x.shape[1]
  if n == q:
    return sorted_x
  lo, hi, frac = _quantile_weights(n, q)
  frac = jnp.asarray(frac).reshape(1, q, 1)
  return jnp.take(sorted_x, lo, axis=1) * (1.0 - frac) + jnp.take(sorted_x, hi, axis=1) * frac


def sliced_wasserstein(
  features: ArrayLike,
  target: ArrayLike,
  *,
  num_projections: int = SWD_PROJECTIONS,
  seed: int = SWD_SEED,
) -> jax.Array:
  """Relative sliced Wasserstein-2 distance between two sets of feature vectors.

  Each map is a set of ``C``-dimensional vectors, one per position. With the unit
  directions ``theta_k`` of :func:`swd_directions` (``num_projections`` of them, from
  ``seed``), both sets are projected, ``x_k = F theta_k``, ``y_k = T theta_k``, and sorted.
  Sets of different sizes (``n = H W`` and ``m = H' W'``) are compared through their
  quantile functions at the ``Q = max(n, m)`` levels ``u_i = (i + 1/2) / Q``: a sorted
  sample of size ``s`` gives the quantile at ``u`` by linear interpolation at (0-based)
  position ``u s - 1/2``, clamped to ``[0, s - 1]``; a set of size ``Q`` is used as sorted,
  unchanged. Then

  ``SW = sqrt(mean_{k, i} (qx_k(u_i) - qy_k(u_i))^2) / sqrt(mean_{k, i} qy_k(u_i)^2)``,

  the sliced W2 distance divided by the target's root-mean-square projection (its own
  distance to an all-zero map), so that layers of different magnitude average fairly.
  0 when the two sets have the same projected distributions (e.g. the same map).

  Args:
    features: ``(N, H, W, C)``.
    target: ``(1, H', W', C)`` or ``(N, H', W', C)``, any size.
    num_projections: number of random directions.
    seed: seed of the directions.

  Returns:
    ``(N,)`` float32.
  """
  f, t = _nhwc(features, "features"), _nhwc(target, "target")
  _check_target(f, t, "target")
  c = f.shape[-1]
  if t.shape[-1] != c:
    raise ValueError(f"features {f.shape} and target {t.shape} must have the same channels")
  theta = swd_directions(c, num_projections=num_projections, seed=seed)
  x = jnp.sort(jnp.einsum("npc,ck->npk", f.reshape(f.shape[0], -1, c), theta), axis=1)
  y = jnp.sort(jnp.einsum("npc,ck->npk", t.reshape(t.shape[0], -1, c), theta), axis=1)
  q = max(x.shape[1], y.shape[1])
  x, y = _quantiles(x, q), _quantiles(y, q)
  num = jnp.sqrt(jnp.mean(jnp.square(x - y), axis=(1, 2)))
  den = jnp.sqrt(jnp.mean(jnp.square(y), axis=(1, 2)))
  return num / jnp.maximum(den, _EPS)


def _layer_mean(fn, feats: Mapping[str, jax.Array], targets: Mapping[str, jax.Array], layers) -> jax.Array:
  return sum(fn(feats[n], targets[n]) for n in layers) / len(layers)


# ----------------------------------------------------------------------------- image measures


def style_distance(
  params: Mapping,
  images: ArrayLike,
  style: ArrayLike,
  *,
  layers: Sequence[str] = STYLE_LAYERS,
  pooling: str = "max",
) -> jax.Array:
  """Mean relative Gram distance to the style over VGG19 layers.

  ``(1/L) sum_l ||G_l(x) - G_l(s)||_F / ||G_l(s)||_F`` with Grams divided by ``H_l W_l``
  (:func:`gram_distance`), at relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 by default.

  Args:
    params: VGG19 params.
    images: ``(N, H, W, 3)`` RGB in [0, 1].
    style: ``(1, H', W', 3)`` or ``(N, H', W', 3)``, any size.
    layers: VGG19 layer names.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"``.

  Returns:
    ``(N,)`` float32.
  """
  return _style_mean(gram_distance, params, images, style, tuple(layers), pooling)


def style_distance_of_features(
  image_features: Mapping[str, jax.Array],
  style_features: Mapping[str, jax.Array],
  *,
  layers: Sequence[str] = STYLE_LAYERS,
) -> jax.Array:
  """:func:`style_distance` from activations already extracted (the style's reused over many images).

  Args:
    image_features: layer name to ``(N, H_l, W_l, C_l)`` activations of the images.
    style_features: the same layers of the style, ``(1, ...)`` or ``(N, ...)``.
    layers: the layers averaged.

  Returns:
    ``(N,)`` float32.
  """
  return _layer_mean(gram_distance, image_features, style_features, tuple(layers))


def style_swd(
  params: Mapping,
  images: ArrayLike,
  style: ArrayLike,
  *,
  layers: Sequence[str] = STYLE_LAYERS,
  pooling: str = "max",
  num_projections: int = SWD_PROJECTIONS,
  seed: int = SWD_SEED,
) -> jax.Array:
  """Mean relative sliced Wasserstein distance to the style over VGG19 layers.

  ``(1/L) sum_l SW(F_l(x), F_l(s))`` (:func:`sliced_wasserstein`, the same ``seed`` at
  every layer), at relu1_1..relu5_1 by default.

  Args:
    params: VGG19 params.
    images: ``(N, H, W, 3)`` RGB in [0, 1].
    style: ``(1, H', W', 3)`` or ``(N, H', W', 3)``, any size.
    layers: VGG19 layer names.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"``.
    num_projections: random directions per layer.
    seed: seed of the directions.

  Returns:
    ``(N,)`` float32.
  """
  swd = lambda a, b: sliced_wasserstein(a, b, num_projections=num_projections, seed=seed)  # noqa: E731
  return _style_mean(swd, params, images, style, tuple(layers), pooling)


def _style_mean(fn, params, images, style, layers: tuple[str, ...], pooling: str) -> jax.Array:
  """``fn`` of the images' and the style's features, averaged over ``layers``."""
  x, s = _nhwc(images, "images", 3), _nhwc(style, "style", 3)
  _check_target(x, s, "style")
  fx = vgg.extract_features(params, x, layers, pooling=pooling)
  fs = vgg.extract_features(params, s, layers, pooling=pooling)
  return _layer_mean(fn, fx, fs, layers)


def content_distance(
  params: Mapping,
  images: ArrayLike,
  content: ArrayLike,
  *,
  layer: str = CONTENT_LAYER,
  pooling: str = "max",
) -> jax.Array:
  """Relative distance of VGG19 features to the content's: ``||F(x) - F(c)|| / ||F(c)||``.

  At relu4_2 by default (:func:`feature_distance`).

  Args:
    params: VGG19 params.
    images: ``(N, H, W, 3)`` RGB in [0, 1].
    content: ``(1, H, W, 3)`` or ``(N, H, W, 3)``, the same size as ``images``.
    layer: a VGG19 layer name.
    pooling: ``"max"``, ``"avg"`` or ``"maxblur"``.

  Returns:
    ``(N,)`` float32.
  """
  x, c = _nhwc(images, "images", 3), _nhwc(content, "content", 3)
  _check_target(x, c, "content")
  if x.shape[1:3] != c.shape[1:3]:
    raise ValueError(f"images {x.shape} and content {c.shape} must be the same size (resize them first)")
  fx = vgg.extract_features(params, x, [layer], pooling=pooling)[layer]
  fc = vgg.extract_features(params, c, [layer], pooling=pooling)[layer]
  return feature_distance(fx, fc)


def luminance(images: ArrayLike) -> jax.Array:
  """Rec. 601 luma ``Y = 0.299 R + 0.587 G + 0.114 B`` of ``(N, H, W, 3)``, as ``(N, H, W)``."""
  x = _nhwc(images, "images", 3)
  return jnp.einsum("nhwc,c->nhw", x, jnp.asarray(LUMA, jnp.float32))


def color_stats(images: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Mean and covariance of the RGB pixel values of each image.

  ``mu = (1/P) sum_p x_p`` and ``Sigma = (1/P) sum_p (x_p - mu)(x_p - mu)^T`` over the
  ``P = H W`` pixels (population covariance).

  Args:
    images: ``(N, H, W, 3)``.

  Returns:
    ``(mu, Sigma)``: ``(N, 3)`` and ``(N, 3, 3)`` float32.
  """
  x = _nhwc(images, "images", 3)
  x = x.reshape(x.shape[0], -1, 3)
  mu = jnp.mean(x, axis=1)
  d = x - mu[:, None, :]
  return mu, jnp.einsum("npc,npd->ncd", d, d) / x.shape[1]


def color_distance(images: ArrayLike, reference: ArrayLike) -> jax.Array:
  """Distance between the colour statistics of images and a reference image.

  ``d = ||mu_x - mu_r||_2 + ||Sigma_x - Sigma_r||_F`` with the RGB means and covariances
  of :func:`color_stats`, in [0, 1] pixel units (a mean off by 0.1 in every channel adds
  0.17). Pass the style or the content as ``reference``.

  Args:
    images: ``(N, H, W, 3)`` RGB in [0, 1].
    reference: ``(1, H', W', 3)`` or ``(N, H', W', 3)``, any size.

  Returns:
    ``(N,)`` float32.
  """
  x, r = _nhwc(images, "images", 3), _nhwc(reference, "reference", 3)
  _check_target(x, r, "reference")
  mx, sx = color_stats(x)
  mr, sr = color_stats(r)
  return jnp.sqrt(jnp.sum(jnp.square(mx - mr), axis=1)) + jnp.sqrt(jnp.sum(jnp.square(sx - sr), axis=(1, 2)))


def _laplacian(y: jax.Array) -> jax.Array:
  # 4-neighbour Laplacian where all four neighbours exist: (N, H, W) -> (N, H - 2, W - 2).
  return 4.0 * y[:, 1:-1, 1:-1] - y[:, :-2, 1:-1] - y[:, 2:, 1:-1] - y[:, 1:-1, :-2] - y[:, 1:-1, 2:]


def _frame_mask(h: int, w: int, width: int) -> np.ndarray:
  i, j = np.arange(h)[:, None], np.arange(w)[None, :]
  return np.minimum(np.minimum(i, h - 1 - i), np.minimum(j, w - 1 - j)) < width


def border_energy(images: ArrayLike, *, width: int = BORDER_WIDTH) -> jax.Array:
  """Edge energy in the outer frame relative to the interior.

  On the luminance ``Y`` (:func:`luminance`), the 4-neighbour Laplacian
  ``L[i, j] = 4 Y[i, j] - Y[i-1, j] - Y[i+1, j] - Y[i, j-1] - Y[i, j+1]`` is taken at every
  pixel that has all four neighbours (an ``(H-2) x (W-2)`` map: no padding, so a smooth
  ramp scores no edge anywhere). The frame is the outer ``width`` rows and columns of that
  map (image pixels 1..``width`` from the edge, whose stencils also read the outermost
  row), the interior the rest, and

  ``E = (mean_frame |L| + eps) / (mean_interior |L| + eps)``, ``eps = 1e-6`` (:data:`EDGE_EPS`,
  below float32 rounding of a smooth ramp's Laplacian and far below 8-bit quantization).

  About 1 when edges are spread evenly (a flat image or a linear ramp gives 1); above 1 when the
  border carries bright/dark stripes or ringing, a common artifact of zero-padded
  convolutions; below 1 when the border is smoother than the rest.

  Args:
    images: ``(N, H, W, 3)`` RGB, with ``H, W > 2 * width + 2``.
    width: frame width in pixels.

  Returns:
    ``(N,)`` float32.
  """
  x = _nhwc(images, "images", 3)
  h, w = x.shape[1] - 2, x.shape[2] - 2
  if width < 1 or min(h, w) <= 2 * width:
    raise ValueError(f"border_energy needs width >= 1 and images larger than {2 * width + 2} px, got {x.shape}")
  a = jnp.abs(_laplacian(luminance(x)))
  frame = jnp.asarray(_frame_mask(h, w, width), jnp.float32)[None]
  inner = 1.0 - frame
  e_frame = jnp.sum(a * frame, axis=(1, 2)) / jnp.sum(frame)
  e_inner = jnp.sum(a * inner, axis=(1, 2)) / jnp.sum(inner)
  return (e_frame + EDGE_EPS) / (e_inner + EDGE_EPS)


def periodic_bins(
  h: int, w: int, period: int, *, radius: int = PERIODIC_RADIUS, gap: int = 0
) -> list[tuple[tuple, np.ndarray]]:
  """The 2-D DFT bins :func:`periodic_energy` compares, for an ``h x w`` map.

  ``h`` and ``w`` must be multiples of ``period``. The lattice of the period is every bin
  ``(a h / p, b w / p)``, ``0 <= a, b < p``; its primitive bins, those with
  ``gcd(a, b, p) = 1``, are the frequencies whose period is exactly ``p`` px (not a divisor
  of it: a 2 px checkerboard, at ``(p/2, p/2)`` in these units, has none of the 8 px
  lattice's primitive bins). Each primitive bin's neighbourhood is, for a bin on an axis
  (``a = 0`` or ``b = 0``), the bins of that axis line within ``radius`` of it
  (``(0, v + d)`` or ``(u + d, 0)``, ``gap < |d| <= radius``); for any other bin, the bins
  ``(u + du, v + dv)`` with ``gap < max(|du|, |dv|) <= radius``; indices modulo ``(h, w)``
  (``gap`` leaves out the main lobe of a window's leakage); in both cases less
  every bin of the lattice (``u`` a multiple of ``h / p`` and ``v`` of ``w / p``, ``(0, 0)``
  included). Axis lines get their own 1-D neighbourhoods because natural images (and the
  tiles' borders) put far more power on them than around them.

  Returns:
    ``[((u, v), neighbours), ...]``, one per primitive bin, ``neighbours`` an ``(m, 2)`` int
    array of distinct bins.
  """
  sh, sw = h // period, w // period
  on_lattice = lambda b: (b[:, 0] % sh == 0) & (b[:, 1] % sw == 0)
  d = np.concatenate([np.arange(-radius, -gap), np.arange(gap + 1, radius + 1)])
  out = []
  for a in range(period):
    for b in range(period):
      if math.gcd(a, b, period) != 1:
        continue
      u, v = a * sh, b * sw
      if a == 0:
        nb = np.stack([np.zeros_like(d), v + d], axis=1)
      elif b == 0:
        nb = np.stack([u + d, np.zeros_like(d)], axis=1)
      else:
        du, dv = np.meshgrid(np.arange(-radius, radius + 1), np.arange(-radius, radius + 1), indexing="ij")
        ring = np.maximum(np.abs(du), np.abs(dv)).ravel() > gap
        nb = np.stack([u + du.ravel()[ring], v + dv.ravel()[ring]], axis=1)
      nb = np.unique(np.mod(nb, [h, w]), axis=0)
      out.append(((u, v), nb[~on_lattice(nb)]))
  return out


def _periodic_index(
  h: int, w: int, period: int, radius: int, gap: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  # periodic_bins as flat indices: lattice (K,), neighbours (K, m) padded, and their 0/1 weights.
  bins = periodic_bins(h, w, period, radius=radius, gap=gap)
  m = max(len(nb) for _, nb in bins)
  lattice = np.array([u * w + v for (u, v), _ in bins], np.int32)
  index = np.zeros((len(bins), m), np.int32)
  weight = np.zeros((len(bins), m), np.float32)
  for k, (_, nb) in enumerate(bins):
    index[k, : len(nb)] = nb[:, 0] * w + nb[:, 1]
    weight[k, : len(nb)] = 1.0
  return lattice, index, weight


def periodic_energy(
  images: ArrayLike,
  *,
  periods: Sequence[int] = PERIODS,
  radius: int = PERIODIC_RADIUS,
  tile: int | None = None,
) -> jax.Array:
  """Spectral peaks at the harmonics of pixel grids of the given periods.

  Checkerboards (2 px), the dot lattices that strided pooling leaves in VGG gradients
  (2, 4, 8, 16 px), grid lines and JPEG-like blocks (8 px) are patterns that repeat every
  ``p`` pixels in both directions, so their 2-D spectrum has peaks on the lattice of
  frequencies ``(a / p, b / p)`` cycles per pixel. With ``q = lcm(periods)`` and the tile
  side ``T`` (``tile``; by default 64 px, or for images under 66 px the largest multiple of
  ``q`` that fits):

  1. ``L``, the 4-neighbour Laplacian of the luminance (as in :func:`border_energy`, an
     ``(H-2) x (W-2)`` map), cropped to its top-left ``floor((H-2)/T) T x floor((W-2)/T) T``
     and cut into ``T x T`` tiles, so that every harmonic falls on an exact DFT bin of a
     tile. The Laplacian whitens natural images (their 1/f^2 spectrum becomes about flat),
     so that peaks stand out against a smooth neighbourhood.
  2. Two maps: ``L`` itself and ``|L|``. ``|L|`` is needed because a pattern of random
     constant offsets per block has a spectrum whose sinc envelope vanishes at every
     harmonic, while its edges (``|L|``) repeat; ``L`` is needed because ``|.|`` turns a
     checkerboard or 2 px stripes into a constant. For each map, the power spectrum
     averaged over tiles (Welch's method, no window): ``S = mean_tiles |FFT2(m - mean m)|^2``,
     ``T x T``. Averaging over tiles keeps periodic peaks (coherent in every tile) and
     steadies the noise floor; a longer tile makes weak patterns stand out more (a
     coherent peak over a noise floor grows with the tile's area). 64 px keeps clean photos
     (downscaled from JPEG) and noise between about 0.7 and 1.5.
  3. For each period ``p`` and map, over the primitive harmonics of :func:`periodic_bins`
     (``(a T / p, b T / p)``, ``0 <= a, b < p``, ``gcd(a, b, p) = 1``: the frequencies whose
     period is exactly ``p``), each bin's
     ``ratio = (S(bin) + eps) / (mean_{neighbourhood} S + eps)`` (neighbourhood: the bins of
     the same axis line within ``radius`` for a bin on an axis, the surrounding
     ``(2 radius + 1)^2 - 1`` window otherwise, lattice bins excluded), with
     ``eps = (1e-6 T^2)^2`` (the power of a ripple of about 1e-6, :data:`EDGE_EPS`: float32
     rounding, not signal); ``R_map(p)`` is the mean of the ratios over those bins.
  4. ``E(p) = max(R_L(p), R_|L|(p))``.

  About 1 for noise or a natural image (a flat image gives exactly 1; small images, with
  few tiles, vary more, most at 2 px, which has 3 primitive bins). A pattern of period
  ``P`` scores high at ``P`` and may at divisors of ``P`` (its sharp edges have harmonics at
  ``k / P``: 8 px grid lines score at 8, 4 and 2, 8 px blocks at 8 and 4), never at
  multiples of ``P`` (a 2 px checkerboard does not score at 4, 8 or 16): the largest
  period with a high score is the pattern's. Photos decoded from JPEG at their stored size
  score at 8 and 4 (their own blocking); downscaled, they do not.

  Args:
    images: ``(N, H, W, 3)`` RGB, with ``H, W >= T + 2`` (34 px for the default periods).
    periods: grid periods in pixels, each at least 2.
    radius: the neighbourhood's half-width in bins.
    tile: the tile side ``T``: a multiple of ``q``, at least twice the largest period;
      ``None`` for ``min(64, floor((min(H, W) - 2) / q) q)``.

  Returns:
    ``(N, len(periods))`` float32, one column per period.
  """
  x = _nhwc(images, "images", 3)
  periods = tuple(int(p) for p in periods)
  if not periods or min(periods) < 2 or radius < 1:
    raise ValueError(f"periods must be integers >= 2 and radius >= 1, got {periods} and {radius}")
  q = math.lcm(*periods)
  smallest = -(-2 * max(periods) // q) * q
  if tile is None:
    tile = max(smallest, min(PERIODIC_TILE, (min(x.shape[1:3]) - 2) // q * q))
  if tile % q or tile < smallest:
    raise ValueError(f"tile must be a multiple of {q} and at least {smallest} for periods {periods}, not {tile}")
  n, th, tw = x.shape[0], (x.shape[1] - 2) // tile, (x.shape[2] - 2) // tile
  if min(th, tw) < 1:
    raise ValueError(f"periodic_energy needs images of at least {tile + 2} px, got {x.shape}")
  lap = _laplacian(luminance(x))[:, : th * tile, : tw * tile]
  lap = lap.reshape(n, th, tile, tw, tile).transpose(0, 1, 3, 2, 4).reshape(n, th * tw, tile, tile)
  eps = (EDGE_EPS * tile * tile) ** 2
  spectra = []
  for m in (lap, jnp.abs(lap)):
    m = m - jnp.mean(m, axis=(2, 3), keepdims=True)
    spectra.append(jnp.mean(jnp.square(jnp.abs(jnp.fft.fft2(m))), axis=1).reshape(n, tile * tile))
  out = []
  for p in periods:
    lattice, index, weight = _periodic_index(tile, tile, p, radius)
    wt = jnp.asarray(weight)[None]
    r = []
    for s in spectra:
      floor = jnp.sum(jnp.take(s, index, axis=1) * wt, axis=2) / jnp.sum(wt, axis=2)
      r.append(jnp.mean((jnp.take(s, lattice, axis=1) + eps) / (floor + eps), axis=1))
    out.append(jnp.maximum(r[0], r[1]))
  return jnp.stack(out, axis=1)


def periodic_peak(
  images: ArrayLike,
  *,
  periods: Sequence[int] = PEAK_PERIODS,
  radius: int = PEAK_RADIUS,
  gap: int = PEAK_GAP,
) -> jax.Array:
  """The highest single spectral peak at the harmonics of pixel grids, over the whole picture.

  :func:`periodic_energy` averages short tiles and several harmonics, which steadies it on
  natural images but lets a faint pattern (a checkerboard of a fraction of a grey level
  over a 512 px picture) vanish into the floor. Here, with ``q = lcm(periods)``:

  1. ``Y``, the luminance (:func:`luminance`), cropped to its top-left
     ``floor(H/q) q x floor(W/q) q`` (``h x w``), its mean removed, times a 2-D Hann window
     ``w(i, j) = hann_h(i) hann_w(j)`` (``numpy.hanning``), so that the picture's edges leak
     no power into the neighbourhoods.
  2. ``S = |FFT2(w (Y - mean Y))|^2``, one spectrum over the whole picture: a coherent
     pattern concentrates on its bins while the floor is spread over all ``h w``.
  3. For each period ``p``, at each primitive bin of :func:`periodic_bins` (``h x w`` map,
     its neighbourhoods less the ``gap`` bins next to it, where the window spreads a peak's
     own power: a quarter of it on each side), ``ratio = (S(bin) + eps) / (mean_{neighbourhood} S + eps)``,
     ``eps = (1e-6 sum w)^2`` (a ripple of amplitude 1e-6, :data:`EDGE_EPS`); ``P(p)`` is the
     largest ratio (the diagonal, the vertical or the horizontal one for ``p = 2``).

  About 1 for noise, a flat image (exactly 1) or a clean picture; a period-2 checkerboard of
  amplitude 1/1000 on a natural 256 px picture already stands far above it.

  Args:
    images: ``(N, H, W, 3)`` RGB, with ``floor(H/q) q`` and ``floor(W/q) q`` at least
      ``2 (2 radius + 1)``.
    periods: grid periods in pixels, each at least 2.
    radius: the neighbourhood's half-width in bins.
    gap: bins next to a peak left out of its neighbourhood, ``0 <= gap < radius``.

  Returns:
    ``(N, len(periods))`` float32, one column per period.
  """
  x = _nhwc(images, "images", 3)
  periods = tuple(int(p) for p in periods)
  if not periods or min(periods) < 2 or not 0 <= gap < radius:
    raise ValueError(f"periods must be integers >= 2 and 0 <= gap < radius, got {periods}, {gap} and {radius}")
  s, h, w, total = _whole_spectrum(x, math.lcm(*periods), 2 * (2 * radius + 1), "periodic_peak")
  eps = (EDGE_EPS * total) ** 2
  out = []
  for p in periods:
    lattice, index, weight = _periodic_index(h, w, p, radius, gap)
    wt = jnp.asarray(weight)[None]
    floor = jnp.sum(jnp.take(s, index, axis=1) * wt, axis=2) / jnp.sum(wt, axis=2)
    out.append(jnp.max((jnp.take(s, lattice, axis=1) + eps) / (floor + eps), axis=1))
  return jnp.stack(out, axis=1)


def _whole_spectrum(x: jax.Array, q: int, smallest: int, what: str) -> tuple[jax.Array, int, int, float]:
  # Power spectrum of the Hann-windowed, centred luminance cropped to multiples of q: ((N, h*w), h, w, sum w).
  h, w = x.shape[1] // q * q, x.shape[2] // q * q
  if min(h, w) < smallest:
    raise ValueError(f"{what} needs images of at least {smallest} px, got {x.shape}")
  y = luminance(x)[:, :h, :w]
  window = np.outer(np.hanning(h), np.hanning(w))
  y = (y - jnp.mean(y, axis=(1, 2), keepdims=True)) * jnp.asarray(window, jnp.float32)[None]
  return jnp.square(jnp.abs(jnp.fft.fft2(y))).reshape(x.shape[0], h * w), h, w, float(window.sum())


def periodic_amplitude(images: ArrayLike, *, periods: Sequence[int] = PEAK_PERIODS) -> jax.Array:
  """The amplitude of the strongest whole-picture pattern of exact period ``p``, in luminance units.

  The spectrum of :func:`periodic_peak` (steps 1 and 2), read as an amplitude: a pattern
  ``A cos(2 pi (a i / p + b j / p))`` over the picture puts ``|FFT| = A sum(w) / 2`` on each of
  its two conjugate bins, or ``A sum(w)`` on a bin that is its own conjugate (the period-2
  bins: ``A (-1)^(i+j)``, ``A (-1)^i``, ``A (-1)^j``), so
  ``A = c sqrt(S(bin)) / sum(w)``, ``c`` 1 or 2; the largest over the primitive bins of
  :func:`periodic_bins`. It says whether a peak that :func:`periodic_peak` finds could be
  seen: times 255 it is in 8-bit grey levels, and a coherent pattern far below one level
  stands out only to a whole-picture spectrum.

  Args:
    images: ``(N, H, W, 3)`` RGB, with ``floor(H/q) q`` and ``floor(W/q) q`` at least ``q``.
    periods: grid periods in pixels, each at least 2.

  Returns:
    ``(N, len(periods))`` float32.
  """
  x = _nhwc(images, "images", 3)
  periods = tuple(int(p) for p in periods)
  if not periods or min(periods) < 2:
    raise ValueError(f"periods must be integers >= 2, got {periods}")
  q = math.lcm(*periods)
  s, h, w, total = _whole_spectrum(x, q, q, "periodic_amplitude")
  out = []
  for p in periods:
    bins = [uv for uv, _ in periodic_bins(h, w, p, radius=1)]
    flat = np.array([u * w + v for u, v in bins], np.int32)
    c = np.array([1.0 if (2 * u) % h == 0 and (2 * v) % w == 0 else 2.0 for u, v in bins], np.float32)
    out.append(jnp.max(jnp.asarray(c)[None] * jnp.sqrt(jnp.take(s, flat, axis=1)), axis=1) / total)
  return jnp.stack(out, axis=1)


# ----------------------------------------------------------------------------------- scoring

features = jax.jit(vgg.extract_features, static_argnames=("layers", "pooling"))
""":func:`jaxstyle.nets.vgg.extract_features`, jitted (compiled once per shape and layer set): the activations
every measure of this module reads."""


@jax.jit
def _pixel_measures(x: jax.Array, content: jax.Array, style: jax.Array) -> dict[str, jax.Array]:
  if min(x.shape[1:3]) < 2 * max(PERIODS) + 2:  # too small for a tile holding every period: not measured
    pe = jnp.full((x.shape[0], len(PERIODS)), jnp.nan, jnp.float32)
  else:
    pe = periodic_energy(x)
  out = {
    "color_to_style": color_distance(x, style),
    "color_to_content": color_distance(x, content),
    "border": border_energy(x),
  }
  out.update({f"periodic_{p}": pe[:, i] for i, p in enumerate(PERIODS)})
  small = min(x.shape[1:3]) < 2 * (2 * PEAK_RADIUS + 1) + math.lcm(*PEAK_PERIODS)
  nan = jnp.full((x.shape[0], len(PEAK_PERIODS)), jnp.nan, jnp.float32)
  pk, amp = (nan, nan) if small else (periodic_peak(x), 255.0 * periodic_amplitude(x))
  out.update({f"peak_{p}": pk[:, i] for i, p in enumerate(PEAK_PERIODS)})
  out.update({f"peak_{p}_grey": amp[:, i] for i, p in enumerate(PEAK_PERIODS)})
  return out


@jax.jit
def _feature_measures(fx: dict, fc: dict, fs: dict) -> dict[str, jax.Array]:
  return {
    "style_gram": _layer_mean(gram_distance, fx, fs, STYLE_LAYERS),
    "style_swd": _layer_mean(sliced_wasserstein, fx, fs, STYLE_LAYERS),
    "content": feature_distance(fx[CONTENT_LAYER], fc[CONTENT_LAYER]),
  }


def score(
  params: Mapping,
  content: ArrayLike | str | os.PathLike,
  style: ArrayLike | str | os.PathLike,
  images: Sequence[ArrayLike | str | os.PathLike] | ArrayLike,
  *,
  pooling: str = "max",
) -> dict[str, np.ndarray]:
  """Every measure of this module for each image.

  Each image is first resized to the content's size (:func:`jaxstyle.images.resize`,
  Lanczos; unchanged when it already has it); the style keeps its own size. The VGG19
  features of the content, the style and each image are computed by one jitted function
  (up to relu5_1 for all three), compiled once per input shape: any number of images costs
  at most two compilations of the network (the content's shape, the style's) and one of
  each group of measures. One image at a time, so memory does not grow with their number.

  Keys (see :data:`METRICS`): ``style_gram`` (:func:`style_distance`), ``style_swd``
  (:func:`style_swd`), ``content`` (:func:`content_distance` at relu4_2),
  ``color_to_style`` and ``color_to_content`` (:func:`color_distance`), ``border``
  (:func:`border_energy`), ``periodic_2`` .. ``periodic_16`` (:func:`periodic_energy`),
  ``peak_2`` (:func:`periodic_peak`) and ``peak_2_grey`` (:func:`periodic_amplitude` in 8-bit
  grey levels). Everything at the module's defaults (relu1_1..relu5_1,
  64 directions, seed 0, 2 px frame, periods 2..16 with 64 px tiles, or smaller ones for a
  content under 66 px).

  Args:
    params: VGG19 params.
    content: ``(H, W, 3)`` RGB in [0, 1], or a path.
    style: ``(H', W', 3)`` RGB in [0, 1], or a path.
    images: ``(H'', W'', 3)`` images (or paths), or an ``(N, H'', W'', 3)`` array.
    pooling: the VGG's pooling, ``"max"``, ``"avg"`` or ``"maxblur"``.

  Returns:
    dict from metric name to an ``(N,)`` float64 NumPy array.
  """
  c = imageio.as_image(content, "content")
  s = imageio.as_image(style, "style")
  items = list(images) if not isinstance(images, (np.ndarray, jax.Array)) else list(np.asarray(images))
  layers = STYLE_LAYERS + (CONTENT_LAYER,)
  # One layer set for all, so that an image of the content's (or style's) shape runs the very
  # executable its target ran: an image equal to its target then has the same features.
  fc = features(params, c[None], layers=layers, pooling=pooling)
  fs = features(params, s[None], layers=layers, pooling=pooling)
  rows = []
  for k, im in enumerate(items):
    x = imageio.resize(imageio.as_image(im, f"image {k}"), c.shape[:2])[None]
    fx = features(params, x, layers=layers, pooling=pooling)
    row = _feature_measures(fx, fc, fs)
    row.update(_pixel_measures(x, c[None], s[None]))
    rows.append(row)
  return {k: np.array([float(r[k][0]) for r in rows], np.float64) for k in METRICS}


def score_table(
  params: Mapping,
  content: ArrayLike | str | os.PathLike,
  style: ArrayLike | str | os.PathLike,
  images: Sequence[ArrayLike | str | os.PathLike],
  *,
  names: Sequence[str] | None = None,
  pooling: str = "max",
) -> str:
  """:func:`score` as an aligned text table, one row per image, for a command line.

  Args:
    params, content, style, images, pooling: as for :func:`score`.
    names: row labels (default: the paths given, else ``image 0``, ``image 1``, ...).

  Returns:
    the table, lines joined by newlines, ending without one.
  """
  items = list(images)
  if names is None:
    names = [str(im) if isinstance(im, (str, os.PathLike)) else f"image {k}" for k, im in enumerate(items)]
  names = list(names)
  if len(names) != len(items):
    raise ValueError(f"{len(names)} names for {len(items)} images")
  scores = score(params, content, style, items, pooling=pooling)
  header = ["image"] + list(METRICS)
  return text_table(header, [[n] + [f"{scores[m][k]:.4g}" for m in METRICS] for k, n in enumerate(names)])


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """Rows of text cells aligned in columns: the first left-aligned, the rest right-aligned (numbers)."""
  widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
  fmt = lambda r: "  ".join([r[0].ljust(widths[0])] + [v.rjust(wd) for v, wd in zip(r[1:], widths[1:], strict=True)])
  return "\n".join(fmt(r) for r in [header, *rows])
