"""The page and the server: :func:`build_app` lays out the tabs over one :class:`~jaxstyle.ui.context.Context`;
:func:`serve` runs it on 127.0.0.1 (unless told otherwise) with share, analytics and telemetry off, so that the
server makes no request beyond the machine and serves only its temporary folder and the outputs it made."""

from __future__ import annotations

import os

# Before Gradio is imported: its analytics and version check would call out.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import tempfile  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402

from jaxstyle.fast.stylize import Networks  # noqa: E402
from jaxstyle.ui import instant, paint, sweep, video  # noqa: E402
from jaxstyle.ui.context import Context  # noqa: E402
from jaxstyle.ui.jobs import Session  # noqa: E402
from jaxstyle.ui.uploads import MAX_FILE_SIZE  # noqa: E402

TITLE = "jaxstyle workbench"
# The default theme's fonts are files served by Gradio itself; system fonts follow.
THEME = gr.themes.Default(
  font=[gr.themes.LocalFont("Source Sans Pro"), "ui-sans-serif", "system-ui", "sans-serif"],
  font_mono=[gr.themes.LocalFont("IBM Plex Mono"), "ui-monospace", "monospace"],
)
CSS = "footer {display: none !important}"


def build_app(
  *,
  params: Mapping | None = None,
  networks: Networks | None = None,
  weights_path: str | os.PathLike | None = None,
  outputs: str | os.PathLike | None = None,
) -> gr.Blocks:
  """The workbench's page, queued: optimizations and clips (Paint, Sweep, Video) one at a time, Instant beside
  them.

  Args:
    params: VGG19 params (default: loaded from ``weights_path`` or the default places on first use).
    networks: the fast networks (default: loaded from their default files on first use).
    weights_path: the VGG19 file; the reproducing commands name it.
    outputs: the folder every job writes into (default: a new temporary folder).

  Returns:
    the ``gr.Blocks``; its ``outputs`` attribute is the outputs folder.
  """
  folder = Path(outputs) if outputs is not None else Path(tempfile.mkdtemp(prefix="jaxstyle-ui-outputs-"))
  folder.mkdir(parents=True, exist_ok=True)
  weights = None if weights_path is None else os.fspath(weights_path)
  ctx = Context(outputs=folder.resolve(), params=params, networks=networks, weights_path=weights)
  with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
    session = gr.State(Session)  # a callable: one Session per browser session
    gr.Markdown(
      "## jaxstyle workbench\nInstant: Magenta's networks in one pass. Paint: the optimization (Gatys et al.), "
      "shown live. Sweep: a grid of weightings and its Pareto plot. Video: a clip, frame after frame, without "
      "flicker. One job (Paint, Sweep, Video) runs at a time; others wait in the queue."
    )
    with gr.Tabs() as tabs:
      with gr.Tab("Instant", id="instant", elem_id="tab-instant"):
        instant.build(ctx, session)
      with gr.Tab("Paint", id="paint", elem_id="tab-paint"):
        controls = paint.build(ctx, session)
      with gr.Tab("Sweep", id="sweep", elem_id="tab-sweep"):
        sweep.build(ctx, session, controls, tabs)
      with gr.Tab("Video", id="video", elem_id="tab-video"):
        video.build(ctx, session)
  app.queue(default_concurrency_limit=1)
  app.outputs = ctx.outputs
  app.context = ctx
  return app


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
  """Starts the server: share off, no footer links to the internet, no monitoring, serving the outputs folder
  (and Gradio's own temporary folder) only. ``block=False`` returns at once (tests)."""
  return app.launch(
    server_name=host,
    server_port=port,
    share=False,
    inbrowser=False,
    prevent_thread_lock=not block,
    quiet=True,
    show_error=True,
    allowed_paths=[os.fspath(app.outputs)],
    max_file_size=MAX_FILE_SIZE,
    enable_monitoring=False,
    footer_links=[],
    run_history=False,
    mcp_server=False,
    ssr_mode=False,
    pwa=False,
    theme=THEME,
    css=CSS,
  )
