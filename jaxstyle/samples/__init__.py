"""Built-in sample images, drawn by this package's own code (so their licence is ours).

``landscape.png`` (content): a rendered mountain lake at dusk. ``strokes.png`` (style):
short brush strokes that follow a swirling flow field. ``mosaic.png`` (a second style):
warm polygon tiles. ``sky_mask.png`` and ``ground_mask.png``: the landscape's sky and the
rest, for ``--mask`` and ``--style-regions``. All ship with the package;
``python -m jaxstyle.samples`` redraws them from :func:`draw_landscape` and
:func:`draw_strokes`, which are deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def content_path() -> str:
  return str(HERE / "landscape.png")


def style_path() -> str:
  return str(HERE / "strokes.png")


def mask_path() -> str:
  return str(HERE / "sky_mask.png")


def ground_mask_path() -> str:
  return str(HERE / "ground_mask.png")


def mosaic_path() -> str:
  return str(HERE / "mosaic.png")


def draw_mosaic(width: int = 512, height: int = 512, seed: int = 3) -> Image.Image:
  """A second style: warm, flat polygon tiles with dark grout."""
  rng = np.random.default_rng(seed)
  im = Image.new("RGB", (width, height), (40, 25, 20))
  d = ImageDraw.Draw(im)
  palette = np.array([[200, 80, 40], [230, 150, 60], [170, 40, 50], [240, 210, 150], [120, 60, 30]])
  step = 24
  for y in range(0, height + step, step):
    for x in range(0, width + step, step):
      pts = [
        (x + rng.uniform(-10, 10) + dx, y + rng.uniform(-10, 10) + dy)
        for dx, dy in ((0, 0), (step, 0), (step, step), (0, step))
      ]
      colour = tuple(int(c) for c in np.clip(palette[rng.integers(len(palette))] + rng.normal(0, 12, 3), 0, 255))
      d.polygon(pts, fill=colour, outline=(40, 25, 20), width=3)
  return im.filter(ImageFilter.GaussianBlur(0.5))


def draw_sky_mask(width: int = 512, height: int = 384) -> Image.Image:
  """White over the upper 45% of the landscape (its sky), fading to black below."""
  y = np.linspace(0.0, 1.0, height)[:, None]
  m = np.clip((0.5 - y) / 0.1, 0.0, 1.0) * np.ones((1, width))
  return Image.fromarray((m * 255).astype(np.uint8), "L")


def _ridge(rng: np.random.Generator, width: int, base: float, amp: float, octaves: int = 5) -> np.ndarray:
  x = np.linspace(0.0, 1.0, width)
  y = np.full(width, base)
  for o in range(octaves):
    f = 2.0 ** (o + 1)
    y += amp / (o + 1.5) * np.sin(2 * np.pi * (f * x + rng.uniform())) * rng.uniform(0.5, 1.0)
  return y


def draw_landscape(width: int = 512, height: int = 384, seed: int = 7) -> Image.Image:
  """A mountain lake at dusk: gradient sky, sun, three mountain ranges, pines, water."""
  rng = np.random.default_rng(seed)
  t = np.linspace(0.0, 1.0, height)[:, None, None]
  top, horizon = np.array([40, 70, 140.0]), np.array([250, 190, 140.0])
  sky = (top * (1 - t) + horizon * t) * np.ones((1, width, 1))
  im = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB")
  d = ImageDraw.Draw(im)
  d.ellipse([width * 0.62, height * 0.22, width * 0.74, height * 0.22 + width * 0.12], fill=(255, 236, 190))
  water = int(height * 0.68)
  ranges = [(0.42, 0.10, (120, 110, 150)), (0.52, 0.08, (80, 85, 115)), (0.60, 0.06, (45, 65, 70))]
  for base, amp, colour in ranges:
    ridge = _ridge(rng, width, base, amp) * height
    d.polygon([(0, water)] + [(x, float(ridge[x])) for x in range(width)] + [(width - 1, water)], fill=colour)
    if colour == ranges[0][2]:  # snow caps on the far range
      for x in range(0, width, 2):
        if ridge[x] < height * (base - 0.02):
          d.line([(x, float(ridge[x])), (x, float(ridge[x]) + 6)], fill=(235, 235, 245), width=2)
  for _ in range(40):  # pines on the near shore
    x = rng.uniform(0, width)
    h = rng.uniform(18, 46)
    d.polygon([(x, water - h), (x - h * 0.22, water), (x + h * 0.22, water)], fill=(20, 45, 30))
  arr = np.asarray(im).astype(np.float32)
  above = arr[water - (height - water) : water][::-1]  # reflection, darkened and tinted
  ripple = 1.0 + 0.05 * np.sin(np.arange(height - water) * 0.9)[:, None, None]
  arr[water:] = np.clip(above * 0.7 * ripple + np.array([10, 20, 35]), 0, 255)
  d2 = ImageDraw.Draw(im := Image.fromarray(arr.astype(np.uint8), "RGB"))
  for _ in range(60):  # glints on the water
    x, y = rng.uniform(0, width), rng.uniform(water + 4, height)
    d2.line([(x, y), (x + rng.uniform(6, 20), y)], fill=(230, 210, 190), width=1)
  return im.filter(ImageFilter.GaussianBlur(0.8))


def draw_strokes(width: int = 512, height: int = 512, seed: int = 11) -> Image.Image:
  """A painting of short brush strokes that follow swirling curves, blue and gold."""
  rng = np.random.default_rng(seed)
  im = Image.new("RGB", (width, height), (25, 40, 90))
  d = ImageDraw.Draw(im)
  centres = rng.uniform(0, 1, (5, 2)) * [width, height]
  palette = np.array([[30, 60, 140], [60, 110, 190], [120, 170, 220], [240, 210, 90], [250, 240, 200], [20, 30, 70]])

  def flow(x, y):
    ang = 0.0
    for k, (cx, cy) in enumerate(centres):
      r = np.hypot(x - cx, y - cy) + 30
      ang += (1 if k % 2 else -1) * 80 / r
    return np.cos(ang + y / 90), np.sin(ang + x / 110)

  for _ in range(2600):
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    base = palette[rng.integers(len(palette))]
    colour = tuple(int(c) for c in np.clip(base + rng.normal(0, 18, 3), 0, 255))
    pts = [(x, y)]
    for _ in range(rng.integers(4, 10)):
      u, v = flow(x, y)
      x, y = x + 4 * u, y + 4 * v
      pts.append((x, y))
    d.line(pts, fill=colour, width=int(rng.integers(3, 8)), joint="curve")
  return im.filter(ImageFilter.GaussianBlur(0.6))
