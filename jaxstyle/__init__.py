"""jaxstyle: neural style transfer (Gatys et al. 2016) in JAX, and fast feed-forward stylization.

The research API, by role (each a subpackage; imports run from the command line down):

- :mod:`jaxstyle.nets`: VGG19 (:class:`VGG19`, :func:`extract_features`) and Magenta's networks, Flax
  modules applied functionally;
- :mod:`jaxstyle.objective`: pure losses (:mod:`jaxstyle.losses`), targets (:func:`compute_targets`), the
  weighted loss of an image (:func:`jaxstyle.objective.objective`), exact tiling, quality measures;
- :mod:`jaxstyle.optim`: the optimizer step (:func:`optimizer`, :func:`init_state`, :func:`run_step`), the
  loop, :func:`stylize` coarse to fine, sweeps (:func:`stylize_sweep`);
- :mod:`jaxstyle.fast`: fast stylization, tiled and trained;
- :mod:`jaxstyle.settings`: every setting declared once, and the presets;
- :mod:`jaxstyle.io` and :mod:`jaxstyle.runtime`: files, images, weights, checkpoints; compilation, memory,
  tiles, devices; :mod:`jaxstyle.cli`: the ``jaxstyle`` command.
"""

__version__ = "0.1.0"

from jaxstyle import fast, io, nets, objective, optim, runtime, settings  # noqa: E402
from jaxstyle.errors import InputError, JaxstyleError, NonFiniteError, ResourceError, WeightsError  # noqa: E402
from jaxstyle.io.images import ImageError, load_image, save_image  # noqa: E402
from jaxstyle.io.vgg_weights import load_vgg19  # noqa: E402
from jaxstyle.nets import magenta, vgg, winograd  # noqa: E402
from jaxstyle.nets.vgg import VGG19, extract_features, init_params, preprocess  # noqa: E402
from jaxstyle.objective import losses, metrics  # noqa: E402
from jaxstyle.objective.losses import (  # noqa: E402
  LossWeights,
  content_loss,
  gram_matrix,
  style_loss,
  total_loss,
  total_variation,
)
from jaxstyle.objective.targets import Form, Targets, compute_targets  # noqa: E402
from jaxstyle.optim import lbfgs, sweep  # noqa: E402
from jaxstyle.optim.loop import Progress  # noqa: E402
from jaxstyle.optim.step import init_state, optimizer, run_step  # noqa: E402
from jaxstyle.optim.stylize import Result, stylize  # noqa: E402
from jaxstyle.optim.sweep import SweepResult, SweepSpec, stylize_sweep  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402
from jaxstyle.settings.style import (  # noqa: E402
  ImageSettings,
  LossSettings,
  NetworkSettings,
  OptimizerSettings,
  RunSettings,
  StyleConfig,
)

__all__ = [
  "VGG19",
  "Form",
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
  "content_loss",
  "extract_features",
  "fast",
  "gram_matrix",
  "init_params",
  "init_state",
  "io",
  "lbfgs",
  "load_image",
  "load_vgg19",
  "losses",
  "magenta",
  "metrics",
  "nets",
  "objective",
  "optim",
  "optimizer",
  "preprocess",
  "presets",
  "run_step",
  "runtime",
  "save_image",
  "settings",
  "style_loss",
  "stylize",
  "stylize_sweep",
  "sweep",
  "total_loss",
  "total_variation",
  "vgg",
  "winograd",
]
