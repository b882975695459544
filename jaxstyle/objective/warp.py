"""Warping an image by a flow: the sampling that video's temporal terms and optical flow both use.

A flow ``w`` of shape ``(H, W, 2)`` holds ``(dx, dy)`` in px; :func:`warp` samples an image at ``x + w(x)``,
bilinearly or with Catmull-Rom, edges replicated. It is differentiable in the image (a clip optimized jointly
differentiates its temporal terms through it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def _catmull_rom(t: jax.Array) -> tuple[jax.Array, ...]:
  """The four weights of Catmull-Rom interpolation at offsets -1, 0, 1, 2 for a fraction ``t``."""
  t2, t3 = t * t, t * t * t
  return (-t3 + 2 * t2 - t) / 2, (3 * t3 - 5 * t2 + 2) / 2, (-3 * t3 + 4 * t2 + t) / 2, (t3 - t2) / 2


def warp(image: ArrayLike, flow: ArrayLike, *, cubic: bool = False) -> jax.Array:
  """Samples ``image`` at ``x + flow(x)``, edges replicated.

  Args:
    image: ``(H, W)`` or ``(H, W, C)``.
    flow: ``(H, W, 2)``, ``(dx, dy)`` in px.
    cubic: Catmull-Rom instead of bilinear interpolation (sharper: warping a picture again and again, as a
      video's previous output is, blurs it less).

  Returns:
    an array of ``image``'s shape.
  """
  image = jnp.asarray(image, jnp.float32)
  flow = jnp.asarray(flow, jnp.float32)
  h, w = image.shape[:2]
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
  y = jnp.clip(yy + flow[..., 1], 0.0, h - 1.0)
  x = jnp.clip(xx + flow[..., 0], 0.0, w - 1.0)
  y0, x0 = jnp.floor(y), jnp.floor(x)
  fy, fx = y - y0, x - x0
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  if cubic:
    offsets, wy, wx = (-1, 0, 1, 2), _catmull_rom(fy), _catmull_rom(fx)
  else:
    offsets, wy, wx = (0, 1), (1 - fy, fy), (1 - fx, fx)
  if image.ndim == 3:
    wy, wx = [v[..., None] for v in wy], [v[..., None] for v in wx]
  out = 0.0
  for i, dy in enumerate(offsets):
    rows = jnp.clip(y0 + dy, 0, h - 1)
    line = sum(wx[j] * image[rows, jnp.clip(x0 + dx, 0, w - 1)] for j, dx in enumerate(offsets))
    out = out + wy[i] * line
  return out
