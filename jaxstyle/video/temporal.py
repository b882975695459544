"""Temporal consistency without training: a frame's own rendering made to agree with the previous output.

Bonneel, Tompkin, Sunkavalli, Sun, Paris & Pfister (2015), "Blind video temporal consistency": the output
``O_t`` keeps the gradients of the frame's own rendering ``P_t`` and the values of the previous output warped
into this frame, ``W_t``, where that warp can be trusted::

    O_t = argmin_O  sum |grad O - grad P_t|^2 + w_t |O - W_t|^2
    w_t = weight * reliable * exp(-falloff * |I_t - warp(I_{t-1})|^2)

(``I``: the input frames; ``reliable``: :func:`jaxstyle.video.flow.reliability`). Its normal equations
``(w - laplacian) O = w W - laplacian P`` are solved by preconditioned conjugate gradients from the blend of
the two, a fixed number of iterations so that the program is one jitted function. Where ``w`` is zero
(occlusions, new content) the result is ``P``'s gradients fitted to the trusted surroundings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def _neumann_laplacian(x: jax.Array) -> jax.Array:
  """The grid graph's Laplacian of ``(H, W, C)`` (negative semidefinite; zero flux across the border)."""
  xp = jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
  return xp[:-2, 1:-1] + xp[2:, 1:-1] + xp[1:-1, :-2] + xp[1:-1, 2:] - 4.0 * x


def _degree(h: int, w: int) -> jax.Array:
  """Neighbours per pixel (2 at corners, 3 on edges, 4 inside): the Laplacian's diagonal."""
  ones = jnp.ones((h, w), jnp.float32)
  rows = jnp.pad(ones[1:], ((0, 1), (0, 0))) + jnp.pad(ones[:-1], ((1, 0), (0, 0)))
  cols = jnp.pad(ones[:, 1:], ((0, 0), (0, 1))) + jnp.pad(ones[:, :-1], ((0, 0), (1, 0)))
  return rows + cols


def blend_weight(
  reliable: ArrayLike, frame: ArrayLike, warped_frame: ArrayLike, *, weight: float, falloff: float
) -> jax.Array:
  """``(H, W)`` temporal weight: ``weight * reliable * exp(-falloff * |frame - warped_frame|^2)``.

  Args:
    reliable: ``(H, W)`` in [0, 1].
    frame, warped_frame: ``(H, W, 3)`` RGB in [0, 1] (this input frame and the previous one warped to it).
    weight: the temporal term's weight.
    falloff: how fast a colour mismatch of the inputs removes it (per squared unit of RGB distance).
  """
  d2 = jnp.sum((jnp.asarray(frame) - jnp.asarray(warped_frame)) ** 2, axis=-1)
  return weight * jnp.asarray(reliable, jnp.float32) * jnp.exp(-falloff * d2)


def consistent_frame(styled: ArrayLike, warped: ArrayLike, weight: ArrayLike, *, iterations: int) -> jax.Array:
  """Solves ``(w - laplacian) O = w W - laplacian P`` for the output ``O``.

  Args:
    styled: ``(H, W, 3)`` the frame's own rendering ``P``.
    warped: ``(H, W, 3)`` the previous output warped to this frame ``W``.
    weight: ``(H, W)`` the temporal weight ``w`` (zero: ``P``'s gradients only).
    iterations: conjugate-gradient iterations.

  Returns:
    ``(H, W, 3)`` float32, clipped to [0, 1].
  """
  p = jnp.asarray(styled, jnp.float32)
  wp = jnp.asarray(warped, jnp.float32)
  w = jnp.asarray(weight, jnp.float32)[..., None]
  rhs = w * wp - _neumann_laplacian(p)
  diag = w + _degree(*p.shape[:2])[..., None]
  x0 = (w * wp + p) / (w + 1.0)

  def matvec(x):
    return w * x - _neumann_laplacian(x)

  def body(_, state):
    x, r, z, d = state
    q = matvec(d)
    rz = jnp.vdot(r, z)
    alpha = rz / jnp.maximum(jnp.vdot(d, q), 1e-20)
    x = x + alpha * d
    r_new = r - alpha * q
    z_new = r_new / diag
    beta = jnp.vdot(r_new, z_new) / jnp.maximum(rz, 1e-20)
    return x, r_new, z_new, z_new + beta * d

  r0 = rhs - matvec(x0)
  z0 = r0 / diag
  x, *_ = jax.lax.fori_loop(0, iterations, body, (x0, r0, z0, z0))
  return jnp.clip(x, 0.0, 1.0)


def _box3(x: jax.Array) -> jax.Array:
  xp = jnp.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
  rows = (xp[:-2] + xp[1:-1] + xp[2:]) / 3
  return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 3


def restore_detail(output: ArrayLike, styled: ArrayLike, *, max_gain: float = 2.0) -> jax.Array:
  """Scales ``output``'s finest detail (its difference to a 3x3 box blur) per channel to the energy that
  ``styled``'s has: averaging two textures that do not line up lowers their contrast, and repeating it frame
  after frame would fade the style.

  Args:
    output: ``(H, W, 3)`` the consistent frame.
    styled: ``(H, W, 3)`` the frame's own rendering.
    max_gain: the largest scale applied.

  Returns:
    ``(H, W, 3)`` in [0, 1].
  """
  o, p = jnp.asarray(output, jnp.float32), jnp.asarray(styled, jnp.float32)
  ho, hp = o - _box3(o), p - _box3(p)
  energy = lambda x: jnp.mean(x**2, axis=(0, 1), keepdims=True)  # noqa: E731
  gain = jnp.sqrt(energy(hp) / jnp.maximum(energy(ho), 1e-12))
  return jnp.clip(o + (jnp.clip(gain, 1.0, max_gain) - 1.0) * ho, 0.0, 1.0)


def matched_fraction(reliable: ArrayLike, frame: ArrayLike, warped_frame: ArrayLike, *, tolerance: float) -> jax.Array:
  """The share of pixels whose motion is reliable and whose colour the warp reproduces within ``tolerance``
  (RGB distance): near 1 within a shot, near 0 across a cut. Returns a scalar."""
  d = jnp.sqrt(jnp.sum((jnp.asarray(frame) - jnp.asarray(warped_frame)) ** 2, axis=-1))
  return jnp.mean(jnp.asarray(reliable, jnp.float32) * (d <= tolerance))
