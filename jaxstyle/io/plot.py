"""Plots: a labelled scatter (sweeps' Pareto views), drawn with matplotlib where it is installed (the ``ui`` extra:
real axes, ticks and a legend) and with Pillow otherwise, and lines (a video's measures per frame, Pillow)."""

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
    highlight: points drawn filled (e.g. the Pareto front, joined by a line); others hollow.

  Returns:
    ``(H, W, 3)`` float32 RGB in [0, 1].
  """
  try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
  except ImportError:  # the core install has no plotting library
    return scatter_pillow(x, y, labels, xlabel=xlabel, ylabel=ylabel, title=title, size=size, highlight=highlight)
  xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
  marks = np.ones(len(xs), bool) if highlight is None else np.asarray(highlight, bool)
  fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)  # an object of its own: no pyplot state
  canvas = FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  red = "#c81e1e"
  if highlight is not None and marks.any():
    order = np.argsort(xs[marks])
    ax.plot(xs[marks][order], ys[marks][order], color=red, lw=1, alpha=0.5, zorder=2)
  ax.scatter(xs[marks], ys[marks], color=red, s=36, zorder=3, label="Pareto front" if highlight is not None else None)
  if (~marks).any():
    ax.scatter(xs[~marks], ys[~marks], facecolors="none", edgecolors=red, s=36, zorder=3, label="dominated")
  for xv, yv, label in zip(xs, ys, labels, strict=True):
    ax.annotate(label, (xv, yv), xytext=(6, 4), textcoords="offset points", fontsize=8, color="#282828")
  ax.margins(0.12)
  ax.grid(alpha=0.3)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title)
  if highlight is not None:
    ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  canvas.draw()
  return np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0


def scatter_pillow(
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
  """:func:`scatter` drawn by hand with Pillow (without matplotlib).

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
