""":func:`stylize`: one stylization, at one scale or coarse to fine, from arrays and settings."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle import images as imageio
from jaxstyle import vgg
from jaxstyle.config import StyleConfig
from jaxstyle.errors import InputError
from jaxstyle.optimize import Progress, Resume, optimize
from jaxstyle.problem import as_image, finish, setup_problem
from jaxstyle.tiled import TileProgress


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
      (see :class:`~jaxstyle.optimize.Run`).
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
  im = config.images
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
    callback: receives a :class:`~jaxstyle.optimize.Progress` after every chunk of steps.
    stop: polled after every chunk; when it returns true the run ends early with
      ``result.status == "stopped"`` and the image so far.
    resume: continue a run from a checkpoint (:func:`jaxstyle.checkpoint.load`), at the scale it
      was saved at; the result's history then starts with that scale's.
    tile_callback: with ``config.network.tile``, receives
      :class:`~jaxstyle.tiled.TileProgress` within steps (see :func:`~jaxstyle.optimize.optimize`).

  Returns:
    a :class:`Result`; ``result.image`` is ``(H'', W'', 3)`` with the content's aspect
    ratio and longest side ``config.images.output_size``.
  """
  if config is None:
    from jaxstyle import presets

    config = presets.jaxstyle()
  if params is None:
    from jaxstyle.weights import load_vgg19

    params = load_vgg19()
  plan = scale_plan(config)
  first = 0 if resume is None else resume.scale  # a resumed run skips the scales its checkpoint finished
  if first >= len(plan):
    raise InputError(f"the checkpoint was saved at scale {first}; this run has {len(plan)}")
  content = as_image(content)
  styles = [as_image(st) for st in (style if isinstance(style, (list, tuple)) else [style])]
  if config.images.init == "fast" and init_image is None:  # the feed-forward network's picture as the start
    from jaxstyle import fast

    side = plan[first][0]
    start = content if side is None else imageio.resize(content, side)
    init_image = fast.initial_image(start, styles, blend=config.images.style_blend)
  network = vgg.prepare(params, config.network.conv, layers=config.layers)  # once, for targets and objective
  total_steps = sum(steps for _, steps in plan)
  # a step's cost grows with the pixels: the ETA counts a later scale's steps at that rate
  native = max(content.shape[:2])
  pixels = [float(native if size is None else size) ** 2 for size, _ in plan]
  done = sum(steps for _, steps in plan[:first])
  previous, run, per_scale, compile_s, run_s = None, None, [], 0.0, 0.0
  histories = []
  for k, (size, steps) in enumerate(plan):
    if k < first:
      continue
    scale_config = config.set(size=size, scales=None, coarse_steps=None, steps=steps)
    problem = setup_problem(
      network, content, styles, scale_config, mask=mask, regions=regions, start=previous, init_image=init_image
    )
    run = optimize(
      problem.start,
      network,
      problem.targets,
      config.loss.weights(),
      scale_config,
      callback=callback,
      stop=stop,
      resume=resume if k == first else None,
      first_step=done,
      total_steps=total_steps,
      scale=k,
      later_work=sum(n * pixels[j] / pixels[k] for j, (_, n) in enumerate(plan) if j > k),
      tile_callback=tile_callback,
    )
    done = run.step
    previous = np.asarray(run.image)
    h = run.history["total"]
    histories.append(run.history)
    per_scale.append(
      {
        "size": [int(previous.shape[0]), int(previous.shape[1])],
        "steps": int(len(h)),
        "first_loss": float(h[0]) if len(h) else float(run.losses["total"]),
        "final_loss": float(run.losses["total"]),
        "tile": run.tile,
      }
    )
    compile_s += run.timings["compile_s"]
    run_s += run.timings["run_s"]
    if run.status != "completed":
      break
  history = {key: np.concatenate([h[key] for h in histories]) for key in histories[0]}
  history["scale"] = np.concatenate([np.full(len(h["step"]), first + k, np.int64) for k, h in enumerate(histories)])
  steps_run = sum(len(h["total"]) for h in histories) - (0 if resume is None else len(resume.history["total"]))
  timings = {"compile_s": compile_s, "run_s": run_s, "steps_per_s": steps_run / run_s if run_s > 0 else 0.0}
  return Result(
    image=jnp.asarray(finish(previous, content, config)),
    history=history,
    losses={k: float(v) for k, v in run.losses.items()},
    timings=timings,
    config=config,
    status=run.status,
    steps_done=done,
    scales=per_scale,
  )
