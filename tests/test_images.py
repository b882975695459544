"""Image I/O: every common file flavour to float RGB; clear errors; atomic writes."""

import io

import numpy as np
import pytest
from PIL import Image

from jaxstyle.io import images
from jaxstyle.io.images import ImageError


def save(tmp_path, name, im, **kw):
  p = tmp_path / name
  im.save(p, **kw)
  return p


def test_rgb_png_round_trip(tmp_path):
  arr = (np.random.default_rng(0).uniform(size=(5, 7, 3)) * 255).astype(np.uint8)
  p = save(tmp_path, "a.png", Image.fromarray(arr))
  got = images.load_image(p)
  assert got.dtype == np.float32 and got.shape == (5, 7, 3)
  np.testing.assert_allclose(got, arr / 255.0, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
  arr = np.zeros((4, 6, 3), np.uint8)
  arr[0, 0] = 255  # a white top-left pixel
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90 degrees clockwise to display
  p = save(tmp_path, "rot.jpg", Image.fromarray(arr), exif=exif, quality=100)
  got = images.load_image(p)
  assert got.shape == (6, 4, 3)
  assert got[0, -1].mean() > 0.5  # top-left moved to top-right


def test_alpha_is_composited_on_white(tmp_path):
  rgba = np.zeros((2, 2, 4), np.uint8)
  rgba[..., 0] = 255
  rgba[0, 0, 3] = 255  # opaque red; the rest transparent
  got = images.load_image(save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
  np.testing.assert_allclose(got[0, 0], [1, 0, 0], atol=1e-6)
  np.testing.assert_allclose(got[1, 1], [1, 1, 1], atol=1e-6)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "LA"])
def test_other_modes_become_rgb(tmp_path, mode):
  im = Image.new("RGB", (6, 4), (200, 100, 50)).convert(mode)
  ext = "jpg" if mode == "CMYK" else "png"
  got = images.load_image(save(tmp_path, f"m.{ext}", im))
  assert got.shape == (4, 6, 3) and got.dtype == np.float32
  assert 0.0 <= got.min() and got.max() <= 1.0


def test_16_bit_png(tmp_path):
  arr = np.array([[0, 32768, 65535]], np.uint16)
  im = Image.fromarray(arr)
  assert im.mode.startswith("I;16")
  got = images.load_image(save(tmp_path, "g16.png", im))
  np.testing.assert_allclose(got[0, :, 0], [0.0, 0.5, 1.0], atol=1e-3)


def test_webp(tmp_path):
  got = images.load_image(save(tmp_path, "a.webp", Image.new("RGB", (8, 8), (10, 200, 30)), lossless=True))
  np.testing.assert_allclose(got[0, 0], np.array([10, 200, 30]) / 255, atol=1e-6)


def test_resize_by_longest_side():
  x = np.random.default_rng(0).uniform(size=(30, 60, 3)).astype(np.float32)
  assert images.resize(x, 20).shape == (10, 20, 3)
  assert images.resize(x.transpose(1, 0, 2), 20).shape == (20, 10, 3)
  assert images.resize(x, (7, 9)).shape == (7, 9, 3)
  flat = np.full((8, 8, 3), 0.25, np.float32)
  np.testing.assert_allclose(images.resize(flat, 4), 0.25, atol=1e-5)


@pytest.mark.parametrize(
  "make,match",
  [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("definitely not an image"), "not an image"),
    (lambda p: p.mkdir(), "is a directory"),
  ],
)
def test_bad_files_get_one_line_errors(tmp_path, make, match):
  p = tmp_path / "x.png"
  make(p)
  with pytest.raises(ImageError, match=match) as e:
    images.load_image(p)
  assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_truncated_file(tmp_path):
  buf = io.BytesIO()
  Image.fromarray((np.random.default_rng(0).uniform(size=(64, 64, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
  p = tmp_path / "t.png"
  p.write_bytes(buf.getvalue()[:300])
  with pytest.raises(ImageError, match="cannot read image"):
    images.load_image(p)


def test_decompression_bomb(tmp_path, monkeypatch):
  monkeypatch.setattr(images, "MAX_PIXELS", 100)
  p = save(tmp_path, "big.png", Image.new("L", (20, 20)))
  with pytest.raises(ImageError, match="too large"):
    images.load_image(p)


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
  out = tmp_path / "o.png"

  def boom(*a, **k):
    raise OSError("disk full")

  monkeypatch.setattr(Image.Image, "save", boom)
  with pytest.raises(OSError):
    images.save_image(out, np.zeros((4, 4, 3)))
  assert list(tmp_path.iterdir()) == []


def test_save_round_trip_and_checks(tmp_path):
  x = np.random.default_rng(0).uniform(size=(6, 5, 3)).astype(np.float32)
  images.save_image(tmp_path / "o.png", x)
  np.testing.assert_allclose(images.load_image(tmp_path / "o.png"), x, atol=0.5 / 255 + 1e-6)
  with pytest.raises(ImageError, match="unknown output format"):
    images.save_image(tmp_path / "o.xyz", x)
  with pytest.raises(ImageError, match="does not exist"):
    images.save_image(tmp_path / "nodir" / "o.png", x)


def test_contact_sheet_has_one_cell_per_image():
  ims = [np.full((10, 20, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
  sheet = images.contact_sheet(ims, ["a", "b", "c"], height=16, pad=4)
  assert sheet.shape[0] == 4 + 16 + 18 + 4
  assert sheet.shape[1] == 4 + 3 * (32 + 4)
  np.testing.assert_allclose(sheet[4 + 8, 4 + 36 + 16], 0.5, atol=0.01)
