"""A clip through the fast networks, frame by frame, made temporally consistent without training.

Each batch of frames goes through the network at once (the style's condition computed once for the clip),
then :func:`consistent_chunk`, one jitted program per batch, computes the optical flow of every consecutive
pair both ways (vmapped, at ``flow_size``), where it is reliable, and, frame after frame (``lax.scan``), the
consistent output of :mod:`jaxstyle.video.temporal`. A frame whose flow matches too little of the previous one
(a scene cut) starts a new shot: its output is its own rendering, exactly.

A clip can be continued after any whole batch (:class:`Resume`, what :func:`clip_frames` hands with a batch's
last frame): the continued run sees the same batches, so its outputs equal an uninterrupted run's bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.fast import stylize as fast
from jaxstyle.io import color
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import flow, temporal
from jaxstyle.video import frames as frames_


class ClipState(NamedTuple):
  """What one batch hands the next: the last input frame and its output, and whether there is one."""

  frame: jax.Array  # (H, W, 3)
  output: jax.Array  # (H, W, 3)
  started: jax.Array  # () bool


def initial_state(shape: tuple[int, int]) -> ClipState:
  """The state before a clip's first frame (no previous frame: the first output is its own rendering)."""
  zeros = jnp.zeros((*shape, 3), jnp.float32)
  return ClipState(zeros, zeros, jnp.asarray(False))


def consistent_chunk(
  state: ClipState, frames: ArrayLike, styled: ArrayLike, *, settings: VideoSettings
) -> tuple[ClipState, jax.Array, jax.Array]:
  """Makes a batch of rendered frames consistent with each other and with the state's previous output.

  Args:
    state: :class:`ClipState` before the batch.
    frames: ``(B, H, W, 3)`` input frames in [0, 1].
    styled: ``(B, H, W, 3)`` their own renderings.
    settings: :class:`VideoSettings` (``flow_size``, ``temporal_weight``, ``falloff``, ``solver_iterations``,
      ``cut_threshold``).

  Returns:
    the state after the batch, ``(B, H, W, 3)`` outputs, and ``(B,)`` whether each frame starts a shot.
  """
  frames, styled = jnp.asarray(frames, jnp.float32), jnp.asarray(styled, jnp.float32)
  previous = jnp.concatenate([state.frame[None], frames[:-1]])
  m = frames_.motion(previous, frames, flow_size=settings.flow_size)
  started = jnp.concatenate([state.started[None], jnp.ones((frames.shape[0] - 1,), bool)])
  cut = ~started | (m.matched < settings.cut_threshold)
  weights = jax.vmap(
    lambda r, f, wf: temporal.blend_weight(r, f, wf, weight=settings.temporal_weight, falloff=settings.falloff)
  )(m.reliable, frames, m.warped)

  def one_frame(prev_out, xs):
    p, back, w, is_cut = xs
    out = temporal.consistent_frame(p, flow.warp(prev_out, back, cubic=True), w, iterations=settings.solver_iterations)
    if settings.detail:
      out = temporal.restore_detail(out, p)
    out = jnp.where(is_cut, p, out)
    return out, out

  last, outs = jax.lax.scan(one_frame, state.output, (styled, m.back, weights, cut))
  return ClipState(frames[-1], last, jnp.asarray(True)), outs, cut


_consistent_chunk = jax.jit(consistent_chunk, static_argnames=("settings",))


class Resume(NamedTuple):
  """Where a clip can continue: after ``done`` frames (whole batches, or the clip's end), the consistency state
  after them and the clip's condition (made from its first frame)."""

  done: int
  state: ClipState
  condition: ArrayLike


class ClipFrame(NamedTuple):
  """One output of :func:`clip_frames`: ``(H, W, 3)`` float32 in [0, 1], whether it starts a shot, and where
  the clip can continue after it (a batch's last frame), else ``None``."""

  output: np.ndarray
  shot_start: bool
  resume: Resume | None


def stylize_clip(
  frames: Iterable[ArrayLike],
  styles: Sequence[ArrayLike],
  settings: VideoSettings,
  networks: fast.Networks,
  *,
  mask: ArrayLike | None = None,
  resume: Resume | None = None,
) -> Iterator[tuple[np.ndarray, bool]]:
  """Stylizes a stream of frames, yielding each output as soon as its batch is done.

  Args:
    frames: ``(H, W, 3)`` RGB frames (uint8, or float in [0, 1]), all of one size.
    styles: style images (ignored with ``builtin`` or a trained vector).
    settings: :class:`VideoSettings`.
    networks: :class:`jaxstyle.fast.Networks`.
    mask: ``(H, W[, 1])`` in [0, 1] (1 stylizes, 0 keeps the frame).
    resume: continue a clip: ``frames`` are those after ``resume.done`` (see :func:`clip_frames`).

  Yields:
    ``(output, shot_start)``: ``(H', W', 3)`` float32 in [0, 1], and whether the frame starts a shot.
  """
  for f in clip_frames(frames, styles, settings, networks, mask=mask, resume=resume):
    yield f.output, f.shot_start


