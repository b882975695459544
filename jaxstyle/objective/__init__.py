"""The objective: pure losses of feature pytrees, the targets, the weighted loss of an image, whole or by tiles,
and the quality measures that judge results independently of any preset.

- :mod:`~jaxstyle.objective.losses`: Gram matrices, content, style and total-variation losses, their weights
  (:class:`~jaxstyle.objective.losses.LossWeights`, a pytree) and forms (``LossSpec``).
- :mod:`~jaxstyle.objective.targets`: the objective's :class:`Form`, :class:`Targets` and :func:`compute_targets`.
- :mod:`~jaxstyle.objective.loss`: :func:`objective` (one image), :func:`batch_loss` (a batch against its own
  contents), the value and gradient the optimizers call.
- :mod:`~jaxstyle.objective.tiled`: the same value and gradient tile by tile, exactly (print sizes).
- :mod:`~jaxstyle.objective.metrics`: style, content, colour and artifact measures.

Imports: :mod:`jaxstyle.nets`, :mod:`jaxstyle.runtime`, :mod:`jaxstyle.io` (images for the measures).
"""

from jaxstyle.objective import losses, metrics, tiled
from jaxstyle.objective.loss import WHOLE, Tiling, batch_loss, objective, value_and_grad_fn, value_fn
from jaxstyle.objective.targets import (
  Coupling,
  Form,
  Targets,
  Temporal,
  compose,
  compute_targets,
  content_targets,
  style_targets,
)

__all__ = [
  "Coupling",
  "WHOLE",
  "Form",
  "Targets",
  "Temporal",
  "Tiling",
  "batch_loss",
  "compose",
  "compute_targets",
  "content_targets",
  "losses",
  "metrics",
  "objective",
  "style_targets",
  "tiled",
  "value_and_grad_fn",
  "value_fn",
]
