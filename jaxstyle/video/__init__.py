"""Video: clips stylized without flicker, on the shared core.

- :mod:`~jaxstyle.video.flow`: optical flow in JAX (coarse-to-fine TV-L1), warping, reliability masks.
- :mod:`~jaxstyle.video.frames`: frames converted and sized, their motion against the frame before.
- :mod:`~jaxstyle.video.temporal`: a rendering made consistent with the previous output (Bonneel et al. 2015).
- :mod:`~jaxstyle.video.fast`: a clip through the fast networks, batch by batch, one program per batch.
- :mod:`~jaxstyle.video.optimize`: a clip by optimization, each frame from the previous output warped into it,
  with a temporal loss (Ruder et al. 2016).
- :mod:`~jaxstyle.video.measures`: the warping error (Lai et al. 2018).

Files are :mod:`jaxstyle.io.video`'s. Imports: every layer below (:mod:`jaxstyle.io`, :mod:`jaxstyle.settings`,
:mod:`jaxstyle.objective`, :mod:`jaxstyle.fast`, :mod:`jaxstyle.optim`, ...); never :mod:`jaxstyle.cli`.
"""

from jaxstyle.video import fast, flow, frames, measures, optimize, temporal

__all__ = ["fast", "flow", "frames", "measures", "optimize", "temporal"]
