""":func:`stylize`: one stylization, at one scale or coarse to fine, from arrays and settings; its checkpoints."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.fast import stylize as fast
from jaxstyle.io import checkpoint
from jaxstyle.io import images as imageio
from jaxstyle.io.vgg_weights import load_vgg19
from jaxstyle.nets import vgg
from jaxstyle.objective.targets import Temporal
from jaxstyle.objective.tiled import TileProgress
from jaxstyle.optim.loop import Member, Progress, Resume, Run, Span, optimize_members
from jaxstyle.optim.problem import finish, scaled_shape, setup_problem
from jaxstyle.settings import presets
from jaxstyle.settings.style import StyleConfig

CHECKPOINT = "checkpoint.npz"


@dataclasses.dataclass(frozen=True)
class Result:
  """The outcome of :func:`stylize`, over every scale of the run.

  Attributes:
    image: ``(H, W, 3)`` float32 RGB in [0, 1].
    history: ``"total"``: ``(steps,)`` loss at the iterate each step started from, every
      scale in turn; ``"step"``: the run's step count at each chunk end; ``"scale"``: the
      scale index of each of those; ``"content"``, ``"style"``, ``"tv"``: weighted loss
      parts at each chunk end.
    losses: final weighted loss parts and ``"total"``.
    timings: ``compile_s`` (tracing and compiling, 0 when cached), ``run_s`` and
      ``steps_per_s`` over the whole run.
    config: the resolved settings.
    status: ``"completed"``, ``"stopped"`` or ``"non-finite"``
      (see :class:`~jaxstyle.optim.loop.Run`).
    steps_done: steps run, every scale counted.
    scales: per scale: ``size`` (H, W), ``steps``, ``first_loss``, ``final_loss`` and
      ``tile`` (the tile side the objective ran with, ``None`` for the whole image).
  """

  image: jax.Array
  history: dict[str, np.ndarray]
  losses: dict[str, float]
  timings: dict[str, float]
  config: StyleConfig
  status: str = "completed"
  steps_done: int = 0
  scales: list[dict] = dataclasses.field(default_factory=list)


def scale_plan(config: StyleConfig) -> list[tuple[int | None, int]]:
  """``(size, steps)`` per scale: ``coarse_steps`` (one count, or one per scale) at every scale but the last."""
  im = config.resolve().images
  sizes = im.scales or (im.size,)
  coarse = config.run.steps if im.coarse_steps is None else im.coarse_steps
  coarse = coarse if isinstance(coarse, tuple) else (coarse,) * (len(sizes) - 1)
  return [*zip(sizes[:-1], coarse, strict=True), (sizes[-1], config.run.steps)]


def stylize(
  content: ArrayLike | str | os.PathLike,
  style: ArrayLike | str | os.PathLike | Sequence,
  config: StyleConfig | None = None,
  *,
  params: Mapping | None = None,
  mask: ArrayLike | str | os.PathLike | None = None,
  regions: Sequence | None = None,
  init_image: ArrayLike | None = None,
  callback: Callable[[Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  resume: Resume | None = None,
  tile_callback: Callable[[TileProgress], None] | None = None,
  temporal: Temporal | None = None,
) -> Result:
  """Renders ``content`` in the style of ``style`` (Gatys et al. 2016).

  Args:
    content: ``(H, W, 3)`` RGB in [0, 1], or an image path.
    style: ``(H', W', 3)`` RGB in [0, 1], or an image path, or a list of them to
      blend (weights ``config.images.style_blend``).
    config: settings; default ``presets.jaxstyle()``.
    params: VGG19 params; default ``load_vgg19()``.
    mask: ``(H, W[, 1])`` in [0, 1] or an image path: 1 stylizes, 0 keeps the content
      exactly (Gatys et al. 2017's spatial control, as a constraint).
    regions: one region map per style image (arrays or paths in the content's
      coordinates, 1 inside): style ``k`` is matched in region ``k`` only.
    init_image: ``(H'', W'', 3)`` starting image when ``config.images.init`` names a file
      (read from there when not given) or is ``"fast"`` (rendered by the arbitrary fast network
      with its default weights when not given).
    callback: receives a :class:`~jaxstyle.optim.loop.Progress` after every chunk of steps.
    stop: polled after every chunk; when it returns true the run ends early with
      ``result.status == "stopped"`` and the image so far.
    resume: continue a run from a checkpoint (:func:`load_checkpoint`), at the scale it
      was saved at; the result's history then starts with that scale's.
    tile_callback: with ``config.network.tile``, receives
      :class:`~jaxstyle.objective.tiled.TileProgress` within steps (see :func:`~jaxstyle.optim.loop.optimize`).
    temporal: a video frame's previous output warped into it and the weight of the difference
      (:class:`~jaxstyle.objective.targets.Temporal`, Ruder et al. 2016): a temporal term in the objective,
      and the run starts from that image.

  Returns:
    a :class:`Result`; ``result.image`` is ``(H'', W'', 3)`` with the content's aspect
    ratio and longest side ``config.images.output_size``.
  """
  config = (presets.jaxstyle() if config is None else config).resolve()
  params = load_vgg19() if params is None else params
  photo = Photo(content, style, mask=mask, regions=regions, init_image=init_image, resume=resume, temporal=temporal)
  return stylize_photos([photo], config, params=params, callback=callback, stop=stop, tile_callback=tile_callback)[0]


class Photo(NamedTuple):
  """One content of :func:`stylize_photos` with its style image(s) and what :func:`stylize` takes beside them."""

  content: ArrayLike | str | os.PathLike
  style: ArrayLike | str | os.PathLike | Sequence
  mask: ArrayLike | str | os.PathLike | None = None
  regions: Sequence | None = None
  init_image: ArrayLike | None = None
  resume: Resume | None = None
  temporal: Temporal | None = None


def stylize_photos(
  photos: Sequence[Photo],
  config: StyleConfig,
  *,
  params: Mapping,
  devices: Sequence[jax.Device] | None = None,
  callback: Callable[[Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
  tile_callback: Callable[[TileProgress], None] | None = None,
) -> list[Result]:
  """:func:`stylize` of several photos at once, each on its own device (``devices[i % len(devices)]``; default:
  where :func:`stylize` runs), scale after scale: every photo runs the programs it runs alone, so each
  :class:`Result` is bit for bit :func:`stylize`'s of that photo. ``callback`` gets each photo still running
  after every chunk (:class:`~jaxstyle.optim.loop.Progress`'s ``member`` is its index in ``photos``, ``lead``
  marks the first); ``stop`` ends them all. A photo that resumes a checkpoint runs alone.

  Returns:
    one :class:`Result` per photo, in order.
  """
  config = config.resolve()
  plan = scale_plan(config)
  first = _first_scale(photos, plan)
  items = [_prepared(p, config, plan[first][0]) for p in photos]
  network = vgg.prepare(params, config.network.conv, layers=config.layers)  # once, for targets and objective
  loop = dict(callback=callback, stop=stop, tile_callback=tile_callback)
  place = [None] * len(items) if devices is None else [devices[i % len(devices)] for i in range(len(items))]
  runs = _run_scales(network, items, config, plan, first, place, loop)
  return [_result([r[i] for r in runs if r[i] is not None], item.content, config, first, item.resume)
          for i, item in enumerate(items)]  # fmt: skip


def stylize_folder(
  photos: Sequence[Photo],
  config: StyleConfig,
  *,
  params: Mapping,
  devices: Sequence[jax.Device] | None = None,
  at_once: int | None = None,
  callback: Callable[[Progress], None] | None = None,
  stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[list[int], list[Result]]]:
  """Every photo of a folder, coarse to fine like one: :func:`stylize_photos` in groups of photos whose results
  have the same shape (so each shape compiles once), ``at_once`` per group (default: one per device), the
  groups in turn. Yields each group's photo indices and results as it finishes, so that a caller writes them
  at once (an interrupted folder keeps what is done). A photo that resumes a checkpoint runs in a group of its
  own, first. ``stop`` ends the current group and nothing else starts.

  Args:
    photos: the photos (:class:`Photo`: content, style, a checkpoint to resume).
    config: the settings of every photo.
    params: VGG19 params.
    devices: the devices photos run on (default: this process's).
    at_once: photos per group.
    callback: as :func:`stylize_photos`' (``member``: the index in ``photos``).
    stop: polled after every chunk.
  """
  devices = list(jax.local_devices() if devices is None else devices)
  at_once = at_once or len(devices)
  size = config.resolve().images.output_size
  shapes = [scaled_shape(imageio.as_image(p.content, "the content").shape, size) for p in photos]
  resumed = [i for i, p in enumerate(photos) if p.resume is not None]
  rest = sorted((i for i, p in enumerate(photos) if p.resume is None), key=lambda i: (shapes[i], i))
  groups = [[i] for i in resumed]
  for shape in dict.fromkeys(shapes[i] for i in rest):
    same = [i for i in rest if shapes[i] == shape]
    groups += [same[k : k + at_once] for k in range(0, len(same), at_once)]
  for group in groups:
    wrapped = None if callback is None else (lambda p, g=group: callback(dataclasses.replace(p, member=g[p.member])))
    results = stylize_photos([photos[i] for i in group], config, params=params, devices=devices, callback=wrapped,
                             stop=stop)  # fmt: skip
    yield group, results
    if any(r.status == "stopped" for r in results):
      return


def _first_scale(photos: Sequence[Photo], plan) -> int:
  """The scale runs start at: a resumed photo's (it runs alone), else the first."""
  resumed = [p.resume for p in photos if p.resume is not None]
  if resumed and len(photos) > 1:
    raise InputError("a photo resumed from a checkpoint runs alone")
  first = resumed[0].scale if resumed else 0  # a resumed run skips the scales its checkpoint finished
  if first >= len(plan):
    raise InputError(f"the checkpoint was saved at scale {first}; this run has {len(plan)}")
  return first


def _prepared(photo: Photo, config: StyleConfig, side: int | None) -> Photo:
  """A photo's images as arrays, and its fast network's start under ``init="fast"``."""
  content = imageio.as_image(photo.content, "the content")
  style = photo.style
  styles = [imageio.as_image(s, "a style image") for s in (style if isinstance(style, (list, tuple)) else [style])]
  init_image = photo.init_image
  if config.images.init == "fast" and init_image is None:  # the feed-forward network's picture as the start
    start = content if side is None else imageio.resize(content, side)
    init_image = fast.initial_image(start, styles, blend=config.images.style_blend)
  return photo._replace(content=content, style=styles, init_image=init_image)


def _run_scales(network, items: list[Photo], config, plan, first, place, loop) -> list[list[Run | None]]:
  """Each scale from ``first`` on, each started from the previous one's result, every photo of ``items`` a
  member of one :func:`~jaxstyle.optim.loop.optimize_members` per scale; a photo whose run did not complete
  goes no further (``None`` from then on)."""
  total_steps = sum(steps for _, steps in plan)
  # a step's cost grows with the pixels: the ETA counts a later scale's steps at that rate
  native = max(items[0].content.shape[:2])
  pixels = [float(native if size is None else size) ** 2 for size, _ in plan]
  done = sum(steps for _, steps in plan[:first])
  previous: list = [None] * len(items)
  runs: list[list[Run | None]] = []
  for k in range(first, len(plan)):
    size, steps = plan[k]
    scale_config = config.set(size=size, scales=None, coarse_steps=None, steps=steps)
    live = [i for i in range(len(items)) if k == first or previous[i] is not None]
    members = [_member(network, items[i], scale_config, previous[i], place[i], resume=k == first) for i in live]
    later = sum(n * pixels[j] / pixels[k] for j, (_, n) in enumerate(plan) if j > k)
    scale_loop = {**loop, "callback": _as_photos(loop["callback"], live)}
    got = optimize_members(members, scale_config, span=Span(done, total_steps, k, later), **scale_loop)
    row: list[Run | None] = [None] * len(items)
    for i, run in zip(live, got, strict=True):
      row[i] = run
      previous[i] = np.asarray(run.image) if run.status == "completed" else None
    runs.append(row)
    done = max(run.step for run in got)
    if all(p is None for p in previous):
      break
  return runs


def _as_photos(callback, live: list[int]):
  """``callback`` with each member's index turned into its photo's."""
  if callback is None:
    return None
  return lambda p: callback(dataclasses.replace(p, member=live[p.member]))


def _member(network, photo: Photo, config: StyleConfig, start, device, *, resume: bool) -> Member:
  problem = setup_problem(
    network, photo.content, photo.style, config, mask=photo.mask, regions=photo.regions, start=start,
    init_image=photo.init_image, temporal=photo.temporal,
  )  # fmt: skip
  resumed = photo.resume if resume else None
  return Member(problem.start, network, problem.targets, config.loss.weights(), resumed, device)


def _result(runs: list[Run], content: np.ndarray, config: StyleConfig, first: int, resume: Resume | None) -> Result:
  """The :class:`Result` of the scales' runs."""
  histories = [r.history for r in runs]
  history = {key: np.concatenate([h[key] for h in histories]) for key in histories[0]}
  history["scale"] = np.concatenate([np.full(len(h["step"]), first + k, np.int64) for k, h in enumerate(histories)])
  steps_run = sum(len(h["total"]) for h in histories) - (0 if resume is None else len(resume.history["total"]))
  run_s = sum(r.timings["run_s"] for r in runs)
  timings = {
    "compile_s": sum(r.timings["compile_s"] for r in runs),
    "run_s": run_s,
    "steps_per_s": steps_run / run_s if run_s > 0 else 0.0,
  }
  last = runs[-1]
  return Result(
    image=jnp.asarray(finish(np.asarray(last.image), content, config)),
    history=history,
    losses={k: float(v) for k, v in last.losses.items()},
    timings=timings,
    config=config,
    status=last.status,
    steps_done=last.step,
    scales=[_scale_record(r) for r in runs],
  )


def _scale_record(run: Run) -> dict:
  h = run.history["total"]
  return {
    "size": [int(run.image.shape[0]), int(run.image.shape[1])],
    "steps": int(len(h)),
    "first_loss": float(h[0]) if len(h) else float(run.losses["total"]),
    "final_loss": float(run.losses["total"]),
    "tile": run.tile,
  }


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(directory: str | os.PathLike, progress: Progress, config: StyleConfig) -> Path:
  """Writes ``directory/checkpoint.npz`` (:mod:`jaxstyle.io.checkpoint`) from a progress report: the image, the
  optimizer state, the step (over every scale), the scale and that scale's history."""
  arrays = {
    "image": np.asarray(progress.image),
    **checkpoint.tree_arrays("opt_state", progress.opt_state),
    **{f"history/{k}": np.asarray(v) for k, v in (progress.history or {}).items()},
  }
  record = {"step": int(progress.step), "scale": int(progress.scale)}
  return checkpoint.save(
    Path(directory) / CHECKPOINT, "stylize", settings=config.resolve().to_dict(), record=record, arrays=arrays
  )


def load_checkpoint(directory: str | os.PathLike, config: StyleConfig, *, content_shape=None) -> Resume:
  """Reads a checkpoint and checks it against ``config`` (only the settings declared ``resumable``, such as
  ``steps`` and the report and save intervals, may differ) and, given ``content_shape``, against the size
  this run's scale has.

  Raises:
    CheckpointError: missing, corrupt, or made with other settings (one line).
  """
  path = Path(directory) / CHECKPOINT
  saved = checkpoint.load(path, "stylize")
  config = config.resolve()
  checkpoint.check_settings(
    saved.record["settings"], config.to_dict(), may_change=StyleConfig.resumable_fields(), where=str(path)
  )
  step, scale, plan = int(saved.record["step"]), int(saved.record["scale"]), scale_plan(config)
  if scale >= len(plan):
    raise checkpoint.CheckpointError(f"{path}: saved at scale {scale}, this run has {len(plan)}")
  end = sum(steps for _, steps in plan[: scale + 1])
  if step > end:
    raise checkpoint.CheckpointError(f"{path}: already at step {step}, past this scale's last step {end} (--steps)")
  image = saved.arrays["image"]
  if content_shape is not None and image.shape[:2] != scaled_shape(content_shape, plan[scale][0]):
    shape = (*scaled_shape(content_shape, plan[scale][0]), 3)
    raise checkpoint.CheckpointError(f"{path}: checkpoint image is {image.shape}, this run's is {shape}")
  history = checkpoint.named_arrays("history", saved.arrays)
  leaves = checkpoint.stored_leaves("opt_state", saved.arrays)
  return Resume(image=image, opt_state_leaves=leaves, step=step, history=history, scale=scale)
