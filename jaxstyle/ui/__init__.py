"""The web workbench (``jaxstyle ui``): a Gradio app over the library, one module per tab.

- :mod:`~jaxstyle.ui.app`: :func:`~jaxstyle.ui.app.build_app` (the page, its queue, networks injectable for tests)
  and :func:`~jaxstyle.ui.app.serve` (bound to 127.0.0.1, share and analytics off).
- :mod:`~jaxstyle.ui.instant`: the fast networks (``/fast``); :mod:`~jaxstyle.ui.paint`: the optimization with
  its live picture, Stop and the reproducing command (``/stylize``); :mod:`~jaxstyle.ui.sweep`: a grid of
  weightings, its gallery and Pareto plot, Stop (``/sweep``); :mod:`~jaxstyle.ui.video`: a clip through
  :mod:`jaxstyle.video` with its progress, Stop and the reproducing command (``/video``).
- :mod:`~jaxstyle.ui.uploads`: uploads read with the CLI's checks, bad ones turned into a message in the page, and
  a mask drawn in the page; :mod:`~jaxstyle.ui.jobs`: a browser session's own jobs and folders, a run on a thread
  streamed as previews; :mod:`~jaxstyle.ui.context`: the networks (given, or loaded once) and the outputs folder.

Gradio is an optional extra (``jaxstyle[ui]``): only these modules import it, and nothing imports them but
``jaxstyle.cli.ui`` (when the command runs) and the tests.

Imports: :mod:`jaxstyle.video`, :mod:`jaxstyle.optim`, :mod:`jaxstyle.fast`, :mod:`jaxstyle.settings`,
:mod:`jaxstyle.objective`, :mod:`jaxstyle.io`, :mod:`jaxstyle.nets` (every layer below it but the command line), and
Gradio.
"""
