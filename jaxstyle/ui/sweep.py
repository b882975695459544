"""The Sweep tab (``/sweep``): a grid of α/β ratios and style layer sets, a gallery of the members, the Pareto
plot of style against content distance; a chosen member's scores and command, and a button that sends it to
Paint."""

from __future__ import annotations

import functools
import os
import time

import gradio as gr
import numpy as np
import pandas as pd

from jaxstyle.errors import JaxstyleError
from jaxstyle.io import images, plot
from jaxstyle.io.files import write_json
from jaxstyle.objective import metrics
from jaxstyle.optim import problem
from jaxstyle.optim import sweep as optim_sweep
from jaxstyle.settings import presets
from jaxstyle.settings.commands import stylize_command
from jaxstyle.ui import paint, uploads
from jaxstyle.ui.context import Context
from jaxstyle.ui.jobs import Session, mapped, stream


def parse_grid(ratios: str, layer_sets: str) -> optim_sweep.SweepSpec:
  """The grid the two text boxes give: ratios comma-separated, one layer set a line (layers comma-separated).

  Raises:
    gr.Error: not numbers, a ratio not positive, nothing to sweep.
  """
  try:
    rs = tuple(float(v) for v in (ratios or "").replace(" ", ",").split(",") if v.strip())
  except ValueError:
    raise gr.Error(f"ratios: expected comma-separated numbers, got {ratios!r}", print_exception=False) from None
  if any(not r > 0 for r in rs):
    raise gr.Error("ratios must be positive", print_exception=False)
  sets = tuple(tuple(n.strip() for n in line.split(",") if n.strip()) for line in (layer_sets or "").splitlines())
  sets = tuple(s for s in sets if s)
  if not (rs or sets):
    raise gr.Error("give at least one ratio or one layer set", print_exception=False)
  return optim_sweep.SweepSpec(ratios=rs or None, style_layer_sets=sets or None)


def run_sweep(
  ctx: Context,
  content: str | None,
  style: str | None,
  preset: str = "gatys",
  ratios: str = "1e-4,1e-3,1e-2",
  layer_sets: str = "",
  size: int = 128,
  steps: int = 100,
  session: Session | None = None,
):
  """A generator for the page: ``(gallery, plot, members, progress, choice)`` at every report, then the members'
  images with captions, the plot's table, each member's record (image, label, scores, command) and the choice
  box's update.

  Raises:
    gr.Error: a missing or bad upload, bad settings or grid, missing weights.
  """
  session = session or Session()
  stop = session.start()
  content_rgb, style_rgb = uploads.read(content, "the content"), uploads.read(style, "the style")
  spec = parse_grid(ratios, layer_sets)
  try:
    config = presets.get(preset, size=int(size), steps=int(steps), scales=None, coarse_steps=None).resolve()
    labels, members, _ = spec.grid(config)
    run_config = spec.run_config(config)
    problem.check_inputs(content_rgb, [style_rgb], run_config)
    weights = spec.weights(config)
  except (JaxstyleError, KeyError) as e:
    raise uploads.fail(e) from None
  folder = session.job_folder(ctx.outputs, "sweep")
  kept = {"content": uploads.keep(content, folder, "content"), "style": uploads.keep(style, folder, "style")}
  params = ctx.vgg()

  def run(callback, stopped):
    return optim_sweep.stylize_sweep(content_rgb, [style_rgb], run_config, weights, params=params, callback=callback,
                                     stop=stopped)  # fmt: skip

  t0 = time.perf_counter()
  try:
    result = yield from mapped(stream(run, stop), lambda s: (None, None, None, f"{len(members)} members: {s.text()}",
                                                             gr.update()))  # fmt: skip
    scores = _scores(params, content_rgb, style_rgb, run_config, result.images)
  except JaxstyleError as e:
    raise uploads.fail(e) from None
  records = []
  for i, (label, member, image) in enumerate(zip(labels, members, result.images, strict=True)):
    out = folder / optim_sweep.member_filename(i, label)
    images.save_image(out, image)
    records.append({
      "image": os.fspath(out),
      "label": optim_sweep.label_text(label),
      "settings": label,
      "losses": result.losses[i],
      "content_distance": float(scores["content"][i]),
      "style_distance": float(scores["style_gram"][i]),
      "command": stylize_command(kept["content"], [kept["style"]], os.fspath(out), member, ctx.command_weights()),
      "layers": paint.layers_text(member.loss.style_layers),
      "ratio_log10": round(paint.log_ratio(member), 4),
      "steps_done": int(result.steps_done[i]),
    })  # fmt: skip
  front = plot.pareto_front([r["content_distance"] for r in records], [r["style_distance"] for r in records])
  for r, f in zip(records, front, strict=True):
    r["pareto"] = bool(f)
  write_json(folder / "sweep.json", {"content": kept["content"], "style": kept["style"], "preset": preset,
                                     "size": int(size), "steps": int(steps), "members": records,
                                     "wall_s": time.perf_counter() - t0})  # fmt: skip
  session.sweep = {"records": records, "kept": kept, "preset": preset, "size": int(size), "steps": int(steps)}
  gallery = [(r["image"], r["label"]) for r in records]
  choices = [(f"{i}: {r['label']}", i) for i, r in enumerate(records)]
  summary = f"{len(records)} members in {time.perf_counter() - t0:.1f} s"
  if result.status == "stopped":  # every member as far as it got; those not begun are their start image
    steps_done = ", ".join(str(n) for n in result.steps_done)
    summary = f"stopped: {summary}, steps done {steps_done} of {int(steps)}"
  yield gallery, table(records), records, summary, gr.update(choices=choices, value=0)


