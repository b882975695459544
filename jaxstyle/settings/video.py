"""The settings of a video stylization (``jaxstyle video``): the fast stylization's, and time's."""

from __future__ import annotations

import dataclasses
from typing import Literal

from jaxstyle.settings.fast import FastSettings
from jaxstyle.settings.fields import at_least, closed_unit, finite_nonneg, setting


@dataclasses.dataclass(frozen=True)
class VideoSettings(FastSettings):
  """Everything that defines a clip's stylization: each frame's (:class:`FastSettings`; ``size`` is the
  frames' longest side, none keeps the clip's) and how frames are tied together. ``method="optimize"`` takes
  each frame's recipe from a :class:`~jaxstyle.settings.style.StyleConfig` beside these."""

  method: Literal["fast", "optimize"] = setting(
    "fast",
    "fast: the feed-forward networks, made consistent by a solve; optimize: Gatys et al. per frame (the recipe's "
    "flags), each frame after a shot's first started from the previous output warped into it, with a temporal loss",
  )
  size: int | None = setting(None, "longest side of the output frames in px (none: the clip's own)", check=at_least(5))
  start: int = setting(0, "first frame to stylize (0 is the clip's first)", check=at_least(0))
  frames: int | None = setting(None, "how many frames to stylize (none: to the end)", check=at_least(1))
  consistency: bool = setting(True, "make each frame agree with the previous output where the motion is reliable")
  flow_size: int | None = setting(
    320, "longest side the optical flow is computed at (none: the frames' own)", check=at_least(16)
  )
  temporal_weight: float = setting(
    4.0, "weight of the previous output warped into a frame against the frame's own gradients", check=finite_nonneg
  )
  falloff: float = setting(
    30.0, "how fast a colour mismatch of the warped input removes the temporal weight", check=finite_nonneg
  )
  detail: bool = setting(
    True, "scale each consistent frame's finest detail back to the energy of the frame's own rendering"
  )
  solver_iterations: int = setting(15, "conjugate-gradient iterations of the consistency solve", check=at_least(1))
  cut_threshold: float = setting(
    0.3,
    "a scene cut where less than this share of pixels is reliably matched by the flow (the temporal term restarts)",
    check=closed_unit,
  )
  temporal_loss: float = setting(
    1e3,
    "optimize: weight of Ruder et al.'s temporal loss (the mean squared difference, over reliable pixels in 0-255 "
    "units, to the previous output warped into the frame), beside the recipe's content and style weights",
    check=finite_nonneg,
  )
  later_steps: int = setting(
    200, "optimize: steps for each frame after a shot's first (which runs the recipe's whole ladder)", check=at_least(1)
  )
  clip_window: int | None = setting(
    None,
    "optimize: frames optimized jointly, as one batch sharded over every device, their temporal terms coupling "
    "neighbours both ways (none: frame after frame)",
    check=at_least(2),
    flag="--clip",
  )
  batch: int = setting(4, "frames per compiled call", check=at_least(1))
  quality: int = setting(
    18,
    "H.264's constant rate factor, 0..51 (lower is better; 18 is visually lossless)",
    check=lambda v: None if 0 <= v <= 51 else "must be in 0..51",
  )
