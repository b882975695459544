"""Plots drawn with Pillow (no plotting library): a labelled scatter (sweeps' Pareto views) and lines (a
video's measures per frame)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
  if hi <= lo:
    return [lo]
  step = 10 ** math.floor(math.log10((hi - lo) / n))
  for m in (1, 2, 5, 10):
    if (hi - lo) / (step * m) <= n:
      step *= m
      break
  start = math.ceil(lo / step) * step
  return [start + k * step for k in range(int((hi - start) / step) + 1)]


def scatter(
  x: Sequence[float],
  y: Sequence[float],
  labels: Sequence[str],
  *,
  xlabel: str,
  ylabel: str,
  title: str = "",
  size: tuple[int, int] = (900, 640),
  highlight: Sequence[bool] | None = None,
) -> np.ndarray:
  """Points with their labels on linear axes with ticks.

  Args:
    x, y: coordinates, one per point.
    labels: a short caption per point.
    xlabel, ylabel, title: axis names and a title.
    size: ``(width, height)`` in px.
    highlight: points drawn filled (e.g. the Pareto front); others hollow.

  Returns:
    ``(H, W, 3)`` float32 RGB in [0, 1].
  """
  w, h = size
  left, right, top, bottom = 80, 160, 40, 60  # room on the right for the last points' labels
  im = Image.new("RGB", (w, h), "white")
  d = ImageDraw.Draw(im)
  font = ImageFont.load_default()
  xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
  pad = lambda lo, hi: (lo - 0.06 * (hi - lo or 1), hi + 0.06 * (hi - lo or 1))  # noqa: E731
  x0, x1 = pad(xs.min(), xs.max())
  y0, y1 = pad(ys.min(), ys.max())
  px = lambda v: left + (v - x0) / (x1 - x0) * (w - left - right)  # noqa: E731
  py = lambda v: h - bottom - (v - y0) / (y1 - y0) * (h - top - bottom)  # noqa: E731
  d.rectangle([left, top, w - right, h - bottom], outline="black")
  for t in _ticks(x0, x1):
    d.line([px(t), h - bottom, px(t), h - bottom + 5], fill="black")
    d.text((px(t) - 12, h - bottom + 8), f"{t:.3g}", fill="black", font=font)
  for t in _ticks(y0, y1):
    d.line([left - 5, py(t), left, py(t)], fill="black")
    d.text((8, py(t) - 6), f"{t:.3g}", fill="black", font=font)
  d.text((w // 2 - 4 * len(xlabel), h - 24), xlabel, fill="black", font=font)
  d.text((left, 8), f"{title}   (y: {ylabel})" if title else f"y: {ylabel}", fill="black", font=font)
  marks = highlight if highlight is not None else [True] * len(xs)
  for xv, yv, label, mark in zip(xs, ys, labels, marks, strict=True):
    cx, cy = px(xv), py(yv)
    d.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], outline=(200, 30, 30), fill=(200, 30, 30) if mark else None)
    d.text((cx + 6, cy - 6), label, fill=(40, 40, 40), font=font)
  return np.asarray(im, np.float32) / 255.0


def pareto_front(x: Sequence[float], y: Sequence[float]) -> list[bool]:
  """Which points no other point beats on both coordinates (lower is better for both)."""
  pts = list(zip(x, y, strict=True))
  return [not any(a <= p and b <= q and (a, b) != (p, q) for a, b in pts) for p, q in pts]


_COLOURS = ((200, 30, 30), (30, 90, 200), (30, 150, 60), (150, 60, 170))


def lines(
  series: dict[str, Sequence[float]],
  *,
  xlabel: str,
  ylabel: str,
  title: str = "",
  size: tuple[int, int] = (900, 420),
) -> np.ndarray:
  """Named series against their index (e.g. a measure per video frame), with a legend.

  Args:
    series: name to values; index 0 is drawn at x = 1 (the first frame pair).
    xlabel, ylabel, title: axis names and a title.
    size: ``(width, height)`` in px.

  Returns:
    ``(H, W, 3)`` float32 RGB in [0, 1].
  """
  w, h = size
  left, right, top, bottom = 80, 30, 40, 60
  im = Image.new("RGB", (w, h), "white")
  d = ImageDraw.Draw(im)
  font = ImageFont.load_default()
  n = max(len(v) for v in series.values())
  ymax = max(max(v) for v in series.values()) * 1.06 or 1.0
  px = lambda i: left + i / max(n - 1, 1) * (w - left - right)  # noqa: E731
  py = lambda v: h - bottom - v / ymax * (h - top - bottom)  # noqa: E731
  d.rectangle([left, top, w - right, h - bottom], outline="black")
  for t in _ticks(1, n):
    d.line([px(t - 1), h - bottom, px(t - 1), h - bottom + 5], fill="black")
    d.text((px(t - 1) - 8, h - bottom + 8), f"{t:g}", fill="black", font=font)
  for t in _ticks(0, ymax):
    d.line([left - 5, py(t), left, py(t)], fill="black")
    d.text((8, py(t) - 6), f"{t:.3g}", fill="black", font=font)
  d.text((w // 2 - 3 * len(xlabel), h - 24), xlabel, fill="black", font=font)
  d.text((left, 8), f"{title}   (y: {ylabel})" if title else f"y: {ylabel}", fill="black", font=font)
  for k, (name, values) in enumerate(series.items()):
    colour = _COLOURS[k % len(_COLOURS)]
    d.line([(px(i), py(v)) for i, v in enumerate(values)], fill=colour, width=2)
    d.line([w - right - 150, top + 14 + 16 * k, w - right - 125, top + 14 + 16 * k], fill=colour, width=2)
    d.text((w - right - 118, top + 8 + 16 * k), name, fill="black", font=font)
  return np.asarray(im, np.float32) / 255.0
