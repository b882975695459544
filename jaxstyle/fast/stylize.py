"""Fast (feed-forward) stylization: Magenta's networks in one forward pass, from arrays and settings.

:func:`stylize_fast` renders content images with any style (the arbitrary-style predictor and
transformer of Ghiasi et al. 2017), a blend of styles, a trained single-style network
(:mod:`jaxstyle.fast.train`), or a weighting of the 26 built-in styles (Dumoulin et al. 2017), with
Magenta's strength interpolation, colour preservation and a mask. Images of one shape go
through the network together, so a folder of photographs or a batch of style vectors costs one
compiled call per shape. The networks are :mod:`jaxstyle.nets.magenta`; their weights come from
:mod:`jaxstyle.io.magenta_weights`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.fast import tiled
from jaxstyle.io import color, magenta_weights
from jaxstyle.io import images as imageio
from jaxstyle.nets import magenta
from jaxstyle.settings.fast import FastSettings


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
    return lambda x, c: tiled.stylize(networks.multistyle, x, magenta.normalize_weights(c), tile=settings.tile)
  if networks.transformer is None:
    raise InputError("the arbitrary-style transformer is needed")
  return lambda x, c: tiled.stylize(networks.transformer, x, c, tile=settings.tile)


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


def render(
  contents: ArrayLike, cond: ArrayLike, settings: FastSettings, networks: Networks, *, mask: ArrayLike | None = None
) -> np.ndarray:
  """Images of one shape under one condition, already at their size (a batch of video frames).

  Args:
    contents: ``(N, H, W, 3)`` RGB in [0, 1].
    cond: what :func:`condition` returns: ``(100,)`` or ``(26,)``.
    settings: :class:`FastSettings` (``size`` is not applied).
    networks: :class:`Networks`.
    mask: ``(H, W[, 1])`` in [0, 1].

  Returns:
    ``(N, H, W, 3)`` float32 in [0, 1], finished as :func:`stylize_fast`'s (colour, mask).
  """
  x = jnp.asarray(contents, jnp.float32)
  c = jnp.asarray(cond, jnp.float32)
  y = np.asarray(_network(networks, settings)(x, jnp.broadcast_to(c, (x.shape[0], *c.shape))))
  return np.stack([_finish(y[i], np.asarray(x[i]), settings, mask) for i in range(x.shape[0])])


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
    m = imageio.resize(imageio.as_mask(mask), content.shape[:2])
    image = m * image + (1.0 - m) * content
  return image.astype(np.float32)


def initial_image(
  content: ArrayLike, styles: Sequence[ArrayLike], *, blend: Sequence[float] | None = None
) -> np.ndarray:
  """The arbitrary network's rendering of ``content`` (at its own size) for ``stylize --init fast``,
  with the default fast weights (:func:`jaxstyle.io.magenta_weights.load_arbitrary`)."""
  predictor, transformer = magenta_weights.load_arbitrary()
  settings = FastSettings(size=None, style_blend=None if blend is None else tuple(blend))
  return stylize_fast([content], styles, settings, Networks(predictor, transformer))[0]
