"""Configurations that reproduce the recipes jaxstyle descends from.

Each function returns a :class:`~jaxstyle.settings.style.StyleConfig`; override fields with
keyword arguments by their flat names, e.g. ``gatys(size=256, steps=100)``. Our VGG19 is the original
Caffe network fed Caffe-preprocessed pixels (BGR, 0-255, mean-subtracted); the image
being optimized is RGB in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxstyle.errors import InputError
from jaxstyle.nets.vgg import STYLE_LAYERS
from jaxstyle.settings.style import StyleConfig


def _preset(name: str, **fields: Any) -> StyleConfig:
  return StyleConfig(name=name).set(**fields)


def gatys(**overrides: Any) -> StyleConfig:
  """Gatys, Ecker & Bethge, "Image Style Transfer Using CNNs", CVPR 2016.

  Content relu4_2 with ``L = 1/2 sum (F - P)^2``; style relu1_1..relu5_1 with
  ``E_l = sum (G - A)^2 / (4 N_l^2 M_l^2)`` and ``w_l = 1/5``; alpha/beta = 1e-3;
  average pooling (the paper's choice); L-BFGS; 512 px.

  The paper's ``E_l`` is a sum over Gram entries with the Gram divided by
  ``N_l M_l`` (``gram_norm="chw"``) and the 1/4 folded into the layer weights:
  ``w_l / 4 = 0.05``. The paper starts from white noise; we start from the content
  image, which reaches the same kind of optimum in far fewer L-BFGS steps (pass
  ``init="noise"`` for the paper's start). Same network, same pixel scale, so no
  other adaptation is needed.
  """
  return _preset(
    "gatys",
    content_layers=(("relu4_2", 1.0),),
    style_layers=tuple((n, 0.05) for n in STYLE_LAYERS),
    content_weight=1.0,
    style_weight=1e3,
    gram_norm="chw",
    content_reduction="half_sum",
    style_reduction="sum",
    kind="lbfgs",
    pooling="avg",
    native_pooling="avg",
    size=512,
    steps=500,
    init="content",
  ).set(**overrides)


def pytorch_course(**overrides: Any) -> StyleConfig:
  """The PyTorch course exercise (Udacity's "Style Transfer with Deep Neural Networks").

  Content conv4_2; style conv1_1..conv5_1 weighted 1, 0.75, 0.2, 0.2, 0.2; content
  weight 1, style weight 1e6; content loss ``mean((T - C)^2)``; style loss per layer
  ``w_l * mean((G - A)^2) / (C H W)`` with an unnormalised Gram; Adam; init from the
  content image; 400 px; 2000 steps.

  Adapted to our network:

  * Layers: the course stores ``features['conv4_2'] = x`` from torchvision's VGG,
    whose next ``ReLU(inplace=True)`` overwrites that tensor, so the features it
    actually matched are relu outputs; we use relu4_2 and relu1_1..relu5_1.
  * Learning rate: the course optimizes ImageNet-normalized pixels (std about 0.226
    of the [0, 1] range); its 0.003 is ``0.003 * 0.226 = 6.8e-4`` in our [0, 1] units.
  * Style weight: torchvision's retrained VGG19 on normalized pixels has other
    activation scales than the Caffe VGG19 on 0-255 pixels (the Gram term is quartic
    in that scale, the content term quadratic), so the course's 1e6 does not carry
    over. ``style_weight=1e-2`` was chosen by eye on tubingen x starry_night: strongly
    stylized with the content legible, as in the course's results (1e-4 is faint).
  """
  return _preset(
    "pytorch-course",
    content_layers=(("relu4_2", 1.0),),
    style_layers=tuple(zip(STYLE_LAYERS, (1.0, 0.75, 0.2, 0.2, 0.2), strict=True)),
    content_weight=1.0,
    style_weight=1e2,
    gram_norm="none",
    content_reduction="mean",
    style_reduction="mean",
    style_layer_norm="chw",
    kind="adam",
    learning_rate=0.003 * 0.226,
    native_pooling="max",
    size=400,
    steps=2000,
    init="content",
    report_every=50,
  ).set(**overrides)


def tf_tutorial(**overrides: Any) -> StyleConfig:
  """TensorFlow's "Neural style transfer" tutorial.

  Content block5_conv2; style block1_conv1..block5_conv1; Gram divided by H*W;
  ``style_weight / 5 * sum_l mean((G - A)^2)`` + ``content_weight * mean((F - P)^2)``
  with style 1e-2, content 1e4; ``tf.image.total_variation`` (sum of absolute
  differences) weighted 30; Adam(lr 0.02, beta1 0.99, eps 0.1); the image clipped to
  [0, 1] after each step; 1000 steps (10 epochs of 100); 512 px.

  The tutorial uses Keras' copy of the same VGG19 with the same Caffe preprocessing on
  [0, 1] images, so its numbers carry over unchanged. Keras' ``block5_conv2`` includes
  the ReLU, i.e. our relu5_2.
  """
  return _preset(
    "tf-tutorial",
    content_layers=(("block5_conv2", 1.0),),
    style_layers=tuple((f"block{b}_conv1", 0.2) for b in range(1, 6)),
    content_weight=1e4,
    style_weight=1e-2,
    tv_weight=30.0,
    gram_norm="hw",
    content_reduction="mean",
    style_reduction="mean",
    tv_kind="l1",
    tv_reduction="sum",
    kind="adam",
    learning_rate=0.02,
    native_pooling="max",
    b1=0.99,
    eps=0.1,
    clip=True,
    size=512,
    steps=1000,
    init="content",
    report_every=50,
  ).set(**overrides)


def neural_style(**overrides: Any) -> StyleConfig:
  """jcjohnson/neural-style's defaults (``neural_style.lua``).

  Content relu4_2, weight 5, ``MSECriterion`` (mean over C*H*W); style relu1_1..relu5_1,
  each at the full weight 100 and summed, the Gram divided by the layer's C*H*W and
  compared by MSE over its C*C entries; ``TVLoss`` at 1e-3; max pooling; 512 px; 1000
  L-BFGS iterations with 100 correction pairs; a random start (``torch.randn(...):mul(0.001)``
  in preprocessed units: the mean pixel plus a whisper of noise).

  Adapted:

  * TV: neural-style's ``TVLoss`` defines only a gradient, that of
    ``1e-3 * 1/2 * sum (x_ij - x_i,j+1)^2 + (x_ij - x_i+1,j)^2`` on 0-256 pixels (without the
    last row's and column's differences), and leaves it out of the reported loss. On our
    [0, 1] pixels that is squared differences summed with weight ``1e-3 * 256^2 / 2 = 32.768``;
    ours includes the last row and column, and is reported.
  * Pixels: neural-style scales [0, 1] by 256 before subtracting the Caffe mean, we by 255
    (the Caffe convention); the feature terms then differ by about 1%.
  * Start: ``init="mean"``, the ImageNet mean pixel plus seeded noise of the same tiny spread
    (neural-style is unseeded by default).
  * Optimizer: neural-style's ``optim.lbfgs`` takes the full step with no line search; ours
    backtracks when the loss would rise. Its output is min-max stretched to [0, 1]; ours is clipped.
  """
  return _preset(
    "neural-style",
    content_layers=(("relu4_2", 1.0),),
    style_layers=tuple((n, 1.0) for n in STYLE_LAYERS),
    content_weight=5.0,
    style_weight=100.0,
    tv_weight=1e-3 * 256**2 / 2,
    gram_norm="chw",
    content_reduction="mean",
    style_reduction="mean",
    tv_kind="l2",
    tv_reduction="sum",
    kind="lbfgs",
    memory=100,
    pooling="max",
    native_pooling="max",
    size=512,
    steps=1000,
    init="mean",
  ).set(**overrides)


def jaxstyle(**overrides: Any) -> StyleConfig:
  """jaxstyle's default: neural-style's look, coarse to fine, in less time.

  neural-style's objective (:func:`neural_style`: content relu4_2, style relu1_1..relu5_1 at
  equal weight, Gram / CHW, mean squared errors, squared-difference TV, max pooling, L-BFGS
  with 100 correction pairs) with the content weight lowered from 5 to 4.5, optimized coarse
  to fine: 300 L-BFGS steps at 256 px from the mean pixel, then 600 at 512 px from that
  result upsampled. ``size=1024`` extends the ladder to 256, 512, 1024.

  Why (``bench/bench_quality.py`` on Gatys et al.'s Fig. 2 pairs; figures in bench/RESULTS.md):

  * The paper's weighting (:func:`gatys`, alpha/beta = 1e-3 from the content image) leaves
    most of a photograph untouched at 500 steps; neural-style's weights repaint it.
  * The coarse scale settles the large structures (the swirls of a sky are as big as the sky)
    at a quarter of the cost per step; the fine scale adds the detail. 300 + 600 steps take
    about two thirds of the time of neural-style's 1000 steps at 512 px.
  * Content weight 4.5: starting from a coarse result that already fits the content, weight 5
    or 6 stops at a higher style distance than neural-style's on the_scream and seated-nude;
    4.5 reaches a lower one for a content distance 1-3% above neural-style's. 20 correction
    pairs instead of 100 save little time per step and converge more slowly at 512 px.
  * Starting from the mean pixel, not the content photograph, keeps the JPEG's 8 px block grid
    out of flat regions, where the style loss would never remove it; with neural-style's TV the
    border rows stay calmer than the interior.
  """
  coarse_to_fine = {"scales": "auto", "coarse_steps": 300, "steps": 600}  # 256 px, then the size (512)
  return neural_style(name="jaxstyle", content_weight=4.5, **coarse_to_fine).set(**overrides)


PRESETS: dict[str, Callable[..., StyleConfig]] = {
  "jaxstyle": jaxstyle,
  "gatys": gatys,
  "neural-style": neural_style,
  "pytorch-course": pytorch_course,
  "tf-tutorial": tf_tutorial,
}


DEFAULT = "jaxstyle"


def get(name: str, **overrides: Any) -> StyleConfig:
  """A preset by name (``jaxstyle``, ``gatys``, ``neural-style``, ``pytorch-course``, ``tf-tutorial``)."""
  try:
    return PRESETS[name](**overrides)
  except KeyError:
    raise InputError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
