"""The PyTorch reference, pastiche==1.6.0, driven for side-by-side timing (optional: needs torch).

pastiche optimizes the image in Caffe space (BGR, 0-255, mean-subtracted) with the same
quantized VGG19 weights that jaxstyle reads, so its loss at a given image equals
jaxstyle's under :func:`pastiche_config` up to float error.
"""

from __future__ import annotations

import time

import numpy as np

from jaxstyle.nets import vgg
from jaxstyle.settings import presets
from jaxstyle.settings.style import StyleConfig

MEAN_BGR = np.asarray(vgg.CAFFE_BGR_MEAN, np.float32)


def available() -> str | None:
  """None if the reference can run, else why not."""
  try:
    import pastiche  # noqa: F401
    import torch  # noqa: F401
  except ImportError as e:
    return f"reference skipped: {e.name} is not installed (pip install torch==2.13.0 pastiche==1.6.0)"
  return None


def pastiche_config(**overrides) -> StyleConfig:
  """jaxstyle configured to pastiche's default objective: relu4_2 content weight 0.01;
  style relu1_1..relu5_1 each weighted 10/C^2; Gram / (H*W); mean squared errors;
  max pooling (no pool gains); L-BFGS."""
  widths = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
  settings = dict(
    content_layers=(("relu4_2", 0.01),),
    style_layers=tuple((n, 10.0 / widths[n] ** 2) for n in vgg.STYLE_LAYERS),
    content_weight=1.0,
    style_weight=1.0,
    gram_norm="hw",
    content_reduction="mean",
    style_reduction="mean",
    pooling="max",
    native_pooling=None,  # pastiche's weights are for max pooling: no gains
    kind="lbfgs",
    init="content",
  )
  return presets.gatys(**{**settings, **overrides})


def to_rgb01(x) -> np.ndarray:
  """pastiche's (1, 3, H, W) Caffe-space tensor to (H, W, 3) RGB in [0, 1]."""
  a = x.detach().cpu().numpy()[0].transpose(1, 2, 0) + MEAN_BGR
  return (a[..., ::-1] / 255.0).astype(np.float32)


class Reference:
  """A pastiche run on given image files at a given longest side."""

  def __init__(self, content_path: str, style_path: str, size: int):
    import torch
    from pastiche.pastiche import PasticheArtist

    torch.manual_seed(0)
    self.torch = torch
    self.artist = PasticheArtist(str(content_path), [str(style_path)], size=size, device="cpu")
    self.start = self.artist.pastiche.detach().clone()
    self.style_path = str(style_path)

  def images(self) -> tuple[np.ndarray, np.ndarray]:
    """The content and style exactly as pastiche loaded them, in jaxstyle's space."""
    from pastiche.pastiche import load_image

    h, w = self.artist.content_size
    return to_rgb01(self.start), to_rgb01(load_image(self.style_path, pixels=h * w))

  def iteration(self) -> float:
    """One loss value and gradient with respect to the image; returns the loss."""
    a = self.artist
    if a.pastiche.grad is not None:
      a.pastiche.grad = None
    loss = a._calc_loss()
    loss.backward()
    return float(loss.detach())

  def loss_at(self, image_rgb01: np.ndarray) -> float:
    """pastiche's loss at an image given in jaxstyle's space."""
    x = (image_rgb01[..., ::-1] * 255.0 - MEAN_BGR).transpose(2, 0, 1)[None]
    with self.torch.no_grad():
      self.artist.pastiche.data = self.torch.from_numpy(np.ascontiguousarray(x, np.float32))
      return float(self.artist._calc_loss())

  def run_lbfgs(self, steps: int) -> tuple[list[float], float]:
    """pastiche's own loop (torch L-BFGS, max_iter=1 per draw) from the content; losses
    after each step and the wall time."""
    with self.torch.no_grad():
      self.artist.pastiche.data = self.start.clone()
    self.artist.optimizer = self.torch.optim.LBFGS([self.artist.pastiche], max_iter=1, lr=1.0)
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
      self.artist.draw()
      losses.append(float(self.artist.loss))
    return losses, time.perf_counter() - t0
