"""Fast (feed-forward) stylization: Magenta's networks in one forward pass, from arrays and settings.

:func:`stylize_fast` renders content images with any style (the arbitrary-style predictor and
transformer of Ghiasi et al. 2017), a blend of styles, a trained single-style network
(:mod:`jaxstyle.train`), or a weighting of the 26 built-in styles (Dumoulin et al. 2017), with
Magenta's strength interpolation, colour preservation and a mask. Images of one shape go
through the network together, so a folder of photographs or a batch of style vectors costs one
compiled call per shape. The networks are :mod:`jaxstyle.magenta`; their weights come from
:mod:`jaxstyle.magenta_weights`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle import color, fast_tiled, magenta
from jaxstyle import images as imageio
from jaxstyle.config import (
  COLOR_MODES,
  FLOAT,
  INT,
  TILE,
  Codec,
  Section,
  _choices,
  _finite_nonneg,
  _int_at_least,
  _optional,
  _optional_check,
  _tile_check,
  _tuple,
  _tuple_of,
  setting,
)
from jaxstyle.errors import InputError


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


BUILTIN = Codec(
  _parse_builtin,
  lambda v: ",".join(f"{k}:{w!r}" for k, w in v),
  "N|N:W,M:W",
  expected=f"a built-in style 0..{magenta.NUM_STYLES - 1} or a mix like 3:0.5,12:0.5",
)


def _check_builtin(v) -> str | None:
  if not isinstance(v, tuple) or not v:
    return "must be a non-empty tuple of (style, weight) pairs"
  for k, w in v:
    if not (isinstance(k, int) and 0 <= k < magenta.NUM_STYLES):
      return f"names style {k!r}; the built-in styles are 0..{magenta.NUM_STYLES - 1}"
    if _finite_nonneg(w):
      return f"gives style {k} weight {w!r}; weights must be finite non-negative numbers"
  if sum(w for _, w in v) <= 0:
    return "weights must not all be zero"
  return None


def _strength(v) -> str | None:
  ok = not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1
  return None if ok else "must be in [0, 1]"


@dataclasses.dataclass(frozen=True)
class FastSettings(Section):
  """Everything that defines a fast stylization (``jaxstyle fast``)."""

  size: int | None = setting(
    512,
    "longest side of the output in px (none: the content's own size)",
    codec=_optional(INT),
    check=_optional_check(_int_at_least(5)),
  )
  style_size: int = setting(
    magenta.STYLE_SIZE,
    "side the style image is resized to for the style predictor (its training size: 256)",
    codec=INT,
    check=_int_at_least(5),
  )
  strength: float = setting(
    1.0,
    "0 keeps the content's own style vector, 1 takes the style's (Magenta's interpolation)",
    codec=FLOAT,
    check=_strength,
  )
  style_blend: tuple[float, ...] | None = setting(
    None,
    "weights of several style images' vectors (none: equal)",
    codec=_optional(_tuple(float, repr, "W,...")),
    check=_optional_check(_tuple_of(_finite_nonneg)),
  )
  builtin: tuple[tuple[int, float], ...] | None = setting(
    None,
    "use the 26-style network: one style N, or a mix N:W,M:W (instead of STYLE images)",
    codec=_optional(BUILTIN),
    check=_optional_check(_check_builtin),
  )
  preserve_color: str = setting(
    "none",
    "keep the content's colours: the result's luminance on the content's chroma, or the style recoloured first",
    codec=_choices(COLOR_MODES),
  )
  mask: str | None = setting(
    None, "mask image: white stylizes, black keeps the content", codec=_optional(Codec(str, str, "MASK"))
  )
  batch: int = setting(8, "images (or styles) per compiled call", codec=INT, check=_int_at_least(1))
  tile: int | str | None = setting(
    None,
    "run the network tile by tile (exact: every instance norm uses the whole image's statistics; memory bounded "
    "by the tile, about K/2 + 1 network passes for K norms): a tile side in px, auto (only when the whole image "
    "does not fit in free memory) or none",
    codec=TILE,
    check=_tile_check,
  )

  def _check(self) -> None:
    if self.style_blend is not None and sum(self.style_blend) <= 0:
      raise InputError("style_blend weights must not all be zero")


@dataclasses.dataclass(frozen=True)
class Networks:
  """The fast networks a stylization may use (params trees; any may be ``None`` when not needed).

  Attributes:
    predictor: :class:`~jaxstyle.magenta.StylePredictor` params (style images to vectors).
    transformer: :class:`~jaxstyle.magenta.Transformer` params.
    multistyle: :class:`~jaxstyle.magenta.MultiStyle26` params (``builtin``).
    vector: a fixed ``(100,)`` style vector (a trained single-style model); then no style image is needed.
    predictor_model: the predictor's shape (default the real :class:`~jaxstyle.magenta.StylePredictor`).
  """

  predictor: Mapping | None = None
  transformer: Mapping | None = None
  multistyle: Mapping | None = None
  vector: ArrayLike | None = None
  predictor_model: magenta.StylePredictor | None = None


def builtin_weights(builtin: Sequence[tuple[int, float]]) -> np.ndarray:
  """``(26,)`` weights of a built-in style mix, normalised to sum to 1."""
  w = np.zeros(magenta.NUM_STYLES, np.float32)
  for k, v in builtin:
    w[k] += v
  return w / w.sum()


def style_vector(
  predictor: Mapping,
  styles: Sequence[ArrayLike],
  settings: FastSettings,
  *,
  model: magenta.StylePredictor | None = None,
) -> jax.Array:
  """The blended style vector of style images: ``sum_k w_k * predict(style_k)``.

  Args:
    predictor: :class:`~jaxstyle.magenta.StylePredictor` params.
    styles: ``(H_k, W_k, 3)`` RGB images in [0, 1].
    settings: ``style_blend`` (default equal) and ``style_size``.
    model: the predictor's shape (default the real network).

  Returns:
    ``(100,)``.
  """
  if not styles:
    raise InputError("at least one style image is needed")
  blend = settings.style_blend or (1.0,) * len(styles)
  if len(blend) != len(styles):
    raise InputError(f"style_blend has {len(blend)} weights for {len(styles)} style images")
  size = settings.style_size
  vectors = jnp.stack([magenta.predict_style(predictor, s, style_size=size, model=model) for s in styles])
  w = jnp.asarray(blend, jnp.float32) / sum(blend)
  return jnp.tensordot(w, vectors, axes=1)


def _network(networks: Networks, settings: FastSettings) -> Callable[[jax.Array, jax.Array], jax.Array]:
  if settings.builtin is not None:
    if networks.multistyle is None:
      raise InputError("the 26-style network is needed for builtin styles")
    return lambda x, c: fast_tiled.stylize(networks.multistyle, x, magenta.normalize_weights(c), tile=settings.tile)
  if networks.transformer is None:
    raise InputError("the arbitrary-style transformer is needed")
  return lambda x, c: fast_tiled.stylize(networks.transformer, x, c, tile=settings.tile)


def condition(
  networks: Networks,
  content: ArrayLike,
  styles: Sequence[ArrayLike],
  settings: FastSettings,
) -> jax.Array:
  """What conditions the network for one content image: a ``(26,)`` weighting (``builtin``) or a
  ``(100,)`` style vector, interpolated toward the content's own vector by ``strength``."""
  if settings.builtin is not None:
    return jnp.asarray(builtin_weights(settings.builtin))
  if networks.vector is not None:
    target = jnp.asarray(networks.vector, jnp.float32)
  else:
    if networks.predictor is None:
      raise InputError("the style predictor is needed for style images")
    target = style_vector(networks.predictor, styles, settings, model=networks.predictor_model)
  if settings.strength == 1.0:
    return target
  if networks.predictor is None:
    raise InputError("strength below 1 needs the style predictor (the content's own vector)")
  own = magenta.predict_style(
    networks.predictor, content, style_size=settings.style_size, model=networks.predictor_model
  )
  return magenta.interpolate(own, target, settings.strength)


