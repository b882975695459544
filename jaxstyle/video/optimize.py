"""A clip by optimization (Ruder, Dosovitskiy & Brox 2016) on the shared core.

A shot's first frame is stylized as :func:`jaxstyle.optim.stylize.stylize` makes a picture (the recipe's whole
ladder of scales). Every later frame starts from the previous output warped into it by the optical flow of the
input frames (:func:`jaxstyle.video.frames.motion`) and adds Ruder et al.'s temporal loss against that warped
output where the motion is reliable (:func:`jaxstyle.objective.losses.temporal_loss`), for ``later_steps``
steps at the frame's size. A frame whose flow matches too little of the previous one (a scene cut) starts a
new shot. The programs compile once per clip: the first frame's, and the later frames' at the second.

A clip can be continued after any frame (:class:`Resume`, each :class:`Frame` hands its own): all a frame takes
from the ones before it is the frame before and its output, so the continued run's outputs equal an
uninterrupted run's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError, NonFiniteError
from jaxstyle.objective.targets import Temporal
from jaxstyle.optim.loop import Progress
from jaxstyle.optim.stylize import Result, stylize
from jaxstyle.settings.style import StyleConfig
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import flow, frames


class Resume(NamedTuple):
  """Where a clip can continue: after ``done`` frames, the last of them as prepared (``(H, W, 3)`` float32) and
  its output."""

  done: int
  frame: np.ndarray
  output: np.ndarray


class Frame(NamedTuple):
  """One output frame of :func:`stylize_clip`.

  Attributes:
    output: ``(H, W, 3)`` float32 in [0, 1].
    shot_start: whether the frame starts a shot (the clip's first frame, or a scene cut).
    result: the frame's :class:`~jaxstyle.optim.stylize.Result` (steps, losses, timings).
    seconds: wall time of the frame, its flow included.
    resume: where the clip can continue after this frame.
  """

  output: np.ndarray
  shot_start: bool
  result: Result
  seconds: float
  resume: Resume | None = None


def frame_configs(config: StyleConfig, settings: VideoSettings, shape: tuple[int, int]) -> tuple[StyleConfig, ...]:
  """The resolved recipes of a shot's first frame (``config`` at the frames' size, its ladder included) and of
  the frames after it (one scale, ``settings.later_steps`` steps)."""
  first = config.set(size=max(shape)).resolve()
  return first, first.set(scales=None, coarse_steps=None, steps=settings.later_steps)


@functools.partial(jax.jit, static_argnames=("flow_size",))
def temporal_target(
  previous_frame: ArrayLike, frame: ArrayLike, previous_output: ArrayLike, *, flow_size: int | None, weight: ArrayLike
) -> tuple[Temporal, jax.Array]:
  """The temporal target of ``frame``: the previous output warped into it by the input frames' motion, weighted
  by ``weight`` where that motion is reliable, and the share of the frame the motion matches.

  Args:
    previous_frame: ``(H, W, 3)`` the input frame before ``frame``.
    frame: ``(H, W, 3)``.
    previous_output: ``(H, W, 3)`` the output of ``previous_frame``.
    flow_size: the longest side the flow is computed at.
    weight: the temporal loss weight.

  Returns:
    a :class:`~jaxstyle.objective.targets.Temporal` (``(H, W, 3)``, ``(H, W, 1)``) and the matched share ``()``.
  """
  m = frames.motion(jnp.asarray(previous_frame)[None], jnp.asarray(frame)[None], flow_size=flow_size)
  warped = flow.warp(jnp.asarray(previous_output, jnp.float32), m.back[0], cubic=True)
  weights = jnp.asarray(weight, jnp.float32) * m.reliable[0][..., None]
  return Temporal(jnp.clip(warped, 0.0, 1.0), weights), m.matched[0]


def stylize_clip(
  clip: Iterable[ArrayLike],
  styles: Sequence[ArrayLike],
  settings: VideoSettings,
  config: StyleConfig,
  *,
  params: Mapping,
  mask: ArrayLike | None = None,
  callback: Callable[[int, Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  resume: Resume | None = None,
) -> Iterator[Frame]:
  """Stylizes a stream of frames by optimization, yielding each output as soon as it is done.

  Args:
    clip: ``(H, W, 3)`` RGB frames (uint8, or float in [0, 1]), all of one size.
    styles: ``(H', W', 3)`` style images (blended by ``config.images.style_blend``).
    settings: :class:`~jaxstyle.settings.video.VideoSettings` (``size``, ``flow_size``, ``cut_threshold``,
      ``temporal_loss``, ``later_steps``).
    config: each frame's recipe; its size is the frames' (``settings.size``).
    params: VGG19 params.
    mask: ``(H, W[, 1])`` in [0, 1]: 1 stylizes, 0 keeps the frame.
    callback: ``callback(frame_index, progress)`` after every chunk of steps.
    stop: polled after every chunk; a frame stopped midway is not yielded and the clip ends.
    resume: continue an earlier run of the same clip and settings (a :attr:`Frame.resume`): ``clip`` is the
      frames after ``resume.done``; frame indices count from the clip's first.

  Yields:
    a :class:`Frame` per input frame.
  """
  previous = None if resume is None else (resume.frame, resume.output)  # (input frame, output) of the frame before
  configs = None
  for i, pixels in enumerate(clip, 0 if resume is None else resume.done):
    t0 = time.perf_counter()
    x = frames.prepare_frame(pixels, settings.size)
    if configs is None:
      configs = frame_configs(config, settings, x.shape[:2])
    if previous is not None and x.shape != previous[0].shape:
      raise InputError(f"frame {i} is {x.shape[1]}x{x.shape[0]} px, the clip's first {previous[0].shape[1]}x"
                       f"{previous[0].shape[0]}")  # fmt: skip
    temporal = continued(previous, x, settings)
    report = None if callback is None else functools.partial(callback, i)
    result = stylize(x, styles, configs[temporal is not None], params=params, mask=mask, temporal=temporal,
                     callback=report, stop=stop)  # fmt: skip
    if result.status != "completed":
      if result.status == "stopped":
        return
      raise NonFiniteError(f"frame {i}: the loss became non-finite; the frames before it are done")
    out = np.asarray(result.image)
    previous = (x, out)
    yield Frame(out, temporal is None, result, time.perf_counter() - t0, Resume(i + 1, x, out))


def continued(previous, x: np.ndarray, settings: VideoSettings) -> Temporal | None:
  """The temporal target of frame ``x`` against ``previous`` (its predecessor and that one's output), or ``None``
  where a shot starts (no previous frame, or a cut)."""
  if previous is None:
    return None
  frame, output = previous
  target, matched = temporal_target(frame, x, output, flow_size=settings.flow_size, weight=settings.temporal_loss)
  return None if float(matched) < settings.cut_threshold else target
