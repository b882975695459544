"""The Instant tab (``/fast``): Magenta's networks in one forward pass, the same pixels as ``jaxstyle fast``."""

from __future__ import annotations

import functools

import gradio as gr

from jaxstyle.errors import JaxstyleError
from jaxstyle.fast import stylize as fast
from jaxstyle.io import images
from jaxstyle.nets import magenta
from jaxstyle.settings.fast import FastSettings
from jaxstyle.ui import uploads
from jaxstyle.ui.context import Context
from jaxstyle.ui.jobs import Session

BUILTIN_CHOICES = [(f"{k}: {name}", k) for k, name in enumerate(magenta.STYLE_NAMES)]
SOURCES = ("upload", "built-in")
COLOURS = ("none", "luminance", "histogram")


def settings_for(
  source: str, builtin, builtin2, blend: float, strength: float, preserve_color: str, size: int, *, two: bool
) -> FastSettings:
  """The :class:`FastSettings` the tab's controls mean (``two``: a second style is blended in, by ``blend``)."""
  try:
    if source == "built-in":
      if builtin is None:
        raise gr.Error("choose a built-in style", print_exception=False)
      mix = ((int(builtin), 1.0 - blend), (int(builtin2), blend)) if builtin2 is not None else ((int(builtin), 1.0),)
      return FastSettings(size=int(size), strength=float(strength), preserve_color=preserve_color, builtin=mix)
    blend_weights = (1.0 - blend, blend) if two else None
    return FastSettings(
      size=int(size), strength=float(strength), preserve_color=preserve_color, style_blend=blend_weights
    )
  except JaxstyleError as e:
    raise uploads.fail(e) from None


def run_fast(
  ctx: Context,
  content: str | None,
  style: str | None,
  style2: str | None,
  source: str = "upload",
  builtin: int | None = None,
  builtin2: int | None = None,
  blend: float = 0.5,
  strength: float = 1.0,
  preserve_color: str = "none",
  size: int = 512,
  session: Session | None = None,
) -> str:
  """Stylizes the uploaded content; returns the result's PNG (written as ``jaxstyle fast`` writes it).

  Raises:
    gr.Error: a missing or bad upload, bad settings, missing weights.
  """
  session = session or Session()
  picture = uploads.read(content, "the content")
  styles = []
  if source == "upload":
    styles = [uploads.read(style, "the style")]
    second = uploads.read(style2, "the second style", required=False)
    styles += [second] if second is not None else []
  settings = settings_for(source, builtin, builtin2, blend, strength, preserve_color, size, two=len(styles) == 2)
  networks = ctx.fast(builtin=settings.builtin is not None, predictor=settings.strength < 1.0)
  try:
    image = fast.stylize_fast([picture], styles, settings, networks)[0]
  except JaxstyleError as e:
    raise uploads.fail(e) from None
  out = session.job_folder(ctx.outputs, "fast") / "result.png"
  images.save_image(out, image, icc_profile=images.read_icc_profile(content))
  session.results.append(str(out))
  return str(out)


def build(ctx: Context, session: gr.State) -> None:
  """The tab's controls and its event (inside a ``gr.Tab``)."""
  with gr.Row():
    with gr.Column(scale=3):
      with gr.Row():
        content = uploads.Upload("Content", elem_id="instant-content", height=200)
        style = uploads.Upload("Style", elem_id="instant-style", height=200)
        style2 = uploads.Upload("Second style (optional)", elem_id="instant-style2", height=200)
      with gr.Row():
        source = gr.Radio(list(SOURCES), value="upload", label="Style from", elem_id="instant-source")
        builtin = gr.Dropdown(BUILTIN_CHOICES, value=0, label="Built-in style", elem_id="instant-builtin")
        builtin2 = gr.Dropdown(BUILTIN_CHOICES, value=None, label="Second built-in style (optional)")
      with gr.Row():
        blend = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Blend: share of the second style")
        strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Strength (0: the content's own style)")
      with gr.Row():
        colour = gr.Radio(list(COLOURS), value="none", label="Preserve the content's colours")
        size = gr.Slider(64, 2048, value=512, step=16, label="Size (longest side, px)", elem_id="instant-size")
      go = gr.Button("Stylize", variant="primary", elem_id="instant-run")
    with gr.Column(scale=2):
      result = gr.Image(label="Result", type="filepath", format="png", interactive=False, elem_id="instant-result",
                        height=420)  # fmt: skip
  go.click(
    functools.partial(run_fast, ctx),
    inputs=[content, style, style2, source, builtin, builtin2, blend, strength, colour, size, session],
    outputs=result,
    api_name="fast",
    concurrency_id="fast",
    concurrency_limit=1,
  )
