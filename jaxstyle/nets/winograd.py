"""Winograd F(4x4, 3x3) convolution (Lavin & Gray 2016), for VGG's wide layers on CPU.

A SAME 3x3 convolution computes each 4x4 output tile from a 6x6 input tile. Winograd's
algorithm transforms both tiles to a 6x6 "frequency" grid where the convolution becomes
36 independent matrix products over channels: 36 multiply-adds per channel pair for 16
outputs instead of 144, a quarter of the FLOPs. The transforms cost memory traffic that
grows with C_in + C_out while the saved FLOPs grow with C_in * C_out, so it wins on wide
layers (measurements in bench/RESULTS.md; the threshold is
:data:`jaxstyle.vgg.WINOGRAD_MIN_WIDTH`).

The kernel transform is done once per run (:func:`transform_kernel`) and passed in, so
a step does no work on weights. Interpolation points 0, +-1, +-2 (and infinity) keep the
float32 error near 1e-5 of the output's largest value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

TILE = 4  # outputs per tile side
POINTS = 6  # transformed tile side, TILE + 3 - 1

# Lavin & Gray's F(4, 3) matrices: input B^T, kernel G, output A^T.
_BT = np.array(
  [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
  ],
  np.float64,
)
_G = np.array(
  [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
  ],
  np.float64,
)
_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)


def transform_kernel(kernel: ArrayLike) -> jax.Array:
  """``G g G^T`` for every channel pair.

  Args:
    kernel: ``(3, 3, C_in, C_out)`` (HWIO).

  Returns:
    ``(36, C_in, C_out)`` float32, the 6x6 transformed taps flattened row-major.
  """
  kernel = jnp.asarray(kernel, jnp.float32)
  if kernel.ndim != 4 or kernel.shape[:2] != (3, 3):
    raise ValueError(f"kernel must be (3, 3, C_in, C_out), got shape {kernel.shape}")
  _, _, c_in, c_out = kernel.shape
  kron = jnp.asarray(np.kron(_G, _G), jnp.float32)  # (36, 9): [a*6+b, i*3+j] = G[a,i] G[b,j]
  u = jnp.dot(kron, kernel.reshape(9, c_in * c_out), precision=jax.lax.Precision.HIGHEST)
  return u.reshape(POINTS * POINTS, c_in, c_out)


def _combine(matrix: np.ndarray, parts: list[jax.Array]) -> list[jax.Array]:
  """``matrix @ parts`` with the small integer matrix unrolled into adds (no multiplies
  by 0 or +-1): faster on XLA:CPU than a matrix product for the input transform."""
  out = []
  for row in matrix:
    acc = None
    for c, p in zip(row, parts, strict=True):
      if c == 0:
        continue
      term = p if c == 1 else -p if c == -1 else p * float(c)  # a Python float keeps p's dtype
      acc = term if acc is None else acc + term
    out.append(acc)
  return out


def conv3x3(x: ArrayLike, u: ArrayLike) -> jax.Array:
  """SAME, stride-1 3x3 cross-correlation through the Winograd domain.

  Equals ``lax.conv_general_dilated(x, kernel, (1, 1), "SAME")`` in NHWC/HWIO up to
  float32 rounding, for any H and W (edges are zero-padded to whole tiles and cropped).

  Args:
    x: ``(N, H, W, C_in)``.
    u: ``(36, C_in, C_out)`` from :func:`transform_kernel`.

  Returns:
    ``(N, H, W, C_out)``.
  """
  x = jnp.asarray(x)
  u = jnp.asarray(u)
  n, h, w, c = x.shape
  if u.shape[:2] != (POINTS * POINTS, c):
    raise ValueError(f"transformed kernel {u.shape} does not fit input channels {c}")
  th, tw = -(-h // TILE), -(-w // TILE)
  xp = jnp.pad(x, ((0, 0), (1, 1 + TILE * th - h), (1, 1 + TILE * tw - w), (0, 0)))
  # Input transform B^T d B: rows first (strided row slices are the tiles' rows), then the
  # columns of all six at once; few, large ops keep the program small (compile 1.4 s against
  # 3.7 s for 36 separately transformed slices, at the same speed).
  rows = jnp.stack(_combine(_BT, [xp[:, i : i + TILE * th : TILE] for i in range(POINTS)]))  # (6, N, th, W+, C)
  v = jnp.stack(_combine(_BT, [rows[:, :, :, j : j + TILE * tw : TILE] for j in range(POINTS)]), axis=1)
  v = v.reshape(POINTS * POINTS, n * th * tw, c)
  m = jax.lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))  # (36, tiles, C_out)
  # Output transform A^T m A as one (16, 36) matrix product (faster on XLA:CPU than
  # unrolled adds here), then the 4x4 outputs of each tile back into place.
  kron = jnp.asarray(np.kron(_AT, _AT), m.dtype)
  c_out = u.shape[-1]
  y = jnp.dot(kron, m.reshape(POINTS * POINTS, n * th * tw * c_out), precision=jax.lax.Precision.HIGHEST)
  y = y.reshape(TILE, TILE, n, th, tw, c_out).transpose(2, 3, 0, 4, 1, 5).reshape(n, TILE * th, TILE * tw, c_out)
  return y[:, :h, :w]
