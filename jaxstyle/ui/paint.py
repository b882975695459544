"""The Paint tab (``/stylize``): the optimization, its iterate shown live, Stop, the result with its record and
the ``jaxstyle stylize`` command that reproduces it."""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path

import gradio as gr
import numpy as np

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import images
from jaxstyle.io.files import write_json
from jaxstyle.optim import problem
from jaxstyle.optim.stylize import Result, scale_plan, stylize
from jaxstyle.settings import presets
from jaxstyle.settings.commands import stylize_command
from jaxstyle.settings.style import StyleConfig
from jaxstyle.ui import uploads
from jaxstyle.ui.context import Context
from jaxstyle.ui.jobs import Session, duration, mapped, stream

COLOURS = ("none", "luminance", "histogram")
LOG_RATIO = (-6.0, 1.0)  # the alpha/beta slider's range, as log10


def _declaration(field: str):
  return next(d for d in StyleConfig.declarations() if d.field == field)


def layers_text(layers) -> str:
  """Style layers as their flag's text (``relu1_1:0.2,relu2_1:0.2``)."""
  return _declaration("style_layers").codec.format(layers)


def log_ratio(config: StyleConfig) -> float:
  """log10 of alpha/beta (content weight over style weight)."""
  return math.log10(config.loss.content_weight / config.loss.style_weight)


def preset_controls(name: str) -> tuple[float, int, int, bool, int]:
  """The controls a preset sets: log10 alpha/beta, size, steps, coarse to fine, coarse steps."""
  c = presets.get(name)
  coarse = c.images.scales is not None
  steps = c.images.coarse_steps if isinstance(c.images.coarse_steps, int) else c.run.steps
  return round(log_ratio(c), 2), c.images.output_size or 512, c.run.steps, coarse, steps


def _style_weight(base: StyleConfig, ratio_log10: float) -> float:
  """β for the slider's α/β; the preset's own β where the slider shows the preset's ratio (rounded as shown)."""
  if round(log_ratio(base), 2) == round(ratio_log10, 2):
    return base.loss.style_weight
  return base.loss.content_weight / 10.0**ratio_log10


def config_for(
  preset: str, ratio_log10: float, size: int, steps: int, coarse: bool, coarse_steps: int, colour: str,
  style_layers: str = "", preview_every: int = 10, mask: str | None = None, init: str | None = None,
) -> StyleConfig:  # fmt: skip
  """The resolved :class:`StyleConfig` the tab's controls mean: the preset, then the controls.

  Raises:
    gr.Error: a setting the library refuses (its one line).
  """
  try:
    base = presets.get(preset)
    changes = {
      "size": int(size),
      "steps": int(steps),
      "style_weight": _style_weight(base, float(ratio_log10)),
      "preserve_color": colour,
      "report_every": int(preview_every),
      "scales": "auto" if coarse else None,
      "coarse_steps": int(coarse_steps) if coarse else None,
    }
    if style_layers and style_layers.strip():
      changes["style_layers"] = _declaration("style_layers").codec.parse(style_layers.strip())
    if mask:
      changes["mask"] = mask
    if init:
      changes["init"] = init
    return base.set(**changes).resolve()
  except (JaxstyleError, ValueError) as e:
    raise uploads.fail(e) from None


