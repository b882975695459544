"""The settings of training a feed-forward network for one style (``jaxstyle train``)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Literal

from jaxstyle.settings import presets
from jaxstyle.settings.fields import Settings, at_least, choices, finite_nonneg, positive, setting
from jaxstyle.settings.style import StyleConfig

Subset = Literal["vector", "cin", "all"]
TRAIN_SUBSETS: tuple[str, ...] = typing.get_args(Subset)
Preset = Annotated[str, choices(tuple(presets.PRESETS))]


@dataclasses.dataclass(frozen=True)
class TrainSettings(Settings):
  """How a feed-forward network is trained for one style; the objective is a preset's."""

  preset: Preset = setting("gatys", "the preset whose objective (loss and network) is trained")
  train: Subset = setting(
    "cin",
    "what is trained: the style vector, the CIN gamma/beta layers and the vector (cin), or every parameter (all)",
  )
  steps: int = setting(1000, "training steps", check=at_least(0), resumable=True)
  batch: int = setting(4, "crops per step (a multiple of the device count)", check=at_least(1))
  size: int = setting(
    256, "side of the square training crops and long side of evaluation images in px", check=at_least(16)
  )
  max_scale: float = setting(
    1.5, "photographs are scaled to a random short side in [size, max_scale * size] before cropping", check=at_least(1)
  )
  flip: bool = setting(True, "mirror half the crops horizontally")
  lr: float = setting(1e-3, "Adam's learning rate", check=positive)
  content_weight: float | None = setting(
    None, "override the preset's content weight (none: the preset's)", check=finite_nonneg
  )
  style_weight: float | None = setting(
    None, "override the preset's style weight (none: the preset's)", check=finite_nonneg
  )
  tv_weight: float | None = setting(None, "override the preset's TV weight (none: the preset's)", check=finite_nonneg)
  style_size: int | None = setting(
    None,
    "long side of the style image for its Gram targets (none: size times the preset's style_scale)",
    check=at_least(16),
  )
  seed: int = setting(0, "seed of the crops, scales and flips", check=at_least(0))
  report_every: int = setting(10, "steps between progress reports", check=at_least(1), resumable=True)
  eval_every: int | None = setting(
    None, "steps between evaluations on the held-out images (none: only at the end)", check=at_least(1), resumable=True
  )
  checkpoint_every: int | None = setting(
    None,
    "steps between checkpoints (none: only at the end, when a checkpoint path is given)",
    check=at_least(1),
    resumable=True,
  )

  def config(self) -> StyleConfig:
    """The preset with this section's overrides: its ``loss``, ``network`` and ``images.style_scale`` are used."""
    overrides = {k: getattr(self, k) for k in ("content_weight", "style_weight", "tv_weight")}
    return presets.get(self.preset, **{k: v for k, v in overrides.items() if v is not None})
