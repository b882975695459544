"""``jaxstyle ui``: the web workbench (:mod:`jaxstyle.ui`) served on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading

from jaxstyle.cli.common import CliError


def add_parser(sub) -> None:
  p = sub.add_parser(
    "ui",
    help="the web workbench: Instant, Paint (live), Sweep and Video in the browser",
    description="Serve the web workbench (Gradio) until Ctrl-C: fast stylization, the optimization with its "
    "picture live, sweeps with their Pareto plot, clips frame after frame, each with a named API endpoint (/fast, "
    "/stylize, /sweep, /video). "
    "Binds 127.0.0.1 unless --host says otherwise; no share link, no analytics. Needs pip install 'jaxstyle[ui]'.",
  )
  p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
  p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
  p.add_argument("--outputs", metavar="DIR", help="keep the results in DIR (default: a temporary folder)")
  p.add_argument(
    "--weights", metavar="PATH",
    help="VGG19 weights file (default: $JAXSTYLE_WEIGHTS, weights/vgg19.h5 in a checkout, else ~/.cache/jaxstyle)",
  )  # fmt: skip
  p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
  if not 0 < args.port < 65536:
    raise CliError(f"--port must be 1..65535, got {args.port}")
  # Gradio's uploads and cache go to a folder of this server's own, read when Gradio is imported.
  os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="jaxstyle-ui-")
  try:
    from jaxstyle.ui import app as workbench
  except ImportError as e:
    raise CliError(f"the web workbench needs its extra: pip install 'jaxstyle[ui]' ({e})") from None
  stopped = threading.Event()
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stopped.set())
  page = workbench.build_app(weights_path=args.weights, outputs=args.outputs)
  try:
    _, url, _ = workbench.launch(page, host=args.host, port=args.port, block=False)
  except OSError as e:
    raise CliError(f"cannot serve on {args.host}:{args.port} ({e})") from None
  print(f"jaxstyle ui: serving on {url} (outputs in {page.outputs}); Ctrl-C stops", file=sys.stderr, flush=True)
  stopped.wait()
  page.close()
  print("jaxstyle ui: stopped", file=sys.stderr, flush=True)
  return 0