def run_paint(
  ctx: Context,
  content: str | None,
  style: str | None,
  preset: str = presets.DEFAULT,
  ratio_log10: float | None = None,
  size: int = 512,
  steps: int = 600,
  coarse: bool = True,
  coarse_steps: int = 300,
  colour: str = "none",
  mask: str | None = None,
  start: str | None = None,
  style_layers: str = "",
  preview_every: int = 10,
  sketch: dict | None = None,
  session: Session | None = None,
):
  """A generator for the page: ``(image, progress, files, command)`` at every report (the iterate as 8-bit
  pixels), then the result's PNG, a summary, ``[PNG, JSON record]`` and the reproducing command.

  Raises:
    gr.Error: a missing or bad upload, bad settings, missing weights, a loss that became non-finite.
  """
  session = session or Session()
  stop = session.start()
  arrays = {
    "content": uploads.read(content, "the content"),
    "style": uploads.read(style, "the style"),
    "mask": uploads.read(mask, "the mask", required=False),
    "start": uploads.read(start, "the start image", required=False),
  }
  drawn = uploads.drawn_mask(sketch, arrays["content"].shape)
  if drawn is not None and mask:
    raise gr.Error("upload a mask or draw one, not both", print_exception=False)
  folder = session.job_folder(ctx.outputs, "paint")
  kept = {k: uploads.keep(p, folder, k) for k, p in (("content", content), ("style", style), ("mask", mask),
                                                      ("start", start)) if p}  # fmt: skip
  if drawn is not None:  # written as a file, so that the command reads the very mask the run used
    kept["mask"] = os.fspath(folder / "mask.png")
    images.save_image(kept["mask"], drawn)
    arrays["mask"] = images.load_image(kept["mask"])
  if ratio_log10 is None:
    ratio_log10 = log_ratio(presets.get(preset))
  config = config_for(preset, ratio_log10, size, steps, coarse, coarse_steps, colour, style_layers, preview_every,
                      kept.get("mask"), kept.get("start"))  # fmt: skip
  try:
    problem.check_inputs(arrays["content"], [arrays["style"]], config)
  except JaxstyleError as e:
    raise uploads.fail(e) from None
  params = ctx.vgg()
  run = functools.partial(_run, arrays=arrays, config=config, params=params)
  t0, started = time.perf_counter(), time.time()
  try:
    result = yield from mapped(stream(run, stop), lambda s: (s.image, s.text(), None, ""))
  except JaxstyleError as e:
    raise uploads.fail(e) from None
  out = folder / "result.png"
  command = stylize_command(kept["content"], [kept["style"]], os.fspath(out), result.config, ctx.command_weights())
  record = _write(out, result, kept, command, ctx, time.perf_counter() - t0, started)
  session.results.append(os.fspath(out))
  yield os.fspath(out), _summary(result), [os.fspath(out), os.fspath(record)], command


def _run(callback, stop, *, arrays, config, params) -> Result:
  return stylize(arrays["content"], [arrays["style"]], config, params=params, mask=arrays["mask"],
                 init_image=arrays["start"], callback=callback, stop=stop)  # fmt: skip


def _summary(result: Result) -> str:
  total = sum(n for _, n in scale_plan(result.config))
  state = {"completed": "done", "stopped": "stopped", "non-finite": "loss became non-finite"}[result.status]
  t = result.timings
  return (
    f"{state} at step {result.steps_done}/{total}; loss {result.losses['total']:.4g}; "
    f"{t['steps_per_s']:.2f} it/s, compile {duration(t['compile_s'])}"
  )


def _write(out: Path, result: Result, kept: dict, command: str, ctx: Context, wall: float, started: float) -> Path:
  """The image and its JSON record (as ``jaxstyle stylize`` writes them)."""
  image = np.asarray(result.image)
  images.save_image(out, image, icc_profile=images.read_icc_profile(kept["content"]))
  record = {
    "output": os.fspath(out),
    "status": "interrupted" if result.status == "stopped" else result.status,
    "steps_done": result.steps_done,
    "reproduce": command,
    "content": kept["content"],
    "style": [kept["style"]],
    "size": [int(image.shape[1]), int(image.shape[0])],
    "scales": result.scales,
    "settings": result.config.to_dict(),
    "losses": result.losses,
    "timings": {**result.timings, "wall_s": wall, "started": started, "finished": time.time()},
    "weights": ctx.command_weights(),
  }
  path = out.with_suffix(".json")
  write_json(path, record)
  return path


def _sketch_on(content: str | None):
  """The sketch box's canvas: the content, to draw the mask over (nothing for a file that is not an image: the run
  says why)."""
  try:
    picture = images.to_uint8(images.load_image(content)) if content else None
  except JaxstyleError:
    return None
  return None if picture is None else {"background": picture, "layers": [], "composite": picture}


