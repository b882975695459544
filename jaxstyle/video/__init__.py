"""Video: clips stylized without flicker, on the shared core.

- :mod:`~jaxstyle.video.flow`: optical flow in JAX (coarse-to-fine TV-L1), warping, reliability masks.
- :mod:`~jaxstyle.video.temporal`: a rendering made consistent with the previous output (Bonneel et al. 2015).
- :mod:`~jaxstyle.video.fast`: a clip through the fast networks, batch by batch, one program per batch.
- :mod:`~jaxstyle.video.measures`: the warping error (Lai et al. 2018).

Files are :mod:`jaxstyle.io.video`'s. Imports: :mod:`jaxstyle.io`, :mod:`jaxstyle.settings`,
:mod:`jaxstyle.fast`; never :mod:`jaxstyle.optim` or :mod:`jaxstyle.cli`.
"""

from jaxstyle.video import fast, flow, measures, temporal

__all__ = ["fast", "flow", "measures", "temporal"]
