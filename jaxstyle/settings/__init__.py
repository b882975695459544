"""Settings: every setting declared once, the settings families, and the presets.

- :mod:`~jaxstyle.settings.fields`: how a setting is declared (:func:`~jaxstyle.settings.fields.setting`), the
  base of every family (:class:`~jaxstyle.settings.fields.Settings`), codecs derived from the types, flags.
- :mod:`~jaxstyle.settings.style`: :class:`~jaxstyle.settings.style.StyleConfig` and its five sections
  (optimization); :mod:`~jaxstyle.settings.fast`: ``FastSettings`` (fast stylization);
  :mod:`~jaxstyle.settings.train`: ``TrainSettings`` (training a fast network).
- :mod:`~jaxstyle.settings.presets`: the recipes jaxstyle descends from; :mod:`~jaxstyle.settings.commands`: the
  ``jaxstyle stylize`` command that reproduces settings.

Imports: :mod:`jaxstyle.nets` (layer names, the fast networks' constants) and :mod:`jaxstyle.objective` (the
loss forms and the objective's form that settings produce).
"""

from jaxstyle.settings import fields, presets
from jaxstyle.settings.fast import FastSettings
from jaxstyle.settings.style import (
  ImageSettings,
  LossSettings,
  NetworkSettings,
  OptimizerSettings,
  PictureSettings,
  RunSettings,
  StyleConfig,
  auto_scales,
)
from jaxstyle.settings.train import TrainSettings

__all__ = [
  "FastSettings",
  "ImageSettings",
  "LossSettings",
  "NetworkSettings",
  "OptimizerSettings",
  "PictureSettings",
  "RunSettings",
  "StyleConfig",
  "TrainSettings",
  "auto_scales",
  "fields",
  "presets",
]