def build(ctx: Context, session: gr.State) -> dict:
  """The tab's controls and events (inside a ``gr.Tab``); returns the controls another tab may set."""
  ratio0, size0, steps0, coarse0, coarse_steps0 = preset_controls(presets.DEFAULT)
  with gr.Row():
    with gr.Column():
      with gr.Row():
        content = uploads.Upload("Content", elem_id="paint-content", height=220)
        style = uploads.Upload("Style", elem_id="paint-style", height=220)
      preset = gr.Dropdown(sorted(presets.PRESETS), value=presets.DEFAULT, label="Preset", elem_id="paint-preset")
      ratio = gr.Slider(*LOG_RATIO, value=ratio0, step=0.01, label="log10 α/β (left: more style, right: more content)",
                        elem_id="paint-ratio")  # fmt: skip
      with gr.Row():
        size = gr.Slider(64, 2048, value=size0, step=16, label="Size (px)", elem_id="paint-size")
        steps = gr.Slider(0, 2000, value=steps0, step=10, label="Steps (at full size)", elem_id="paint-steps")
      with gr.Row():
        coarse = gr.Checkbox(value=coarse0, label="Coarse to fine (x2 ladder from 256 px)", elem_id="paint-coarse")
        coarse_steps = gr.Slider(0, 2000, value=coarse_steps0, step=10, label="Steps at each coarser scale")
      with gr.Row():
        colour = gr.Radio(list(COLOURS), value="none", label="Preserve the content's colours")
        every = gr.Slider(1, 100, value=10, step=1, label="Preview every N steps", elem_id="paint-every")
      with gr.Accordion("Mask, start image, layers", open=False, elem_id="paint-more"):
        with gr.Row():
          mask = uploads.Upload("Mask (white: stylize)", elem_id="paint-mask", height=160)
          start = uploads.Upload("Start image", elem_id="paint-start", height=160)
        sketch = gr.ImageEditor(
          label="Or draw the mask on the content (strokes: stylize there)", type="numpy", image_mode="RGBA",
          sources=["upload"], transforms=(), layers=False, elem_id="paint-sketch", height=300,
          brush=gr.Brush(colors=["#ff3b30"], color_mode="fixed", default_size=24),
        )  # fmt: skip
        layers = gr.Textbox(label="Style layers (blank: the preset's)", placeholder="relu1_1:1,relu2_1:1,relu3_1:1",
                            elem_id="paint-layers")  # fmt: skip
      with gr.Row():
        go = gr.Button("Paint", variant="primary", elem_id="paint-run")
        stop = gr.Button("Stop", variant="stop", elem_id="paint-stop")
    with gr.Column():
      image = gr.Image(
        label="Live", type="filepath", format="png", interactive=False, elem_id="paint-result", height=400
      )
      progress = gr.Textbox(label="Progress", interactive=False, elem_id="paint-progress")
      files = gr.File(label="Result and its record", file_count="multiple", interactive=False, elem_id="paint-files")
      command = gr.Code(label="The command that reproduces it", language="shell", interactive=False, wrap_lines=True,
                        elem_id="paint-command")  # fmt: skip
  preset.input(
    preset_controls, inputs=preset, outputs=[ratio, size, steps, coarse, coarse_steps], api_visibility="private"
  )
  content.change(_sketch_on, inputs=content, outputs=sketch, api_visibility="private")
  go.click(
    functools.partial(run_paint, ctx),
    inputs=[
      content,
      style,
      preset,
      ratio,
      size,
      steps,
      coarse,
      coarse_steps,
      colour,
      mask,
      start,
      layers,
      every,
      sketch,
      session,
    ],  # fmt: skip
    outputs=[image, progress, files, command],
    api_name="stylize",
    concurrency_id="device",
    concurrency_limit=1,
  )
  stop.click(lambda s: s.stop.set(), inputs=session, api_visibility="private", queue=False)
  return {"content": content, "style": style, "preset": preset, "ratio": ratio, "size": size, "steps": steps,
          "coarse": coarse, "layers": layers}  # fmt: skip