FRONT, DOMINATED = "on the front", "dominated"
# The static pareto.png's colours: the front red, the others grey.
FRONT_COLOURS = {FRONT: "#d62728", DOMINATED: "#7f7f7f"}


def table(records: list[dict]) -> pd.DataFrame:
  """The Pareto plot's data: one row per member."""
  return pd.DataFrame({
    "content distance": [r["content_distance"] for r in records],
    "style distance": [r["style_distance"] for r in records],
    "member": [r["label"] for r in records],
    "Pareto front": [FRONT if r["pareto"] else DOMINATED for r in records],
  })  # fmt: skip


def _scores(params, content, style, config, results: np.ndarray) -> dict:
  """Each member's measures against the content at the run's size and the style (as ``jaxstyle sweep``)."""
  size = config.images.size
  content = content if size is None else images.resize(content, size)
  style = images.resize(style, max(1, round(max(content.shape[:2]) * config.images.style_scale)))
  return metrics.score(params, content, style, list(results), pooling=config.network.pooling)


def member_details(index, session: Session) -> tuple[str, str]:
  """A member's scores (Markdown) and its command."""
  sweep = getattr(session, "sweep", None)
  if sweep is None or index is None:
    return "", ""
  r = sweep["records"][int(index)]
  text = (
    f"**{r['label']}**: content distance {r['content_distance']:.4g}, style distance {r['style_distance']:.4g}"
    f"{' (on the Pareto front)' if r['pareto'] else ''}; loss {r['losses']['total']:.4g}"
  )
  return text, r["command"]


def nearest(evt: gr.SelectData, session: Session):
  """The member a click on the plot or the gallery picks (the plot gives an x range: the member nearest its
  middle)."""
  sweep = getattr(session, "sweep", None)
  if sweep is None:
    return gr.update()
  idx = evt.index
  if isinstance(idx, (list, tuple)) and len(idx) == 2 and all(isinstance(v, (int, float)) for v in idx):
    mid = (float(idx[0]) + float(idx[1])) / 2
    xs = [r["content_distance"] for r in sweep["records"]]
    return int(np.argmin([abs(x - mid) for x in xs]))
  return int(idx if not isinstance(idx, (list, tuple)) else idx[0])


