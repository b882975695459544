"""Setting a stylization up: images to the right size and colour space, targets,
an optional mask, and the starting image."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.io import color
from jaxstyle.io import images as imageio
from jaxstyle.nets import vgg
from jaxstyle.objective.targets import Targets, Temporal, compute_targets, style_blend_weights
from jaxstyle.settings.style import StyleConfig


def scaled_shape(shape: tuple[int, ...], size: int | None) -> tuple[int, int]:
  """``(H, W)`` of an image of ``shape`` resized to longest side ``size`` (as :func:`jaxstyle.images.resize`)."""
  h, w = shape[:2]
  if size is None:
    return h, w
  s = size / max(h, w)
  return max(1, round(h * s)), max(1, round(w * s))


def check_sizes(content_shape, style_shapes, config: StyleConfig) -> None:
  """Refuses, before any work, images that would be too small for the deepest layer at
  the run's first scale (the smallest)."""
  config = config.resolve()
  sizes = config.images.scales or (config.images.size,)
  content = scaled_shape(content_shape, sizes[0])
  side = max(1, round(max(content) * config.images.style_scale))
  need = max(vgg.layer_stride(n) for n in config.layers)
  shapes = [("content", content)] + [("style", scaled_shape(s, side)) for s in style_shapes]
  for what, (h, w) in shapes:
    if min(h, w) < need:
      raise InputError(
        f"{what} image is {w}x{h} px, too small for layer "
        f"{max(config.layers, key=vgg.layer_depth)} (needs at least {need} px per side)"
      )