def stylize_fast(
  contents: Sequence[ArrayLike],
  styles: Sequence[ArrayLike],
  settings: FastSettings,
  networks: Networks,
  *,
  mask: ArrayLike | None = None,
  callback: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
  """Stylizes content images in one forward pass each, batched by shape.

  Args:
    contents: ``(H_i, W_i, 3)`` RGB in [0, 1]; each is resized to longest side ``settings.size``.
    styles: ``(H', W', 3)`` style images (ignored with ``builtin`` or a trained vector).
    settings: :class:`FastSettings`.
    networks: :class:`Networks`.
    mask: ``(H, W[, 1])`` in [0, 1] (1 stylizes, 0 keeps the content), resized to each content.
    callback: ``callback(done, total)`` after each compiled call.

  Returns:
    one ``(H_i', W_i', 3)`` float32 image in [0, 1] per content image.
  """
  if settings.preserve_color == "histogram" and styles:
    ref = np.concatenate([np.reshape(c, (-1, 3)) for c in contents])[None]
    styles = [color.match_histogram(np.asarray(s), ref) for s in styles]
  sized = [_resize(np.asarray(c, np.float32), settings.size) for c in contents]
  for c in sized:
    if min(c.shape[:2]) < magenta.MIN_SIDE:
      raise InputError(f"a content image of {c.shape[1]}x{c.shape[0]} px is too small (at least 5 px a side)")
  same = settings.strength == 1.0 or settings.builtin is not None
  shared = condition(networks, sized[0], styles, settings) if same else None
  conds = [shared if same else condition(networks, c, styles, settings) for c in sized]
  net = _network(networks, settings)
  out: list[np.ndarray | None] = [None] * len(sized)
  groups: dict[tuple, list[int]] = {}
  for i, c in enumerate(sized):
    groups.setdefault(c.shape, []).append(i)
  done, total = 0, len(sized)
  for idx in groups.values():
    for start in range(0, len(idx), settings.batch):
      part = idx[start : start + settings.batch]
      pad = part + [part[-1]] * (settings.batch - len(part)) if len(idx) > settings.batch else part
      x = jnp.stack([sized[i] for i in pad])
      y = np.asarray(net(x, jnp.stack([conds[i] for i in pad])))
      for j, i in enumerate(part):
        out[i] = _finish(y[j], sized[i], settings, mask)
      done += len(part)
      if callback is not None:
        callback(done, total)
  return out


def stylize_variants(content: ArrayLike, conds: ArrayLike, settings: FastSettings, networks: Networks) -> np.ndarray:
  """One content image under many conditions (style vectors or built-in weightings) in one compiled call.

  Args:
    content: ``(H, W, 3)`` RGB in [0, 1], resized to ``settings.size``.
    conds: ``(N, 100)`` style vectors, or ``(N, 26)`` weightings with ``builtin`` set.
    settings: :class:`FastSettings`.
    networks: :class:`Networks`.

  Returns:
    ``(N, H', W', 3)`` float32.
  """
  x = _resize(np.asarray(content, np.float32), settings.size)
  y = _network(networks, settings)(jnp.asarray(x)[None], jnp.asarray(conds, jnp.float32))
  return np.stack([_finish(np.asarray(im), x, settings, None) for im in y])


def _resize(image: np.ndarray, size: int | None) -> np.ndarray:
  return image if size is None else imageio.resize(image, size)


def _finish(image: np.ndarray, content: np.ndarray, settings: FastSettings, mask: ArrayLike | None) -> np.ndarray:
  image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
  if settings.preserve_color == "luminance":
    image = color.recombine(image, content)
  if mask is not None:
    from jaxstyle.problem import as_mask

    m = imageio.resize(as_mask(mask), content.shape[:2])
    image = m * image + (1.0 - m) * content
  return image.astype(np.float32)


def initial_image(
  content: ArrayLike, styles: Sequence[ArrayLike], *, blend: Sequence[float] | None = None
) -> np.ndarray:
  """The arbitrary network's rendering of ``content`` (at its own size) for ``stylize --init fast``,
  with the default fast weights (:func:`jaxstyle.magenta_weights.load_arbitrary`)."""
  from jaxstyle import magenta_weights

  predictor, transformer = magenta_weights.load_arbitrary()
  settings = FastSettings(size=None, style_blend=None if blend is None else tuple(blend))
  return stylize_fast([content], styles, settings, Networks(predictor, transformer))[0]
