"""Fast (feed-forward) stylization: Magenta's networks run, tiled and trained.

- :mod:`~jaxstyle.fast.stylize`: one forward pass per image, from arrays and settings (any style, blends,
  the 26 built-in styles, a trained network); batched by shape.
- :mod:`~jaxstyle.fast.tiled`: the same by tiles, exactly, for print sizes.
- Training a network for one style: :mod:`~jaxstyle.fast.data` (photographs and crops),
  :mod:`~jaxstyle.fast.train` (the loop, on the objective of :mod:`jaxstyle.objective`) and
  :mod:`~jaxstyle.fast.model_file` (the trained network's file and the training checkpoint).

Imports: :mod:`jaxstyle.nets`, :mod:`jaxstyle.io`, :mod:`jaxstyle.runtime`, :mod:`jaxstyle.settings`,
:mod:`jaxstyle.objective`; never :mod:`jaxstyle.optim`.
"""

from jaxstyle.fast import data, model_file, stylize, tiled, train
from jaxstyle.fast.stylize import Networks, condition, initial_image, style_vector, stylize_fast, stylize_variants

__all__ = [
  "Networks",
  "condition",
  "data",
  "initial_image",
  "model_file",
  "style_vector",
  "stylize",
  "stylize_fast",
  "stylize_variants",
  "tiled",
  "train",
]
