"""Setting a stylization up: images to the right size and colour space, targets,
an optional mask, and the starting image."""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxstyle import images as imageio
from jaxstyle import vgg
from jaxstyle.config import StyleConfig
from jaxstyle.objective import Targets, compute_targets, style_blend_weights


def as_image(x: ArrayLike | str | os.PathLike) -> np.ndarray:
  """A path or an ``(H, W, 3)`` array to float32 RGB."""
  if isinstance(x, (str, os.PathLike)):
    return imageio.load_image(x)
  arr = np.asarray(x, np.float32)
  if arr.ndim != 3 or arr.shape[-1] != 3:
    raise ValueError(f"an image must be (H, W, 3), got shape {arr.shape}")
  return arr


def prepare_images(content, style, config: StyleConfig) -> tuple[np.ndarray, list[np.ndarray]]:
  """Loads and resizes content (longest side ``config.size``) and each style image
  (longest side ``style_scale`` times the content's), and checks they reach the deepest
  layer. ``style`` is one image or a list; a list is returned."""
  content = as_image(content)
  if config.size is not None:
    content = imageio.resize(content, config.size)
  side = max(1, round(max(content.shape[:2]) * config.style_scale))
  styles = [imageio.resize(as_image(s), side) for s in (style if isinstance(style, (list, tuple)) else [style])]
  if not styles:
    raise ValueError("at least one style image is needed")
  style_blend_weights(config, len(styles))
  need = max(vgg.layer_stride(n) for n in config.layers)
  for what, im in [("content", content)] + [("style", s) for s in styles]:
    if min(im.shape[:2]) < need:
      raise ValueError(
        f"{what} image is {im.shape[1]}x{im.shape[0]} px, too small for layer "
        f"{max(config.layers, key=vgg.layer_depth)} (needs at least {need} px per side)"
      )
  return content, styles


def initial_image(content: np.ndarray, config: StyleConfig, style: list[np.ndarray] | None = None) -> np.ndarray:
  """The starting image: the content, seeded uniform noise, flat gray, seeded noise with
  the style images' colour statistics, or a file."""
  if config.init == "content":
    return content.copy()
  if config.init == "noise":
    key = jax.random.key(config.seed)
    return np.asarray(jax.random.uniform(key, content.shape, jnp.float32))
  if config.init == "gray":
    return np.full(content.shape, 0.5, np.float32)
  if config.init == "style":
    if style is None:
      raise ValueError("init 'style' needs the style image")
    ref = np.concatenate([np.reshape(s, (-1, 3)) for s in style])
    noise = np.asarray(jax.random.normal(jax.random.key(config.seed), content.shape, jnp.float32))
    return np.clip(ref.mean(0) + noise * ref.std(0), 0.0, 1.0).astype(np.float32)
  return imageio.resize(imageio.load_image(config.init), content.shape[:2])


class Problem(NamedTuple):
  """One scale of a stylization, ready to optimize."""

  content: np.ndarray  # (H, W, 3) the content at this scale, in the working colour space
  styles: list[np.ndarray]
  targets: Targets
  start: np.ndarray  # (H, W, 3) the starting variable


def as_mask(mask: ArrayLike | str | os.PathLike) -> np.ndarray:
  """A path or array to an ``(H, W, 1)`` float mask in [0, 1] (1 = stylize)."""
  m = imageio.load_image(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask, np.float32)
  if m.ndim == 2:
    m = m[..., None]
  if m.ndim != 3 or m.shape[-1] not in (1, 3):
    raise ValueError(f"a mask must be (H, W), (H, W, 1) or (H, W, 3), got shape {m.shape}")
  return np.clip(m.mean(axis=-1, keepdims=True), 0.0, 1.0).astype(np.float32)


def _fit(mask, shape: tuple[int, int]) -> np.ndarray:
  """A mask (array or path) resized to ``shape``: ``(H, W, 1)``."""
  return imageio.resize(as_mask(mask), shape)


def color_inputs(content: np.ndarray, styles: list[np.ndarray], config: StyleConfig):
  """Content and styles in the working colour space of ``config.preserve_color``."""
  from jaxstyle import color

  if config.preserve_color == "histogram":
    return content, [color.match_histogram(st, content) for st in styles]
  if config.preserve_color == "luminance":
    return color.luminance_image(content), [color.luminance_image(st, like=content) for st in styles]
  return content, styles


def finish(image: ArrayLike, content: np.ndarray, config: StyleConfig) -> np.ndarray:
  """The output image: with ``preserve_color="luminance"`` the result's luminance on the
  content's chroma (``content`` in RGB, resized to the image)."""
  from jaxstyle import color

  image = np.asarray(image, np.float32)
  if config.preserve_color == "luminance":
    return color.recombine(image, imageio.resize(content, image.shape[:2]))
  return image


def setup_problem(params, content, style, config: StyleConfig, *, mask=None, regions=None, start=None) -> Problem:
  """Resizes, recolours and computes targets for one scale (``config.size``).

  Args:
    params: VGG19 params.
    content: ``(H, W, 3)`` RGB (any size) or a path.
    style: one style image or path, or a list of them.
    config: settings of this scale.
    mask: optional ``(H, W[, 1])`` mask or path; 1 = stylize, 0 = keep the content.
    regions: optional list of one region map (array or path, content coordinates) per
      style image: style ``k`` is matched inside region ``k`` only (guided Grams).
    start: optional image to start from (resized to this scale), e.g. the previous scale's result.
  """
  content, styles = prepare_images(content, style, config)
  work, styles = color_inputs(content, styles, config)
  targets = compute_targets(params, work, styles, config, per_style=regions is not None)
  if regions is not None:
    if len(regions) != len(styles):
      raise ValueError(f"{len(regions)} region maps for {len(styles)} style images; give one per style")
    maps = [_fit(r, work.shape[:2])[..., 0] for r in regions]
    targets = targets._replace(regions=jnp.asarray(np.stack(maps)))
  if mask is not None:
    targets = targets._replace(mask=jnp.asarray(_fit(mask, work.shape[:2])), anchor=jnp.asarray(work))
  if start is not None:
    x0 = imageio.resize(np.asarray(start, np.float32), work.shape[:2])
    if config.preserve_color == "luminance":
      x0 = color_inputs(x0, [], config)[0]
  else:
    x0 = initial_image(work, config, styles)
  return Problem(work, styles, targets, x0)
