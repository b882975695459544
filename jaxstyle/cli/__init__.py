"""The command line: :mod:`~jaxstyle.cli.main` (the parser and dispatch), :mod:`~jaxstyle.cli.common` (what the
commands share), and one module per command, each owning its parser and handler: ``stylize``, ``demo``,
``sweep``, ``score``, ``fast``, ``train``, ``weights``.

Imports: anything below it; nothing imports it but ``jaxstyle.__main__`` and the ``jaxstyle`` script.
"""

from jaxstyle.cli.common import CliError, config_from_args, stylize_command
from jaxstyle.cli.main import build_parser, main

__all__ = ["CliError", "build_parser", "config_from_args", "main", "stylize_command"]