def to_paint(index, session: Session):
  """Paint's controls set to a member's settings (and its content and style), and the Paint tab shown."""
  sweep = getattr(session, "sweep", None)
  if sweep is None or index is None:
    raise gr.Error("run a sweep and choose a member first", print_exception=False)
  r = sweep["records"][int(index)]
  k = sweep["kept"]
  return (k["content"], k["style"], sweep["preset"], r["ratio_log10"], sweep["size"], sweep["steps"], False,
          r["layers"], gr.Tabs(selected="paint"))  # fmt: skip


def build(ctx: Context, session: gr.State, paint_controls: dict, tabs: gr.Tabs) -> None:
  """The tab's controls and events (inside a ``gr.Tab``)."""
  with gr.Row():
    with gr.Column(scale=1):
      with gr.Row():
        content = uploads.Upload("Content", elem_id="sweep-content", height=180)
        style = uploads.Upload("Style", elem_id="sweep-style", height=180)
      preset = gr.Dropdown(sorted(presets.PRESETS), value="gatys", label="Preset", elem_id="sweep-preset")
      ratios = gr.Textbox(value="1e-4,1e-3,1e-2", label="α/β ratios (comma-separated)", elem_id="sweep-ratios")
      sets = gr.Textbox(value="", lines=3, label="Style layer sets, one a line (blank: the preset's)",
                        placeholder="relu1_1\nrelu1_1,relu2_1,relu3_1", elem_id="sweep-sets")  # fmt: skip
      with gr.Row():
        size = gr.Slider(64, 1024, value=128, step=16, label="Size (px)", elem_id="sweep-size")
        steps = gr.Slider(10, 1000, value=100, step=10, label="Steps", elem_id="sweep-steps")
      with gr.Row():
        go = gr.Button("Sweep", variant="primary", elem_id="sweep-run")
        halt = gr.Button("Stop", variant="stop", elem_id="sweep-stop")
      progress = gr.Textbox(label="Progress", interactive=False, elem_id="sweep-progress")
    with gr.Column(scale=2):
      gallery = gr.Gallery(label="Members", columns=4, height=300, elem_id="sweep-gallery")
      with gr.Row():
        # Gradio's ScatterPlot (Vega-Lite) takes no log scale and no tick count: its ticks follow its width, so it
        # shares the row with the member's details (fewer, readable ticks), with three significant digits.
        pareto = gr.ScatterPlot(x="content distance", y="style distance", color="Pareto front", tooltip="all",
                                title="Style against content distance (lower left is better on both)",
                                x_title="content distance", y_title="style distance", color_title="Pareto front",
                                color_map=FRONT_COLOURS, x_axis_format=".3~g", y_axis_format=".3~g", height=300,
                                scale=3, elem_id="sweep-plot")  # fmt: skip
        with gr.Column(scale=2):
          choice = gr.Dropdown(choices=[], label="Member", elem_id="sweep-member")
          details = gr.Markdown(elem_id="sweep-details")
          send = gr.Button("Refine in Paint", elem_id="sweep-send")
      command = gr.Code(
        label="Its command", language="shell", interactive=False, wrap_lines=True, elem_id="sweep-command"
      )
      members = gr.JSON(visible=False)
  go.click(
    functools.partial(run_sweep, ctx),
    inputs=[content, style, preset, ratios, sets, size, steps, session],
    outputs=[gallery, pareto, members, progress, choice],
    api_name="sweep",
    concurrency_id="device",
    concurrency_limit=1,
  )
  halt.click(lambda s: s.stop.set(), inputs=session, api_visibility="private", queue=False)
  choice.change(member_details, inputs=[choice, session], outputs=[details, command], api_visibility="private")
  gallery.select(nearest, inputs=session, outputs=choice, api_visibility="private")
  pareto.select(nearest, inputs=session, outputs=choice, api_visibility="private")
  p = paint_controls
  send.click(
    to_paint,
    inputs=[choice, session],
    outputs=[
      p["content"],
      p["style"],
      p["preset"],
      p["ratio"],
      p["size"],
      p["steps"],
      p["coarse"],
      p["layers"],
      tabs,
    ],  # fmt: skip
    api_visibility="private",
  )
