"""Magenta's convolutions as XLA:CPU runs them fast (the ``"cpu"`` kernels of :mod:`jaxstyle.nets.magenta`).

Exact reformulations of the plain layers, chosen by measurement on XLA:CPU: convolutions in strips of
output rows (:func:`conv`), and the full-resolution layers in phase ("space-to-depth") form
(:func:`space_to_depth`, :func:`phase_kernel`). The params are the plain layers'; on GPU and TPU the
networks use plain convolutions (``kernels="auto"``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_DIMS = ("NHWC", "HWIO", "NHWC")


# Convolutions run in horizontal strips of output rows, in a loop. XLA:CPU hands convolutions with more than 16
# input or output channels to YNNPACK, which first builds the whole im2col matrix (kh * kw * C_in floats per
# output pixel): at 1024 px hundreds of MB, mapped afresh and page-faulted on every call, then read from memory.
# A strip's matrix of about STRIP_BYTES is reused from the allocator and stays in cache (a 3x3 32 -> 32
# convolution at 256 x 192: 54 ms -> 12 ms). YNNPACK uses a second thread only for wide rows, so narrow maps
# put several strips side by side, W_BATCH output columns in all.
STRIP_BYTES = 2 << 20
MAX_STRIPS = 64
W_BATCH = 1024
MAX_GROUP = 4  # a wider loop body compiles slower: batch 4 at 384 x 288, 4.1 s with 4, 5.5 s with 8


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """VALID NHWC/HWIO cross-correlation, in strips of output rows (see :data:`STRIP_BYTES`); the same sums as
  one ``lax.conv_general_dilated``."""
  n, hp, wp, c = x.shape
  kh, kw = kernel.shape[:2]
  ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
  full = lambda a: jax.lax.conv_general_dilated(a, kernel, (stride, stride), "VALID", dimension_numbers=_DIMS)
  strips = min(ho, MAX_STRIPS, -(-(n * ho * wo * kh * kw * c * 4) // STRIP_BYTES))
  if strips <= 1:
    return full(x)
  group = max(1, min(strips // 2, MAX_GROUP, -(-W_BATCH // wo)))  # strips side by side per convolution
  loops = max(1, (strips - 1) // group)
  rows = ho // (loops * group + 1)
  first = ho - loops * group * rows  # the first strip, outside the loop, takes the remainder
  span = (rows - 1) * stride + kh

  def body(i, out):
    start = first + (i - 1) * group * rows
    bands = [jax.lax.dynamic_slice_in_dim(x, (start + j * rows) * stride, span, axis=1) for j in range(group)]
    y = full(jnp.concatenate(bands, axis=2))  # the outputs that straddle two bands are dropped
    parts = [y[:, :, j * wp // stride : j * wp // stride + wo] for j in range(group)]
    return jax.lax.dynamic_update_slice_in_dim(out, jnp.concatenate(parts, axis=1), start, axis=1)

  # The loop's buffer starts as the first strip padded with zeros: a fresh buffer of its own (a zeros constant
  # would be shared, and copied into every loop).
  out = jnp.pad(full(x[:, : (first - 1) * stride + kh]), ((0, 0), (0, ho - first), (0, 0), (0, 0)))
  return jax.lax.fori_loop(1, loops + 1, body, out)


# Phase ("space-to-depth") form with factor s of a map whose sides are multiples of s: (N, H, W, C) ->
# (N, H/s, W/s, s*s*C), channels ordered (row phase, column phase, channel). The full-resolution layers run in
# it: the same sums with s*s times the channels at 1/(s*s) of the pixels. With 3 or 8 channels XLA:CPU would
# convolve through Eigen (YNNPACK takes only convolutions with more than 16 channels in or out), 4-8x slower
# per FLOP here; and even 3 -> 32 (MultiStyle26's first layer), which YNNPACK takes, runs 1.5x faster in phase
# form. The last layer takes the smallest factor that gets it to YNNPACK.
YNN_MIN_CHANNELS = 17
FIRST_PHASES = 2


def last_phases(c_in: int, c_out: int) -> int:
  return 2 if 4 * max(c_in, c_out) >= YNN_MIN_CHANNELS else 4


def space_to_depth(x: jax.Array, s: int = 2) -> jax.Array:
  """``(N, H, W, C)`` -> ``(N, H/s, W/s, s*s*C)``."""
  n, h, w, c = x.shape
  return x.reshape(n, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // s, w // s, s * s * c)


def depth_to_space(x: jax.Array, s: int = 2) -> jax.Array:
  """Inverse of :func:`space_to_depth`."""
  n, h, w, cs = x.shape
  c = cs // (s * s)
  return x.reshape(n, h, w, s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, s * h, s * w, c)


def _taps(size: int, mode: str, s: int) -> np.ndarray:
  """``S[b, p, q, t]``: how many times tap ``t`` of a 1-D kernel of ``size`` reads input phase ``p`` at block
  offset ``b`` for output phase ``q``, per axis.

  * ``"same"``: stride 1, input (reflect-padded by ``size // 2``, a multiple of ``s``) and output in phase form.
  * ``"down"``: stride 2 (``size`` 3), input in phase form (``s`` 2), output plain. Output ``i`` reads rows
    ``2i - 1 .. 2i + 1``: phase 1 of block ``i - 1`` and both phases of block ``i``. Row -1 reflects to row 1,
    phase 1 of block 0, so the input is padded before by one copy of its first block; nothing after.
  * ``"up"``: nearest x2 then stride 1 (``size`` 3), input plain at the low resolution, output in phase form
    (``s`` 2). The reflection of the upsampled map by one pixel is the upsampled edge padding, so the input is
    edge-padded by one and output phase ``q`` of pixel ``i`` reads low-resolution rows ``i - 1 + q .. i + q``;
    two taps can fall on the same row, hence counts.
  """
  if mode == "same":  # stride 1, phase form in and out, input reflect-padded by size // 2 (a multiple of s)
    out = np.zeros(((s - 1 + size - 1) // s + 1, s, s, size))
    for q in range(s):
      for t in range(size):
        out[(q + t) // s, (q + t) % s, q, t] = 1
  elif mode == "down":  # stride 2 from phase form (s = 2) to plain, input padded by one block before
    out = np.zeros((2, 2, 1, size))
    for t in range(size):
      r = t - size // 2
      out[r // 2 + 1, r % 2, 0, t] = 1
  else:  # "up": nearest x2 then stride 1, plain input edge-padded by one, output in phase form (s = 2)
    out = np.zeros((3, 1, 2, size))
    for q in range(2):
      for t in range(size):
        out[(q + t - size // 2) // 2 + 1, 0, q, t] += 1
  return out


def phase_kernel(kernel: jax.Array, mode: str, s: int = 2) -> jax.Array:
  """The HWIO kernel of the convolution in phase form equivalent to ``kernel`` (exact: each transformed tap is a
  sum of original taps)."""
  taps = jnp.asarray(_taps(kernel.shape[0], mode, s), kernel.dtype)
  k = jnp.einsum("ipqt,jrsu,tuco->ijprcqso", taps, taps, kernel, precision=jax.lax.Precision.HIGHEST)
  b, _, p, _, c, q, _, o = k.shape
  return k.reshape(b, b, p * p * c, q * q * o)
