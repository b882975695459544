"""Images in and out: any Pillow-readable file to float RGB, resizing, masks, folders, atomic writes, sheets.

Arrays here are NumPy ``(H, W, 3)`` float32 RGB in [0, 1], channels last (masks ``(H, W, 1)``).
Errors are :class:`ImageError` with a one-line message that names the file.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from jax.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont, ImageOps

from jaxstyle.errors import FileError, InputError, one_line
from jaxstyle.io.files import atomic_path, check_writable

# Pillow's own default (about 179 MP); larger files are refused as decompression bombs.
MAX_PIXELS = 178_956_970


# What a folder of images is scanned for, and what can be written.
READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


class ImageError(FileError):
  """A file cannot be read or written as an image; the message is one line."""


def load_image(path: str | os.PathLike, *, size: int | None = None) -> np.ndarray:
  """Reads an image as RGB float32 in [0, 1].

  EXIF orientation is applied; transparent pixels are composited onto white;
  grayscale, palette, CMYK and 16-bit images are converted.

  Args:
    path: any file Pillow can read.
    size: if given, resize so that the longest side is ``size`` pixels.

  Returns:
    ``(H, W, 3)`` float32.

  Raises:
    ImageError: missing, unreadable, truncated, empty or oversized file.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ImageError(f"{path}: no such file")
  if os.path.isdir(path):
    raise ImageError(f"{path}: is a directory, not an image")
  if os.path.getsize(path) == 0:
    raise ImageError(f"{path}: empty file")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      with Image.open(path) as im:
        if im.width * im.height > MAX_PIXELS:
          raise ImageError(f"{path}: {im.width}x{im.height} is too large (over {MAX_PIXELS} pixels)")
        im.load()
        im = ImageOps.exif_transpose(im)
        arr = _to_rgb_float(im)
  except ImageError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning):
    raise ImageError(f"{path}: too many pixels (possible decompression bomb)") from None
  except Image.UnidentifiedImageError:
    raise ImageError(f"{path}: not an image Pillow can read") from None
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path}: cannot read image ({one_line(e)})") from None
  if min(arr.shape[:2]) < 1:
    raise ImageError(f"{path}: image has no pixels")
  return resize(arr, size) if size is not None else arr


def as_image(x: ArrayLike | str | os.PathLike, what: str = "an image") -> np.ndarray:
  """A path (read with :func:`load_image`) or an ``(H, W, 3)`` array, as float32 RGB.

  Raises:
    InputError: an array of another shape (``what`` names it in the message).
  """
  if isinstance(x, (str, os.PathLike)):
    return load_image(x)
  arr = np.asarray(x, np.float32)
  if arr.ndim != 3 or arr.shape[-1] != 3:
    raise InputError(f"{what} must be (H, W, 3), got shape {arr.shape}")
  return arr


def as_mask(mask: ArrayLike | str | os.PathLike) -> np.ndarray:
  """A path or array to an ``(H, W, 1)`` float mask in [0, 1] (1 = stylize); colour images are averaged."""
  m = load_image(mask) if isinstance(mask, (str, os.PathLike)) else np.asarray(mask, np.float32)
  if m.ndim == 2:
    m = m[..., None]
  if m.ndim != 3 or m.shape[-1] not in (1, 3):
    raise InputError(f"a mask must be (H, W), (H, W, 1) or (H, W, 3), got shape {m.shape}")
  return np.clip(m.mean(axis=-1, keepdims=True), 0.0, 1.0).astype(np.float32)


def list_images(folder: str | os.PathLike) -> list[Path]:
  """The image files of a folder (:data:`READ_SUFFIXES`, not its subfolders), sorted by name.

  Raises:
    ImageError: not a folder, or no images in it.
  """
  folder = Path(folder)
  if not folder.is_dir():
    raise ImageError(f"{folder}: not a folder of images")
  paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
  if not paths:
    raise ImageError(f"{folder}: no images there (looked for {', '.join(READ_SUFFIXES)})")
  return paths


