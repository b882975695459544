"""jaxstyle: neural style transfer (Gatys et al. 2016) in JAX."""

from jaxstyle import checkpoint, color, compilation, lbfgs, losses, objective, optimize, presets, problem, sweep, vgg
from jaxstyle.config import StyleConfig
from jaxstyle.images import ImageError, load_image, save_image
from jaxstyle.losses import LossWeights, content_loss, gram_matrix, style_loss, total_loss, total_variation
from jaxstyle.optimize import Progress, Result, compute_targets, stylize
from jaxstyle.sweep import SweepResult, SweepSpec, stylize_sweep
from jaxstyle.vgg import VGG19, extract_features, init_params, preprocess
from jaxstyle.weights import WeightsError, load_vgg19

__version__ = "0.1.0"

__all__ = [
  "SweepResult",
  "SweepSpec",
  "checkpoint",
  "color",
  "compilation",
  "objective",
  "problem",
  "lbfgs",
  "optimize",
  "stylize_sweep",
  "sweep",
  "VGG19",
  "ImageError",
  "LossWeights",
  "Progress",
  "Result",
  "StyleConfig",
  "WeightsError",
  "compute_targets",
  "content_loss",
  "extract_features",
  "gram_matrix",
  "init_params",
  "load_image",
  "load_vgg19",
  "losses",
  "preprocess",
  "presets",
  "save_image",
  "style_loss",
  "stylize",
  "total_loss",
  "total_variation",
  "vgg",
]
