"""How a stylized clip holds together: the warping error of Lai et al. (2018).

``E(t) = sum_x M_t(x) |O_t(x) - O_{t-1}(x + w_t(x))|^2 / sum_x M_t(x)``: output frame t against output frame
t-1 warped into it by the *input's* flow ``w_t`` (t to t-1), over the pixels ``M_t`` where that flow is
reliable; squared RGB distance in [0, 1] units. A clip without flicker has a small error; a static output
has none, so read it beside a style distance. The flow can be anyone's: :func:`warping_errors` takes it as an
argument (the bench grades with OpenCV's, so the product does not grade itself).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxstyle.video import flow


def warping_error(output: ArrayLike, previous: ArrayLike, back: ArrayLike, reliable: ArrayLike) -> jax.Array:
  """One pair's warping error.

  Args:
    output: ``(H, W, 3)`` output frame t.
    previous: ``(H, W, 3)`` output frame t-1.
    back: ``(H, W, 2)`` the input's flow from frame t to frame t-1.
    reliable: ``(H, W)`` in [0, 1], where that flow holds.

  Returns:
    a scalar (0 when nothing is reliable).
  """
  d2 = jnp.sum((jnp.asarray(output, jnp.float32) - flow.warp(previous, back)) ** 2, axis=-1)
  m = jnp.asarray(reliable, jnp.float32)
  return jnp.sum(m * d2) / jnp.maximum(jnp.sum(m), 1.0)


def warping_errors(outputs: ArrayLike, backs: ArrayLike, reliables: ArrayLike) -> jax.Array:
  """The warping error of every consecutive pair of a clip.

  Args:
    outputs: ``(T, H, W, 3)`` output frames.
    backs: ``(T - 1, H, W, 2)`` the input's flows from frame t to t-1, for t = 1 .. T-1.
    reliables: ``(T - 1, H, W)``.

  Returns:
    ``(T - 1,)``.
  """
  o = jnp.asarray(outputs, jnp.float32)
  return jax.vmap(warping_error)(o[1:], o[:-1], backs, reliables)


@jax.jit
def input_motion(previous: ArrayLike, frame: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Our own TV-L1 flow from ``frame`` back to ``previous`` (``(H, W, 3)`` each) and where it is reliable:
  ``(H, W, 2)`` and ``(H, W)``, for :func:`warping_error`."""
  both = flow.flows_both_ways(frame, previous)
  return both[0], flow.reliability(both[0], both[1])