def _to_rgb_float(im: Image.Image) -> np.ndarray:
  if im.mode in ("I;16", "I;16B", "I;16L", "I"):
    a = np.asarray(im, np.float64)
    a = a / (65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0)
    return np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=-1).astype(np.float32)
  if im.mode == "F":
    a = np.clip(np.asarray(im, np.float32), 0, 1)
    return np.repeat(a[..., None], 3, axis=-1)
  has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
  if has_alpha:
    rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    im = Image.alpha_composite(white, rgba)
  return np.asarray(im.convert("RGB"), np.float32) / 255.0


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
  """Resizes ``(H, W, 3)`` float RGB with Lanczos filtering.

  Args:
    image: ``(H, W, C)``.
    size: the longest side in pixels, or an explicit ``(height, width)``.

  Returns:
    ``(H', W', C)`` float32 clipped to [0, 1].
  """
  h, w = image.shape[:2]
  if isinstance(size, tuple):
    nh, nw = size
  else:
    if size < 1:
      raise InputError(f"size must be positive, not {size}")
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
  if (nh, nw) == (h, w):
    return np.asarray(image, np.float32)
  chans = [
    np.asarray(Image.fromarray(np.ascontiguousarray(image[..., k], np.float32), "F").resize((nw, nh), Image.LANCZOS))
    for k in range(image.shape[-1])
  ]
  return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """``(H, W, 3)`` float in [0, 1] (clipped) to uint8."""
  return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def check_output(path: str | os.PathLike) -> None:
  """Raises :class:`ImageError` unless ``path`` names a writable image file (:data:`SAVE_FORMATS`)."""
  try:
    check_writable(path, suffixes=SAVE_FORMATS)
  except FileError as e:
    raise ImageError(str(e)) from None


def read_icc_profile(path: str | os.PathLike) -> bytes | None:
  """The embedded ICC colour profile of an image file, if any."""
  try:
    with Image.open(path) as im:
      return im.info.get("icc_profile") or None
  except (OSError, ValueError, SyntaxError):
    return None


def _png16(image: np.ndarray, icc_profile: bytes | None) -> bytes:
  """A 16-bit RGB PNG (Pillow writes 16-bit grayscale only)."""
  a = np.round(np.clip(np.asarray(image, np.float64), 0.0, 1.0) * 65535.0).astype(">u2")
  h, w = a.shape[:2]
  rows = np.concatenate([np.zeros((h, 1), np.uint8), a.reshape(h, -1).view(np.uint8)], axis=1)

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

  out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
  if icc_profile:
    out += chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc_profile))
  return out + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b"")


def save_image(
  path: str | os.PathLike, image: np.ndarray, *, bit_depth: int = 8, icc_profile: bytes | None = None
) -> None:
  """Writes ``(H, W, 3)`` float RGB in [0, 1] atomically; the format follows the suffix.

  Args:
    path: ``.png``, ``.jpg``/``.jpeg``, ``.webp`` or ``.tif``/``.tiff``.
    image: ``(H, W, 3)`` float RGB.
    bit_depth: 8, or 16 (PNG only).
    icc_profile: an ICC colour profile to embed (e.g. the content image's).
  """
  check_output(path)
  fmt = SAVE_FORMATS[os.path.splitext(os.fspath(path))[1].lower()]
  if bit_depth not in (8, 16) or (bit_depth == 16 and fmt != "PNG"):
    raise ImageError(f"{path}: {bit_depth}-bit output is supported for PNG only (8 or 16 bits)")
  with atomic_path(path) as tmp:
    if bit_depth == 16:
      with open(tmp, "wb") as f:
        f.write(_png16(image, icc_profile))
      return
    im = Image.fromarray(to_uint8(image), "RGB")
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if icc_profile:
      kwargs["icc_profile"] = icc_profile
    im.save(tmp, format=fmt, **kwargs)


def contact_sheet(
  images: Sequence[np.ndarray],
  labels: Sequence[str] | None = None,
  *,
  columns: int | None = None,
  height: int = 256,
  pad: int = 8,
) -> np.ndarray:
  """Lays images out on a white grid, each scaled to ``height`` px, with a label under it.

  Args:
    images: ``(H, W, 3)`` float RGB arrays.
    labels: one caption per image, or ``None``.
    columns: images per row; all in one row by default.
    height: cell image height in pixels.
    pad: margin in pixels.

  Returns:
    ``(H, W, 3)`` float32.
  """
  columns = columns or len(images)
  cells = [resize(im, (height, max(1, round(im.shape[1] * height / im.shape[0])))) for im in images]
  col_w = [max(c.shape[1] for c in cells[j::columns]) for j in range(min(columns, len(cells)))]
  label_h = 18 if labels else 0
  rows = (len(cells) + columns - 1) // columns
  sheet = Image.new("RGB", (pad + sum(w + pad for w in col_w), pad + rows * (height + label_h + pad)), "white")
  draw = ImageDraw.Draw(sheet)
  font = ImageFont.load_default()
  for k, cell in enumerate(cells):
    x = pad + sum(w + pad for w in col_w[: k % columns])
    y = pad + (k // columns) * (height + label_h + pad)
    sheet.paste(Image.fromarray(to_uint8(cell)), (x, y))
    if labels:
      draw.text((x, y + height + 3), labels[k], fill=(0, 0, 0), font=font)
  return np.asarray(sheet, np.float32) / 255.0