def prepare_images(content, style, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
  """Resizes content (longest side ``config.images.size``) and each style image (longest
  side ``style_scale`` times the content's), and checks they reach the deepest layer.
  ``style`` is one image or a list; a list is returned."""
  content = imageio.as_image(content, "the content")
  styles = [imageio.as_image(s, "a style image") for s in (style if isinstance(style, (list, tuple)) else [style])]
  check_inputs(content, styles, config)
  if config.images.size is not None:
    content = imageio.resize(content, config.images.size)
  side = max(1, round(max(content.shape[:2]) * config.images.style_scale))
  return content, [imageio.resize(s, side) for s in styles]


def initial_image(
  content: np.ndarray,
  config: StyleConfig,
  style: list[np.ndarray] | None = None,
  *,
  init_image: ArrayLike | None = None,
) -> np.ndarray:
  """The starting image: the content, seeded uniform noise, flat gray, the mean pixel with
  faint seeded noise, seeded noise with the style images' colour statistics, or
  ``init_image`` (read from ``config.images.init`` when that names a file and no array is
  given), resized to the content."""
  init, seed = config.images.init, config.images.seed
  if init == "content":
    return content.copy()
  if init == "noise":
    return np.asarray(jax.random.uniform(jax.random.key(seed), content.shape, jnp.float32))
  if init == "gray":
    return np.full(content.shape, 0.5, np.float32)
  if init == "mean":  # neural-style's randn * 0.001 in 0-256 preprocessed units, around the mean pixel
    noise = np.asarray(jax.random.normal(jax.random.key(seed), content.shape, jnp.float32)) * (0.001 / 256)
    return (np.asarray(vgg.CAFFE_BGR_MEAN[::-1], np.float32) / 256 + noise).astype(np.float32)
  if init == "style":
    if style is None:
      raise InputError("init 'style' needs the style image")
    ref = np.concatenate([np.reshape(s, (-1, 3)) for s in style])
    noise = np.asarray(jax.random.normal(jax.random.key(seed), content.shape, jnp.float32))
    return np.clip(ref.mean(0) + noise * ref.std(0), 0.0, 1.0).astype(np.float32)
  if init_image is None:
    if init == "fast":
      raise InputError("init 'fast' needs the fast network's output (init_image)")
    init_image = imageio.load_image(init)
  return imageio.resize(imageio.as_image(init_image, "the start image"), content.shape[:2])


class Problem(NamedTuple):
  """One scale of a stylization, ready to optimize."""

  content: np.ndarray  # (H, W, 3) the content at this scale, in the working colour space
  styles: list[np.ndarray]
  targets: Targets
  start: np.ndarray  # (H, W, 3) the starting variable


def _fit(mask, shape: tuple[int, int]) -> np.ndarray:
  """A mask (array or path) resized to ``shape``: ``(H, W, 1)``."""
  return imageio.resize(imageio.as_mask(mask), shape)


def color_inputs(content: np.ndarray, styles: list[np.ndarray], config: StyleConfig):
  """Content and styles in the working colour space of ``config.preserve_color``."""
  if config.images.preserve_color == "histogram":
    return content, [color.match_histogram(st, content) for st in styles]
  if config.images.preserve_color == "luminance":
    return color.luminance_image(content), [color.luminance_image(st, like=content) for st in styles]
  return content, styles


def finish(image: ArrayLike, content: np.ndarray, config: StyleConfig) -> np.ndarray:
  """The output image: with ``preserve_color="luminance"`` the result's luminance on the
  content's chroma (``content`` in RGB, resized to the image)."""
  image = np.asarray(image, np.float32)
  if config.images.preserve_color == "luminance":
    return color.recombine(image, imageio.resize(content, image.shape[:2]))
  return image


def setup_problem(
  params, content, style, config: StyleConfig, *, mask=None, regions=None, start=None, init_image=None, temporal=None
) -> Problem:
  """Resizes, recolours and computes targets for one scale (``config.images.size``).

  Args:
    params: VGG19 params, prepared for the run's convolution algorithm.
    content: ``(H, W, 3)`` RGB (any size) or a path.
    style: one style image or path, or a list of them.
    config: settings of this scale.
    mask: optional ``(H, W[, 1])`` mask or path; 1 = stylize, 0 = keep the content.
    regions: optional list of one region map (array or path, content coordinates) per
      style image: style ``k`` is matched inside region ``k`` only (guided Grams).
    start: optional image to start from (resized to this scale), e.g. the previous scale's result.
    init_image: the starting image when ``config.images.init`` is a file or ``"fast"``.
    temporal: a video frame's :class:`~jaxstyle.objective.targets.Temporal` (RGB, any size): the objective
      gains Ruder et al.'s temporal term, and the frame starts from the warped previous output (unless
      ``start`` is given).
  """
  content, styles = prepare_images(content, style, config)
  work, styles = color_inputs(content, styles, config)
  targets = compute_targets(
    params,
    work,
    styles,
    config.form(),
    blend=config.images.style_blend,
    tile=config.network.tile,
    per_style=regions is not None,
  )
  if regions is not None:
    if len(regions) != len(styles):
      raise InputError(f"{len(regions)} region maps for {len(styles)} style images; give one per style")
    maps = [_fit(r, work.shape[:2])[..., 0] for r in regions]
    targets = targets._replace(regions=jnp.asarray(np.stack(maps)))
  if mask is not None:
    targets = targets._replace(mask=jnp.asarray(_fit(mask, work.shape[:2])), anchor=jnp.asarray(work))
  if temporal is not None:
    previous = _working(temporal.previous, work.shape[:2], config)
    weight = imageio.resize(np.asarray(temporal.weight, np.float32).reshape(*temporal.weight.shape[:2], 1),
                            work.shape[:2])  # fmt: skip
    targets = targets._replace(temporal=Temporal(jnp.asarray(previous), jnp.asarray(weight)))
    start = previous if start is None else start
  if start is not None:
    x0 = _working(start, work.shape[:2], config)
  else:
    x0 = initial_image(work, config, styles, init_image=init_image)
  return Problem(work, styles, targets, x0)


def _working(image, shape: tuple[int, int], config: StyleConfig) -> np.ndarray:
  """An RGB image (an earlier result) at ``shape`` in the run's working colour space."""
  x = imageio.resize(np.asarray(image, np.float32), shape)
  return color_inputs(x, [], config)[0] if config.images.preserve_color == "luminance" else x


def check_inputs(content, styles, config: StyleConfig, *, regions=None) -> None:
  """Checks a run's arrays against its settings before any work: one blend weight and
  one region map per style image, and every image large enough for the deepest layer."""
  if not styles:
    raise InputError("at least one style image is needed")
  style_blend_weights(config.images.style_blend, len(styles))
  if regions is not None and len(regions) != len(styles):
    raise InputError(f"{len(regions)} region maps for {len(styles)} style images; give one per style")
  check_sizes(np.shape(content), [np.shape(s) for s in styles], config)
