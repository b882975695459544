"""How a stylized clip holds together: the warping error of Lai et al. (2018).

``E(t) = sum_x M_t(x) |O_t(x) - O_{t-1}(x + w_t(x))|^2 / sum_x M_t(x)``: output frame t against output frame
t-1 warped into it by the *input's* flow ``w_t`` (t to t-1), over the pixels ``M_t`` where that flow is
reliable; squared RGB distance in [0, 1] units. A clip without flicker has a small error; a static output
has none, so read it beside a style distance. The flow can be anyone's: :func:`warping_error` takes it as an
argument (the bench grades with OpenCV's, so the product does not grade itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.io import images as imageio
from jaxstyle.objective import metrics
from jaxstyle.video import flow
from jaxstyle.video.frames import prepare_frame

CLIP_METRICS = ("warping_error", "style_gram", "content")


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


@jax.jit
def input_motion(previous: ArrayLike, frame: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """Our own TV-L1 flow from ``frame`` back to ``previous`` (``(H, W, 3)`` each) and where it is reliable:
  ``(H, W, 2)`` and ``(H, W)``, for :func:`warping_error`."""
  both = flow.flows_both_ways(frame, previous)
  return both[0], flow.reliability(both[0], both[1])


def score_clip(
  params: Mapping,
  frames: Iterable[ArrayLike],
  outputs: Iterable[ArrayLike],
  style: ArrayLike,
  *,
  pooling: str = "max",
) -> dict[str, np.ndarray]:
  """A stylized clip's measures, frame by frame, streamed (memory does not grow with the clip).

  Each input frame is resized to its output's size; the style to the output's longest side (as ``jaxstyle
  score`` sizes it). The warping error of a pair uses this module's flow of the input frames
  (:func:`input_motion`).

  Args:
    params: VGG19 params.
    frames: the input clip's ``(H, W, 3)`` frames (uint8, or float in [0, 1]).
    outputs: the stylized clip's frames, one per input frame (the shorter stream ends both).
    style: ``(H', W', 3)`` RGB in [0, 1].
    pooling: the VGG's pooling.

  Returns:
    ``warping_error``: ``(T - 1,)``, one per consecutive pair; ``style_gram`` (:func:`metrics.style_distance`)
    and ``content`` (:func:`metrics.content_distance` to the input frame): ``(T,)`` each.
  """
  rows: dict[str, list[float]] = {k: [] for k in CLIP_METRICS}
  previous = fs = None
  for frame, out in zip(frames, outputs, strict=False):
    o = prepare_frame(out, None)
    x = imageio.resize(prepare_frame(frame, None), o.shape[:2])
    if fs is None:  # the style's activations once for the clip
      s = imageio.resize(imageio.as_image(style, "style"), max(o.shape[:2]))
      fs = metrics.features(params, s[None], layers=metrics.STYLE_LAYERS, pooling=pooling)
    fo = metrics.features(params, o[None], layers=(*metrics.STYLE_LAYERS, metrics.CONTENT_LAYER), pooling=pooling)
    fc = metrics.features(params, x[None], layers=(metrics.CONTENT_LAYER,), pooling=pooling)
    rows["style_gram"].append(float(metrics.style_distance_of_features(fo, fs)[0]))
    rows["content"].append(float(metrics.feature_distance(fo[metrics.CONTENT_LAYER], fc[metrics.CONTENT_LAYER])[0]))
    if previous is not None:
      back, reliable = input_motion(previous[0], x)
      rows["warping_error"].append(float(warping_error(o, previous[1], back, reliable)))
    previous = (x, o)
  return {k: np.asarray(v, np.float64) for k, v in rows.items()}
