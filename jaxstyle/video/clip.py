"""A clip by optimization, a window of frames at once: the frames are one ``(T, H, W, 3)`` variable whose
objective is every frame's (content, style, TV) plus temporal terms that tie each frame to the one before and
the one after it, warped by the input's motion (what Ruder et al.'s multi-pass algorithm approximates frame
after frame, in both directions). The frames are a batch axis of the VGG's pass and are sharded over every
device (and host): one compiled program per window size.

A window starts from the output before it warped into its first frame (or, at the clip's first frame and at a
cut, from that frame's own picture by :func:`jaxstyle.optim.stylize.stylize`), each later frame from the one
before warped into it; the first frame is also held to the output before the window (Ruder et al.'s temporal
term), so windows join without a seam.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxstyle.errors import InputError, NonFiniteError
from jaxstyle.nets import vgg
from jaxstyle.objective.targets import Coupling, content_targets
from jaxstyle.objective.warp import warp
from jaxstyle.optim.loop import Progress, optimize
from jaxstyle.optim.problem import finish, setup_problem
from jaxstyle.optim.stylize import stylize
from jaxstyle.runtime import placement
from jaxstyle.settings.style import StyleConfig
from jaxstyle.settings.video import VideoSettings
from jaxstyle.video import frames
from jaxstyle.video.optimize import Frame, Resume, continued, frame_configs


def coupling(
  x: ArrayLike, *, flow_size: int | None, weight: float, cut_threshold: float
) -> tuple[Coupling, np.ndarray]:
  """The temporal terms between the ``(T, H, W, 3)`` frames ``x`` of a window: the motion of each consecutive
  pair both ways (:func:`jaxstyle.video.frames.motion`), weighted by ``weight`` where reliable and 0 across a
  cut. Also returns ``(T-1,)`` whether each pair is a cut."""
  x = jnp.asarray(x, jnp.float32)
  back = frames.motion(x[:-1], x[1:], flow_size=flow_size)  # frame t -> t-1, t = 1..T-1
  fwd = frames.motion(x[1:], x[:-1], flow_size=flow_size)  # frame t -> t+1, t = 0..T-2
  cut = np.asarray(back.matched) < cut_threshold
  keep = jnp.asarray(~cut, jnp.float32).reshape(-1, 1, 1, 1)
  c = Coupling(back.back, weight * keep * back.reliable[..., None], fwd.back, weight * keep * fwd.reliable[..., None])
  return c, cut


def stylize_clip(
  clip: Iterable[ArrayLike],
  styles: Sequence[ArrayLike],
  settings: VideoSettings,
  config: StyleConfig,
  *,
  params: Mapping,
  mask: ArrayLike | None = None,
  devices: Sequence[jax.Device] | None = None,
  callback: Callable[[int, Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  resume: Resume | None = None,
) -> Iterator[Frame]:
  """Stylizes a stream of frames ``settings.clip_window`` at a time, each window optimized jointly.

  Args:
    clip: ``(H, W, 3)`` RGB frames (uint8, or float in [0, 1]), all of one size.
    styles: style images.
    settings: :class:`~jaxstyle.settings.video.VideoSettings` (``clip``: the window; ``later_steps``: its
      steps; ``temporal_loss``, ``flow_size``, ``cut_threshold``).
    config: the recipe (a shot's first frame runs its whole ladder to start the window).
    params: VGG19 params.
    mask: ``(H, W[, 1])`` in [0, 1]: 1 stylizes, 0 keeps the frame.
    devices: the devices a window's frames are sharded over (default: every device of every process); a
      window whose length they do not divide runs on the first.
    callback: ``callback(first_frame_of_the_window, progress)`` after every chunk of steps.
    stop: polled after every chunk; a window stopped midway is not yielded and the clip ends.
    resume: continue an earlier run after a window (its last :attr:`Frame.resume`): ``clip`` is the frames after
      ``resume.done``.

  Yields:
    a :class:`~jaxstyle.video.optimize.Frame` per input frame (``result`` is ``None``; ``seconds`` the window's
    time shared by its frames; ``resume`` set on each window's last frame, where the clip can continue).
  """
  if settings.clip_window is None:
    raise InputError("a window needs settings.clip_window (frames optimized at once)")
  if config.images.preserve_color == "luminance":
    raise InputError("--clip optimizes colour frames; use --preserve-color histogram or none")
  devices = list(placement.all_devices() if devices is None else devices)
  previous = None if resume is None else (resume.frame, resume.output)  # the frame before the window, its output
  configs, network, done = None, None, 0 if resume is None else resume.done
  for window in frames.batches(clip, settings.clip_window):
    t0 = time.perf_counter()
    x = np.stack([frames.prepare_frame(f, settings.size) for f in window])
    if configs is None:
      configs = frame_configs(config, settings, x.shape[1:3])
      network = vgg.prepare(params, configs[1].network.conv, layers=configs[1].layers)
    if previous is not None and x.shape[1:] != previous[0].shape:
      raise InputError(f"frames from {done} are {x.shape[2]}x{x.shape[1]} px, the clip's {previous[0].shape[1]}x"
                       f"{previous[0].shape[0]}")  # fmt: skip
    report = None if callback is None else (lambda p, i=done: callback(i, p))
    run = _window(x, styles, settings, configs, network, previous, mask, devices, report, stop)
    if run is None:
      return
    outs, shots = run
    previous = (x[-1], outs[-1])
    seconds = (time.perf_counter() - t0) / len(x)
    done += len(x)
    for k, (out, shot) in enumerate(zip(outs, shots, strict=True)):
      yield Frame(out, bool(shot), None, seconds, Resume(done, x[-1], outs[-1]) if k == len(x) - 1 else None)


def _window(x, styles, settings, configs, network, previous, mask, devices, report, stop):
  """One window optimized jointly: ``(outputs, shot starts)``, or ``None`` when stopped."""
  first, later = configs
  c, cuts = coupling(x, flow_size=settings.flow_size, weight=settings.temporal_loss,
                     cut_threshold=settings.cut_threshold)  # fmt: skip
  temporal = continued(previous, x[0], settings)
  shots = np.concatenate([[temporal is None], cuts])
  start = _start(x, styles, first, network, temporal, shots, c, mask, stop)
  if start is None:
    return None
  problem = setup_problem(network, x[0], styles, later, mask=mask, temporal=temporal)
  contents = [problem.targets.content] + [content_targets(network, f, later.form(), gains=problem.targets.pool_gains)
                                          for f in x[1:]]  # fmt: skip
  content = {k: jnp.concatenate([t[k] for t in contents]) for k in contents[0]}
  targets = problem.targets._replace(content=content, coupling=c, anchor=_frames_anchor(problem, x))
  start, targets = _place(start, targets, devices)
  run = optimize(start, network, targets, later.loss.weights(), later, callback=report, stop=stop)
  if run.status == "stopped":
    return None
  if run.status != "completed":
    raise NonFiniteError("a window's loss became non-finite; the windows before it are done")
  image = placement.to_host(run.image)
  return [finish(o, f, later) for o, f in zip(image, x, strict=True)], shots


def _start(x, styles, config, network, temporal, shots, c: Coupling, mask, stop):
  """The window's starting frames: a shot's first frame its own picture, each other the one before warped."""
  out = []
  for t in range(len(x)):
    if shots[t]:
      result = stylize(x[t], styles, config, params=network, mask=mask, stop=stop)
      if result.status != "completed":
        return None
      out.append(np.asarray(result.image))
    elif t == 0:
      out.append(np.asarray(temporal.previous))
    else:
      out.append(np.clip(np.asarray(warp(out[-1], c.back[t - 1], cubic=True)), 0.0, 1.0))
  return np.stack(out)


def _frames_anchor(problem, x: np.ndarray):
  """A mask's anchor for every frame (each keeps its own frame where the mask is 0)."""
  return None if problem.targets.anchor is None else jnp.asarray(x)


def _place(start: np.ndarray, targets, devices):
  """The frames sharded over ``devices`` (the targets replicated there), when they divide the window."""
  if len(devices) < 2 or len(start) % len(devices):
    return jnp.asarray(start), targets
  mesh = jax.sharding.Mesh(np.asarray(devices), ("frames",))
  frames_sharded = NamedSharding(mesh, P("frames"))  # each process places its own devices' frames
  x = jax.make_array_from_callback(start.shape, frames_sharded, lambda index: start[index])
  return x, placement.put_replicated(targets, NamedSharding(mesh, P()))
