"""What every tab shares: the networks (given, or loaded once on first use), the outputs folder, the weights
file the reproducing commands name."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from jaxstyle.errors import JaxstyleError
from jaxstyle.fast.stylize import Networks
from jaxstyle.io import magenta_weights, vgg_weights
from jaxstyle.ui.uploads import fail


@dataclasses.dataclass
class Context:
  """The app's shared state.

  Attributes:
    outputs: where every job's folder goes (served to the page; nothing else of the disk is).
    params: VGG19 params; ``None``: loaded from ``weights_path`` (or the default places) on first use.
    networks: the fast networks; fields left ``None`` are loaded from their default files on first use.
    weights_path: the VGG19 file the reproducing commands name (``None``: the CLI's default places).
  """

  outputs: Path
  params: Mapping | None = None
  networks: Networks | None = None
  weights_path: str | None = None
  _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

  def vgg(self) -> Mapping:
    with self._lock:
      if self.params is None:
        try:
          self.params = vgg_weights.load_vgg19(self.weights_path)
        except JaxstyleError as e:
          raise fail(e) from None
      return self.params

  def fast(self, *, builtin: bool, predictor: bool) -> Networks:
    """The fast networks a request needs (the 26-style one, the arbitrary predictor and transformer)."""
    with self._lock:
      nets = self.networks or Networks()
      try:
        if builtin and nets.multistyle is None:
          nets = dataclasses.replace(nets, multistyle=magenta_weights.load_multistyle26())
        if not builtin and nets.transformer is None or predictor and nets.predictor is None:
          p, t = magenta_weights.load_arbitrary()
          nets = dataclasses.replace(nets, predictor=nets.predictor or p, transformer=nets.transformer or t)
      except JaxstyleError as e:
        raise fail(e) from None
      self.networks = nets
      return nets

  def command_weights(self) -> str | None:
    return None if self.weights_path is None else os.path.abspath(self.weights_path)
