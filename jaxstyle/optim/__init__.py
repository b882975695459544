"""Optimizing an image: L-BFGS, the step every optimizer shares, the loop, problem set-up, coarse to fine, sweeps.

- :mod:`~jaxstyle.optim.lbfgs`: L-BFGS with a backtracking line search that stays cheap under ``vmap``.
- :mod:`~jaxstyle.optim.step`: the optax transformation, one step, a compiled chunk of steps.
- :mod:`~jaxstyle.optim.loop`: compiled chunks with reports, saves, stops, recovery, tiles and devices.
- :mod:`~jaxstyle.optim.problem`: one scale's images, colours, masks, targets and start.
- :mod:`~jaxstyle.optim.stylize`: :func:`~jaxstyle.optim.stylize.stylize`, coarse to fine, and its checkpoints.
- :mod:`~jaxstyle.optim.sweep`: many loss weightings in one batch.

Imports: :mod:`jaxstyle.objective`, :mod:`jaxstyle.settings`, :mod:`jaxstyle.runtime`, :mod:`jaxstyle.io`,
:mod:`jaxstyle.nets`, and :mod:`jaxstyle.fast` (a fast network's picture as a start).
"""

from jaxstyle.optim import lbfgs, loop, problem, step, stylize, sweep
from jaxstyle.optim.loop import Progress, Resume, Run, optimize
from jaxstyle.optim.step import Static, init_state, optimizer, run_step
from jaxstyle.optim.stylize import Result
from jaxstyle.optim.sweep import SweepResult, SweepSpec, stylize_sweep

__all__ = [
  "Progress",
  "Result",
  "Resume",
  "Run",
  "Static",
  "SweepResult",
  "SweepSpec",
  "init_state",
  "lbfgs",
  "loop",
  "optimize",
  "optimizer",
  "problem",
  "run_step",
  "step",
  "stylize",
  "stylize_sweep",
  "sweep",
]
