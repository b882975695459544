"""jaxstyle: neural style transfer (Gatys et al. 2016) in JAX.

The research API: the network (:class:`VGG19`, :func:`extract_features`), the losses
(:mod:`jaxstyle.losses`), the objective (:func:`compute_targets`, :func:`objective`), the
optimizer step (:func:`optimizer`, :func:`init_state`, :func:`run_step`), :func:`stylize`,
sweeps (:func:`stylize_sweep`), settings and presets, weights and image I/O. The other
modules (compilation, problem set-up, checkpoints, the CLI) are plumbing.
"""

from jaxstyle import config, lbfgs, losses, multiscale, objective, optimize, presets, sweep, vgg
from jaxstyle.config import (
  ImageSettings,
  LossSettings,
  NetworkSettings,
  OptimizerSettings,
  RunSettings,
  StyleConfig,
)
from jaxstyle.errors import InputError, JaxstyleError, NonFiniteError, ResourceError, WeightsError
from jaxstyle.images import ImageError, load_image, save_image
from jaxstyle.losses import LossWeights, content_loss, gram_matrix, style_loss, total_loss, total_variation
from jaxstyle.multiscale import Result, stylize
from jaxstyle.objective import Targets, compute_targets
from jaxstyle.optimize import Progress, init_state, optimizer, run_step
from jaxstyle.sweep import SweepResult, SweepSpec, stylize_sweep
from jaxstyle.vgg import VGG19, extract_features, init_params, preprocess
from jaxstyle.weights import load_vgg19

__version__ = "0.1.0"

__all__ = [
  "VGG19",
  "ImageError",
  "ImageSettings",
  "InputError",
  "JaxstyleError",
  "LossSettings",
  "LossWeights",
  "NetworkSettings",
  "NonFiniteError",
  "OptimizerSettings",
  "Progress",
  "ResourceError",
  "Result",
  "RunSettings",
  "StyleConfig",
  "SweepResult",
  "SweepSpec",
  "Targets",
  "WeightsError",
  "compute_targets",
  "config",
  "content_loss",
  "extract_features",
  "gram_matrix",
  "init_params",
  "init_state",
  "lbfgs",
  "load_image",
  "load_vgg19",
  "losses",
  "multiscale",
  "objective",
  "optimize",
  "optimizer",
  "preprocess",
  "presets",
  "run_step",
  "save_image",
  "style_loss",
  "stylize",
  "stylize_sweep",
  "sweep",
  "total_loss",
  "total_variation",
  "vgg",
]