def clip_frames(
  frames: Iterable[ArrayLike],
  styles: Sequence[ArrayLike],
  settings: VideoSettings,
  networks: fast.Networks,
  *,
  mask: ArrayLike | None = None,
  resume: Resume | None = None,
) -> Iterator[ClipFrame]:
  """:func:`stylize_clip`, each output with where the clip can continue after it.

  ``resume`` (a :attr:`ClipFrame.resume` of an earlier run of the same clip and settings) continues that run:
  ``frames`` are the clip's frames after ``resume.done``, and the outputs equal the uninterrupted run's.
  """
  cond = state = None
  done = 0
  if resume is not None:
    done, state, cond = resume.done, ClipState(*(jnp.asarray(a) for a in resume.state)), resume.condition

  def jobs(batches: Iterable[list]) -> Iterator[tuple[list, int, tuple, jax.Array]]:
    nonlocal cond, state
    at = done
    for batch in batches:
      if cond is None:  # one condition for the whole clip, from its first frame where the content matters
        first = frames_.prepare_frame(batch[0], settings.size)
        cond = _condition(first, styles, settings, networks)
        state = initial_state(first.shape[:2])
      yield batch, at, tuple(state.frame.shape), cond
      at += len(batch)

  def prepare_and_render(batch: list, at: int, shape: tuple, c: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    x = _batch_frames(batch, settings.size, shape, at)
    if len(batch) < settings.batch:  # the last batch, padded with its last frame: one program for the whole clip
      x = np.concatenate([x, np.repeat(x[-1:], settings.batch - len(batch), axis=0)])
    return x, fast.render(x, c, settings, networks, mask=mask)

  for batch, (x, styled) in _ahead(jobs(frames_.batches(frames, settings.batch)), prepare_and_render):
    n = len(batch)
    if settings.consistency:
      state, outs, cuts = _consistent_chunk(state, x, styled, settings=settings)
      outs, cuts = np.asarray(outs), np.asarray(cuts)
    else:  # every frame its own: the clip is one shot
      outs, cuts = styled, np.arange(len(x)) + done == 0
    done += n
    for i in range(n):
      yield ClipFrame(outs[i], bool(cuts[i]), Resume(done, state, cond) if i == n - 1 else None)


def _ahead(jobs: Iterator[tuple], work: Callable) -> Iterator[tuple]:
  """``(job[0], work(*job))`` for each job, the next job's work begun on a worker thread before this one's
  result is handed on: the frames are read and made consistent on this thread (the solve runs on one core)
  while the next batch is sized and rendered on the other (the same numbers as one after the other). An error
  reading the next job (a frame that fails to decode) comes after this one's result, as it would in order."""
  with ThreadPoolExecutor(max_workers=1) as pool:
    pending = None
    while True:
      try:
        job = next(jobs, None)
      except Exception:
        if pending is not None:
          yield pending[0], pending[1].result()
        raise
      if job is None:
        break
      started = (job[0], pool.submit(work, *job))
      if pending is not None:
        yield pending[0], pending[1].result()
      pending = started
    if pending is not None:
      yield pending[0], pending[1].result()


def _batch_frames(batch: list, size: int | None, want: tuple | None, done: int) -> np.ndarray:
  """A batch's frames prepared and stacked, each checked against the clip's first frame's shape ``want``."""
  x = [frames_.prepare_frame(f, size) for f in batch]
  want = x[0].shape if want is None else want
  for i, f in enumerate(x):
    if f.shape != want:
      raise InputError(f"frame {done + i} is {f.shape[1]}x{f.shape[0]} px, the clip's first {want[1]}x{want[0]}")
  return np.stack(x)


def _condition(first: np.ndarray, styles, settings: VideoSettings, networks: fast.Networks) -> jax.Array:
  if settings.preserve_color == "histogram" and styles:
    styles = [color.match_histogram(np.asarray(s), first.reshape(1, -1, 3)) for s in styles]
  return fast.condition(networks, first, styles, settings)
