"""A clip's frames as both methods take them: converted and sized, and their motion against the frame before.

:func:`prepare_frame` turns a decoded frame into float32 at the run's size; :func:`motion` computes, for a batch
of frames, the optical flow back to each one's predecessor (TV-L1 of :mod:`jaxstyle.video.flow`, vmapped over
the pairs, at a smaller ``flow_size`` and scaled up), where it is reliable, the predecessor warped into it, and
the share of the frame it matches (a scene cut where that share is small).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.io import images as imageio
from jaxstyle.video import flow, temporal

T = TypeVar("T")


def batches(frames: Iterable, size: int) -> Iterator[list]:
  """The frames of a stream in lists of ``size`` (the last may be shorter), as they come."""
  batch: list = []
  for f in frames:
    batch.append(f)
    if len(batch) == size:
      yield batch
      batch = []
  if batch:
    yield batch


def frames_to_make(clip_frames: int | None, *, start: int, frames: int | None) -> int | None:
  """How many frames a run makes of a clip of ``clip_frames`` (``None``: the container does not say) from frame
  ``start``, at most ``frames`` (``None``: to the end); ``None`` when neither says.

  Raises:
    InputError: ``start`` is past the clip's end.
  """
  if clip_frames is None:
    return frames
  left = clip_frames - start
  if left <= 0:
    raise InputError(f"start {start} is past the clip's {clip_frames} frames")
  return left if frames is None else min(left, frames)


def paired(frames: Iterable, run: Callable[[Iterator[np.ndarray]], Iterator[T]]) -> Iterator[tuple[object, T]]:
  """Each output of ``run`` with the frame it was made from: ``run`` is fed the frames' ``pixels`` as it asks
  for them, reading ahead by up to a batch, so each frame (its time and index) waits here until its output comes.

  Args:
    frames: decoded frames (:class:`jaxstyle.io.video.Frame`: ``pixels``, ``time``, ``index``), in order.
    run: a method's outputs, one per frame fed, in order.

  Yields:
    ``(frame, output)``.
  """
  pending: collections.deque = collections.deque()

  def pixels():
    for f in frames:
      pending.append(f)
      yield f.pixels

  for out in run(pixels()):
    yield pending.popleft(), out


def frame_shape(shape: tuple[int, int], size: int | None) -> tuple[int, int]:
  """The output frames' ``(H, W)`` for input frames of ``shape`` at longest side ``size``."""
  if size is None:
    return shape
  s = size / max(shape)
  return max(1, round(shape[0] * s)), max(1, round(shape[1] * s))


def prepare_frame(frame: ArrayLike, size: int | None) -> np.ndarray:
  """A frame as the network takes it: float32 in [0, 1], ``(H', W', 3)`` at longest side ``size``."""
  x = np.asarray(frame)
  x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
  shape = frame_shape(x.shape[:2], size)
  return x if shape == x.shape[:2] else imageio.resize(x, shape)


def _flow_shape(shape: tuple[int, int], flow_size: int | None) -> tuple[int, int]:
  if flow_size is None or max(shape) <= flow_size:
    return shape
  s = flow_size / max(shape)
  return max(8, round(shape[0] * s)), max(8, round(shape[1] * s))


class Motion(NamedTuple):
  """The motion from each frame back to the one before it, at the frames' size.

  Attributes:
    back: ``(B, H, W, 2)`` flow from frame t to frame t-1 (warps t-1's pictures into t).
    reliable: ``(B, H, W)`` in [0, 1].
    warped: ``(B, H, W, 3)`` input frame t-1 warped into t.
    matched: ``(B,)`` share of reliably matched pixels (:func:`jaxstyle.video.temporal.matched_fraction`).
  """

  back: jax.Array
  reliable: jax.Array
  warped: jax.Array
  matched: jax.Array


def motion(previous: ArrayLike, frames: ArrayLike, *, flow_size: int | None) -> Motion:
  """The motion of ``(B, H, W, 3)`` frames against their predecessors (``previous[t]`` precedes
  ``frames[t]``), flows computed at ``flow_size`` and scaled up."""
  previous, frames = jnp.asarray(previous, jnp.float32), jnp.asarray(frames, jnp.float32)
  b, h, w = frames.shape[:3]
  fh, fw = _flow_shape((h, w), flow_size)
  small = lambda x: jax.image.resize(x, (b, fh, fw, 3), "linear", antialias=True)
  both = jax.vmap(lambda a, c: flow.flows_both_ways(a, c))(small(frames), small(previous))
  reliable = jax.vmap(flow.reliability)(both[:, 0], both[:, 1])
  scale = jnp.asarray([w / fw, h / fh], jnp.float32).reshape(1, 1, 1, 2)
  back = jax.image.resize(both[:, 0], (b, h, w, 2), "linear") * scale
  reliable = (jax.image.resize(reliable, (b, h, w), "linear") > 0.5).astype(jnp.float32)
  warped = jax.vmap(flow.warp)(previous, back)
  matched = jax.vmap(lambda r, f, wf: temporal.matched_fraction(r, f, wf, tolerance=0.1))(reliable, frames, warped)
  return Motion(back, reliable, warped, matched)
