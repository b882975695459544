"""Uploads: the page's image boxes hand over the uploaded file untouched, and it is read with the CLI's checks
(:func:`jaxstyle.io.images.load_image`: images only, size and decompression-bomb limits), so a bad upload is one
line in the page and the server stays up."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import gradio as gr
import numpy as np

from jaxstyle.errors import JaxstyleError, one_line
from jaxstyle.io import images

# The largest upload the server accepts (Gradio refuses bigger ones before they are written); the pixel limit is
# images.MAX_PIXELS, checked when the file is read.
MAX_FILE_SIZE = "200mb"


def Upload(label: str, **kw) -> gr.Image:  # noqa: N802 - used as a component
  """An image box whose upload reaches the app as the file's path, unread: Gradio's own preprocessing would open
  it with Pillow first, so a file that is not an image would fail there without a message of ours. (An instance
  attribute, not a subclass: Gradio writes a stub file beside every module that defines a component class.)"""
  box = gr.Image(label=label, type="filepath", sources=["upload"], **kw)
  box.preprocess = _path
  return box


def _path(payload) -> str | None:
  return None if payload is None else str(payload.path)


def fail(e: BaseException) -> gr.Error:
  """A user error as the page's message (one line)."""
  return gr.Error(one_line(e), print_exception=False)


def read(path: str | None, what: str, *, required: bool = True) -> np.ndarray | None:
  """The uploaded image ``path`` as ``(H, W, 3)`` float32 RGB in [0, 1] (``None`` when nothing was uploaded and
  ``required`` is false).

  Raises:
    gr.Error: nothing uploaded where required, or a file the CLI would refuse (its message, naming ``what``).
  """
  if not path:
    if required:
      raise gr.Error(f"upload {what}", print_exception=False)
    return None
  try:
    return images.load_image(path)
  except JaxstyleError as e:
    raise gr.Error(f"{what}: {one_line(e).replace(str(path) + ': ', '')}", print_exception=False) from None


def keep(path: str, folder: Path, stem: str, *, default_suffix: str = ".png") -> str:
  """Copies an upload into a job's folder byte for byte (so the job's command reads the very pixels the app
  read), keeping its suffix (``default_suffix`` where it has none); returns the copy's path."""
  suffix = Path(path).suffix.lower() or default_suffix
  dest = folder / f"{stem}{suffix}"
  shutil.copyfile(path, dest)
  return os.fspath(dest)


def drawn_mask(value, shape: tuple[int, ...]) -> np.ndarray | None:
  """The mask drawn in the page's sketch box (a ``gr.ImageEditor`` value, numpy): 1 where any stroke was drawn,
  0 elsewhere, as ``(H, W, 3)`` float32 at ``shape``'s size; ``None`` when nothing was drawn."""
  layers = [np.asarray(layer) for layer in (value or {}).get("layers") or [] if layer is not None]
  drawn = [layer[..., 3] > 0 for layer in layers if layer.ndim == 3 and layer.shape[-1] == 4]
  if not drawn or not any(d.any() for d in drawn):
    return None
  mask = np.any(np.stack([d for d in drawn if d.shape == drawn[0].shape]), axis=0).astype(np.float32)
  mask = np.repeat(mask[..., None], 3, axis=-1)
  return images.resize(mask, tuple(shape[:2])) if mask.shape[:2] != tuple(shape[:2]) else mask
