"""The networks: Flax modules applied functionally, NHWC, holding no weights and doing no I/O.

- :mod:`~jaxstyle.nets.vgg`: VGG19 returning named activations (the objective's network), its layer
  walk, pool gains and receptive-field halo; :mod:`~jaxstyle.nets.winograd`, the fast 3x3 convolutions it
  uses on CPU.
- :mod:`~jaxstyle.nets.magenta`: Magenta's style predictor and transformers (fast stylization), their
  tile runs and halos; :mod:`~jaxstyle.nets.magenta_kernels`, the convolutions they use on CPU.

Imports: :mod:`jaxstyle.errors` only (and JAX, Flax, NumPy). Weights are read by :mod:`jaxstyle.io`.
"""

from jaxstyle.nets import magenta, magenta_kernels, vgg, winograd

__all__ = ["magenta", "magenta_kernels", "vgg", "winograd"]
