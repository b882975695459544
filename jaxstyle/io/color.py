"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

Two ways to keep the content's colours:

* ``luminance``: style transfer on luminance only. Both images become their Y channel
  (YIQ), the style's luminance matched to the content's mean and standard deviation; the
  result's luminance is recombined with the content's I and Q (chroma).
* ``histogram``: before optimizing, the style image's colours are linearly mapped so that
  their mean and covariance equal the content's: ``x' = A (x - mu_s) + mu_c`` with
  ``A = Sigma_c^(1/2) Sigma_s^(-1/2)``.

Images are NumPy ``(H, W, 3)`` float RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np

# NTSC RGB -> YIQ.
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
_RGB = np.linalg.inv(_YIQ)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
  """``(H, W, 3)`` RGB to YIQ."""
  return (np.asarray(image, np.float64) @ _YIQ.T).astype(np.float32)


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
  """``(H, W, 3)`` YIQ to RGB (not clipped)."""
  return (np.asarray(image, np.float64) @ _RGB.T).astype(np.float32)


def luminance_image(image: np.ndarray, *, like: np.ndarray | None = None) -> np.ndarray:
  """The Y channel as a gray RGB image; with ``like``, its mean and std matched to ``like``'s Y."""
  y = rgb_to_yiq(image)[..., 0].astype(np.float64)
  if like is not None:
    ref = rgb_to_yiq(like)[..., 0].astype(np.float64)
    y = (y - y.mean()) / max(y.std(), 1e-6) * ref.std() + ref.mean()
  return np.repeat(np.clip(y, 0.0, 1.0)[..., None], 3, axis=-1).astype(np.float32)


def recombine(luminance_result: np.ndarray, content: np.ndarray) -> np.ndarray:
  """The result's luminance with the content's chroma, clipped to [0, 1]."""
  y = rgb_to_yiq(luminance_result)[..., :1]
  iq = rgb_to_yiq(content)[..., 1:]
  return np.clip(yiq_to_rgb(np.concatenate([y, iq], axis=-1)), 0.0, 1.0)


def _sqrtm(cov: np.ndarray, power: float) -> np.ndarray:
  w, v = np.linalg.eigh(cov)
  w = np.maximum(w, 1e-8)
  return (v * w**power) @ v.T


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
  """Maps ``style``'s colours to the mean and covariance of ``content``'s (not clipped)."""
  s = np.asarray(style, np.float64).reshape(-1, 3)
  c = np.asarray(content, np.float64).reshape(-1, 3)
  mu_s, mu_c = s.mean(0), c.mean(0)
  cov_s = np.cov(s, rowvar=False, bias=True)
  cov_c = np.cov(c, rowvar=False, bias=True)
  a = _sqrtm(cov_c, 0.5) @ _sqrtm(cov_s, -0.5)
  return ((s - mu_s) @ a.T + mu_c).reshape(np.shape(style)).astype(np.float32)
