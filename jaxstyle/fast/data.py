"""Training data of a fast network: photographs read and downscaled once, random crops drawn per step.

Each step draws ``batch`` square crops of ``size`` px from the content photographs, each first scaled so that
its short side is uniform in [``size``, ``max_scale * size``] (never upscaled), and mirrored half the time.
The draws come from a NumPy generator seeded by ``(seed, step)``, so a resumed run sees the same crops as an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np
from jax.typing import ArrayLike

from jaxstyle.errors import InputError
from jaxstyle.io import images as imageio
from jaxstyle.settings.train import TrainSettings


def load_images(folder: str | os.PathLike, *, min_side: int | None = None) -> list[np.ndarray]:
  """Every image file of a folder (:func:`jaxstyle.io.images.list_images`), sorted by name.

  Args:
    folder: a directory of photographs.
    min_side: refuse images whose short side is smaller than this.

  Returns:
    a list of ``(H, W, 3)`` float32 RGB in [0, 1].

  Raises:
    InputError: not a folder, no images in it, an unreadable or too small image (one line).
  """
  out = []
  for p in imageio.list_images(folder):
    im = imageio.load_image(p)
    if min_side is not None and min(im.shape[:2]) < min_side:
      raise InputError(f"{p}: {im.shape[1]}x{im.shape[0]} px is smaller than the {min_side} px crop")
    out.append(im)
  return out


def as_images(images: Sequence[ArrayLike], what: str) -> list[np.ndarray]:
  """Arrays checked to be ``(H, W, 3)`` images (at least one), as float32."""
  out = [imageio.as_image(im, f"{what} {i}") for i, im in enumerate(images)]
  if not out:
    raise InputError(f"no {what}s given")
  return out


def prepare_photos(photos: Sequence[ArrayLike], settings: TrainSettings) -> list[np.ndarray]:
  """Content photographs checked and downscaled once so that the short side is at most
  ``round(max_scale * size)`` (crops never need more); ``(H, W, 3)`` float32 each."""
  photos = as_images(photos, "content image")
  cap = max(settings.size, round(settings.max_scale * settings.size))
  out = []
  for i, im in enumerate(photos):
    h, w = im.shape[:2]
    if min(h, w) < settings.size:
      raise InputError(f"content image {i} is {w}x{h} px, smaller than the {settings.size} px crop")
    if min(h, w) > cap:
      s = cap / min(h, w)
      im = imageio.resize(im, (max(cap, round(h * s)), max(cap, round(w * s))))
    out.append(im)
  return out


def sample_crops(photos: Sequence[np.ndarray], step: int, settings: TrainSettings) -> np.ndarray:
  """The crops of one step, a pure function of ``(settings.seed, step)``.

  Args:
    photos: from :func:`prepare_photos`.
    step: the step number (0-based).
    settings: ``batch``, ``size``, ``max_scale``, ``flip``, ``seed``.

  Returns:
    ``(batch, size, size, 3)`` float32.
  """
  rng = np.random.default_rng([settings.seed, step])
  size = settings.size
  out = np.empty((settings.batch, size, size, 3), np.float32)
  for b in range(settings.batch):
    # Every draw is made whatever the settings, so that each crop's randomness is fixed by (seed, step, b).
    i, u, fy, fx, flip = rng.integers(len(photos)), rng.random(), rng.random(), rng.random(), rng.random()
    im = photos[i]
    h, w = im.shape[:2]
    short = min(h, w)
    top_short = min(short, round(settings.max_scale * size))
    target = size + u * (top_short - size)  # the short side after scaling
    side = min(short, max(size, round(size * short / target)))  # the crop's side before scaling
    y, x = round(fy * (h - side)), round(fx * (w - side))
    crop = im[y : y + side, x : x + side]
    if side != size:
      crop = imageio.resize(crop, (size, size))
    if settings.flip and flip < 0.5:
      crop = crop[:, ::-1]
    out[b] = crop
  return out


def eval_images(images: Sequence[ArrayLike], size: int) -> list[np.ndarray]:
  """Held-out images resized so that their long side is ``size`` (how evaluation sees them)."""
  return [imageio.resize(im, size) for im in as_images(images, "evaluation image")]


def fingerprint(images: Sequence[np.ndarray]) -> str:
  """A short digest of images' shapes and pixels (a checkpoint records its training data's)."""
  h = hashlib.sha256()
  for im in images:
    a = np.ascontiguousarray(im, np.float32)
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]
