"""The settings of a fast (feed-forward) stylization (``jaxstyle fast``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from jaxstyle.errors import InputError
from jaxstyle.nets import magenta
from jaxstyle.settings.fields import Codec, at_least, closed_unit, finite_nonneg, setting
from jaxstyle.settings.style import PictureSettings, Tile, tile_check


def _parse_builtin(text: str) -> tuple[tuple[int, float], ...]:
  """``3`` -> ((3, 1.0),); ``3:0.5,12:0.5`` -> ((3, 0.5), (12, 0.5))."""
  out = []
  for item in text.split(","):
    if item.strip():
      k, _, w = item.partition(":")
      out.append((int(k), float(w) if w.strip() else 1.0))
  if not out:
    raise ValueError("no styles")
  return tuple(out)


def _is_mix(v: Any) -> bool:
  return isinstance(v, tuple) and len(v) > 0 and all(isinstance(p, tuple) and len(p) == 2 for p in v)


BUILTIN = Codec(
  _parse_builtin,
  lambda v: ",".join(f"{k}:{w!r}" for k, w in v),
  _is_mix,
  "N|N:W,M:W",
  expected=f"a built-in style 0..{magenta.NUM_STYLES - 1} or a mix like 3:0.5,12:0.5",
  kind="a non-empty tuple of (style, weight) pairs",
)
Mix = Annotated[tuple[tuple[int, float], ...], BUILTIN]


def _check_builtin(v) -> str | None:
  for k, w in v:
    if not (isinstance(k, int) and 0 <= k < magenta.NUM_STYLES):
      return f"names style {k!r}; the built-in styles are 0..{magenta.NUM_STYLES - 1}"
    if finite_nonneg(w):
      return f"gives style {k} weight {w!r}; weights must be finite non-negative numbers"
  if sum(w for _, w in v) <= 0:
    return "weights must not all be zero"
  return None


@dataclasses.dataclass(frozen=True)
class FastSettings(PictureSettings):
  """Everything that defines a fast stylization: the picture's settings (:class:`PictureSettings`) and the
  network's."""

  style_size: int = setting(
    magenta.STYLE_SIZE,
    "side the style image is resized to for the style predictor (its training size: 256)",
    check=at_least(magenta.MIN_SIDE),
  )
  strength: float = setting(
    1.0, "0 keeps the content's own style vector, 1 takes the style's (Magenta's interpolation)", check=closed_unit
  )
  builtin: Mix | None = setting(
    None, "use the 26-style network: one style N, or a mix N:W,M:W (instead of STYLE images)", check=_check_builtin
  )
  batch: int = setting(8, "images (or styles) per compiled call", check=at_least(1))
  tile: Tile = setting(
    None,
    "run the network tile by tile (exact: every instance norm uses the whole image's statistics; memory bounded "
    "by the tile, about K/2 + 1 network passes for K norms): a tile side in px, auto (only when the whole image "
    "does not fit in free memory) or none",
    check=tile_check,
  )

  def _check(self) -> None:
    super()._check()
    if self.size is not None and self.size < magenta.MIN_SIDE:
      raise InputError(f"size must be at least {magenta.MIN_SIDE} px for the fast networks; got {self.size}")
