"""Settings of a stylization: a few frozen dataclasses, one per concern, each setting declared once.

Every field carries its declaration in ``dataclasses.field(metadata=...)``: the command-line
flag, its help, how a flag's text becomes a value and a value becomes text again, and how it
is checked. The CLI's flags, the mapping from flags to settings, the sidecar record, the
checkpoint's compatibility check and the reproduction command are all derived from it
(:func:`declarations`, :func:`to_flags`, :func:`from_flags`), so adding a setting means adding
one field here, its use, and its test.

Sections: :class:`LossSettings` (layers, weights, forms), :class:`OptimizerSettings`,
:class:`ImageSettings` (sizes, colour, start, masks), :class:`NetworkSettings` (pooling,
convolution algorithm) and :class:`RunSettings` (steps, intervals). :class:`StyleConfig`
holds one of each plus the preset's name; ``config.set(steps=100, style_weight=1e4)`` routes
flat field names to their sections.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax.numpy as jnp

from jaxstyle import losses, vgg
from jaxstyle.errors import InputError

POOLINGS = ("max", "avg")
OPTIMIZERS = ("lbfgs", "adam")
LINE_SEARCHES = ("backtracking", "zoom")
COLOR_MODES = ("none", "luminance", "histogram")
INIT_KINDS = ("content", "noise", "gray", "mean", "style", "fast")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}

Layers = tuple[tuple[str, float], ...]  # (layer name, weight) pairs
_SPEC = losses.LossSpec()  # the loss forms' defaults are declared once, there


# --------------------------------------------------------------------------- codecs


@dataclasses.dataclass(frozen=True)
class Codec:
  """How one setting travels as command-line text.

  Attributes:
    parse: flag text to value (raises ``ValueError`` on bad text).
    format: value to flag text (``parse(format(v)) == v``).
    metavar: the flag's placeholder in ``--help``.
    choices: allowed values (shown in ``--help``), if a closed set.
    nargs: ``"+"`` for a flag that takes several words (one per element).
    flag_bool: a ``--x/--no-x`` switch rather than a flag with a value.
    expected: what a bad text should have been, for the error message.
  """

  parse: Callable[[str], Any]
  format: Callable[[Any], str]
  metavar: str | None = None
  choices: tuple[str, ...] | None = None
  nargs: str | None = None
  flag_bool: bool = False
  expected: str = "a value"
  optional: bool = False


def _num(v: float) -> str:
  return repr(float(v))


def _parse_float(text: str) -> float:
  return float(text)


def _parse_int(text: str) -> int:
  return int(text)


def _optional(codec: Codec) -> Codec:
  """``none`` stands for ``None`` (e.g. ``--size none`` keeps the input's size)."""
  return dataclasses.replace(
    codec,
    parse=lambda t: None if t.strip().lower() == "none" else codec.parse(t),
    format=lambda v: "none" if v is None else codec.format(v),
    metavar=f"{codec.metavar}|none",
    optional=True,
  )


def _tuple(parse_one: Callable[[str], Any], format_one: Callable[[Any], str], metavar: str) -> Codec:
  def parse(text: str) -> tuple:
    items = tuple(parse_one(v.strip()) for v in text.split(",") if v.strip())
    if not items:
      raise ValueError("no values")
    return items

  return Codec(parse, lambda v: ",".join(format_one(x) for x in v), metavar, expected="comma-separated values")


def _parse_layers(text: str) -> Layers:
  out = []
  for item in text.split(","):
    item = item.strip()
    if item:
      name, _, w = item.partition(":")
      out.append((name.strip(), float(w) if w.strip() else 1.0))
  return tuple(out)


def _format_layers(v: Layers) -> str:
  return ",".join(f"{n}:{_num(w)}" for n, w in v) or "none"


FLOAT = Codec(_parse_float, _num, "X", expected="a number")
INT = Codec(_parse_int, str, "N", expected="an integer")
TEXT = Codec(str, str, "TEXT")
LAYERS = Codec(
  lambda t: () if t.strip().lower() == "none" else _parse_layers(t),
  _format_layers,
  "L[:W],...|none",
  expected="layers with optional weights, e.g. relu1_1:1,relu2_1:0.75",
)
BOOL = Codec(bool, lambda v: "", flag_bool=True)


def _parse_steps(text: str) -> int | tuple[int, ...]:
  return _tuple(_parse_int, str, "N").parse(text) if "," in text else _parse_int(text)


def _parse_tile(text: str) -> int | str:
  return "auto" if text.strip().lower() == "auto" else int(text)


TILE = _optional(Codec(_parse_tile, str, "PX|auto", expected="a tile side in px, auto or none"))


def _choices(options: Sequence[str], *, optional: bool = False) -> Codec:
  codec = Codec(str, str, None, tuple(options))
  return _optional(codec) if optional else codec


# --------------------------------------------------------------------------- checks


def _finite_nonneg(v: Any) -> str | None:
  ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
  return None if ok else "must be a finite non-negative number"


def _positive(v: Any) -> str | None:
  ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
  return None if ok else "must be a positive number"


def _unit(v: Any) -> str | None:
  ok = not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v < 1
  return None if ok else "must be in [0, 1)"


def _int_at_least(lo: int) -> Callable[[Any], str | None]:
  def check(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= lo
    return None if ok else ("must be a positive integer" if lo == 1 else "must be a non-negative integer")

  return check


def _int_or_tuple(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
  def either(v: Any) -> str | None:
    return _tuple_of(check)(v) if isinstance(v, tuple) else check(v)

  return either


def _tile_check(v: Any) -> str | None:
  if v is None or v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
    return None
  return "must be a positive integer (px), 'auto' or None"


def _optional_check(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
  return lambda v: None if v is None else check(v)


def _one_of(options: Sequence[str]) -> Callable[[Any], str | None]:
  return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _layers_check(v: Any) -> str | None:
  if not isinstance(v, tuple) or not all(isinstance(p, tuple) and len(p) == 2 for p in v):
    return "must be a tuple of (layer, weight) pairs"
  try:
    names = [vgg.canonical_layer(n) for n, _ in v]
  except ValueError as e:
    return f"names {e}"
  if len(set(names)) != len(names):
    return "names a layer twice"
  for _, w in v:
    if _finite_nonneg(w):
      return f"has weight {w!r}; layer weights must be finite non-negative numbers"
  return None


def _tuple_of(check: Callable[[Any], str | None], *, increasing: bool = False) -> Callable[[Any], str | None]:
  def check_all(v: Any) -> str | None:
    if not isinstance(v, tuple) or not v:
      return "must be a non-empty tuple"
    for x in v:
      msg = check(x)
      if msg:
        return f"has {x!r}, which {msg}"
    if increasing and list(v) != sorted(v):
      return "must go from coarse to fine (increasing)"
    return None

  return check_all


def _nonempty_text(v: Any) -> str | None:
  return None if isinstance(v, str) and v else "must be a non-empty string"


# --------------------------------------------------------------------------- declarations


def setting(
  default: Any,
  help: str,  # noqa: A002 - argparse's word
  *,
  codec: Codec,
  check: Callable[[Any], str | None] | None = None,
  flag: str | None = None,
  resumable: bool = False,
) -> Any:
  """Declares one setting: its default, flag, help, codec and check.

  Args:
    default: the value when no preset or flag sets it.
    help: one line for ``--help``.
    codec: how it travels as flag text.
    check: returns ``None`` or what is wrong (the message names the field); by default
      the codec's choices.
    flag: the flag; default ``--`` plus the field name with dashes.
    resumable: may differ between a checkpoint and the run that resumes it.
  """
  if check is None and codec.choices:
    check = _one_of(codec.choices)
    check = _optional_check(check) if codec.optional else check
  meta = {"help": help, "codec": codec, "check": check, "flag": flag, "resumable": resumable}
  return dataclasses.field(default=default, metadata=meta)


class Section:
  """Base of a settings section: each field's own check, then the section's ``_check``."""

  def __post_init__(self):
    for f in dataclasses.fields(self):
      check = f.metadata.get("check")
      msg = check(getattr(self, f.name)) if check else None
      if msg:
        raise InputError(f"{f.name} {msg}; got {getattr(self, f.name)!r}")
    self._check()

  def _check(self) -> None:
    pass

  def replace(self, **changes: Any):
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class LossSettings(Section):
  """The objective: ``alpha * content + beta * style + tv_weight * TV`` (:mod:`jaxstyle.losses`)."""

  content_layers: Layers = setting(
    (("relu4_2", 1.0),),
    "content layers and weights, e.g. relu4_2 or relu4_2:1,relu5_2:0.5",
    codec=LAYERS,
    check=_layers_check,
  )
  style_layers: Layers = setting(
    tuple((n, 1.0) for n in vgg.STYLE_LAYERS),
    "style layers and weights, e.g. relu1_1:1,relu2_1:0.75",
    codec=LAYERS,
    check=_layers_check,
  )
  content_weight: float = setting(1.0, "alpha, the content weight", codec=FLOAT, check=_finite_nonneg)
  style_weight: float = setting(1e3, "beta, the style weight", codec=FLOAT, check=_finite_nonneg)
  tv_weight: float = setting(0.0, "total-variation weight (TV on [0, 1] RGB)", codec=FLOAT, check=_finite_nonneg)
  gram_norm: str = setting(
    _SPEC.gram_norm,
    "Gram matrix divided by nothing, H*W or C*H*W",
    codec=_choices(losses.GRAM_NORMS),
  )
  content_reduction: str = setting(
    _SPEC.content_reduction,
    "content squared errors: sum, mean or half sum",
    codec=_choices(losses.REDUCTIONS),
  )
  style_reduction: str = setting(
    _SPEC.style_reduction,
    "style squared Gram errors: sum, mean or half sum",
    codec=_choices(losses.REDUCTIONS),
  )
  style_layer_norm: str = setting(
    _SPEC.style_layer_norm,
    "divide each style layer's loss by its C*H*W (the PyTorch course)",
    codec=_choices(("none", "chw")),
  )
  tv_kind: str = setting(
    _SPEC.tv_kind, "TV of absolute (l1) or squared (l2) differences", codec=_choices(losses.TV_KINDS)
  )
  tv_reduction: str = setting(_SPEC.tv_reduction, "TV summed or averaged", codec=_choices(("sum", "mean")))

  def __post_init__(self):
    for name in ("content_layers", "style_layers"):  # bare names weigh 1
      v = getattr(self, name)
      if isinstance(v, (tuple, list)):
        object.__setattr__(self, name, tuple((p, 1.0) if isinstance(p, str) else tuple(p) for p in v))
    super().__post_init__()

  def _check(self) -> None:
    if not self.content_layers and not self.style_layers:
      raise InputError("content_layers and style_layers are both empty; at least one layer is needed")

  @property
  def layers(self) -> tuple[str, ...]:
    """Canonical names of every layer the objective reads."""
    names = [vgg.canonical_layer(n) for n, _ in self.content_layers + self.style_layers]
    return tuple(dict.fromkeys(names))

  def weights(self) -> losses.LossWeights:
    """The differentiable weights as a :class:`~jaxstyle.losses.LossWeights` pytree of scalars."""
    f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return losses.LossWeights(
      content=f32(self.content_weight),
      style=f32(self.style_weight),
      tv=f32(self.tv_weight),
      content_layers={vgg.canonical_layer(n): f32(w) for n, w in self.content_layers},
      style_layers={vgg.canonical_layer(n): f32(w) for n, w in self.style_layers},
    )

  def spec(self) -> losses.LossSpec:
    """The static form of the objective."""
    return losses.LossSpec(
      gram_norm=self.gram_norm,
      content_reduction=self.content_reduction,
      style_reduction=self.style_reduction,
      style_layer_norm=self.style_layer_norm,
      tv_kind=self.tv_kind,
      tv_reduction=self.tv_reduction,
    )


@dataclasses.dataclass(frozen=True)
class OptimizerSettings(Section):
  """How the image is optimized; every kind goes through one optax step (:mod:`jaxstyle.optimize`)."""

  kind: str = setting("lbfgs", "lbfgs or adam", codec=_choices(OPTIMIZERS), flag="--optimizer")
  learning_rate: float | None = setting(
    None,
    "Adam's step in [0, 1] pixel units; scales L-BFGS's line-searched step (none: 1 for L-BFGS, 0.02 for Adam)",
    codec=_optional(FLOAT),
    check=_optional_check(_positive),
    flag="--lr",
  )
  line_search: str = setting(
    "backtracking",
    "L-BFGS line search: backtracking (Armijo, cheap under vmap) or zoom (optax's strong Wolfe)",
    codec=_choices(LINE_SEARCHES),
  )
  memory: int = setting(
    100, "L-BFGS correction pairs (each holds two images)", codec=INT, check=_int_at_least(1), flag="--lbfgs-memory"
  )
  b1: float = setting(0.9, "Adam's first-moment decay", codec=FLOAT, check=_unit, flag="--adam-b1")
  b2: float = setting(0.999, "Adam's second-moment decay", codec=FLOAT, check=_unit, flag="--adam-b2")
  eps: float = setting(1e-8, "Adam's epsilon", codec=FLOAT, check=_positive, flag="--adam-eps")
  clip: bool = setting(False, "project the image onto [0, 1] after every step", codec=BOOL)

  @property
  def lr(self) -> float:
    """The learning rate in effect."""
    return DEFAULT_LR[self.kind] if self.learning_rate is None else float(self.learning_rate)


@dataclasses.dataclass(frozen=True)
class ImageSettings(Section):
  """Sizes, colour, the starting image, masks and region maps."""

  size: int | None = setting(
    512,
    "longest side of the output in px (none: the content's own size)",
    codec=_optional(INT),
    check=_optional_check(_int_at_least(1)),
  )
  scales: tuple[int, ...] | None = setting(
    None,
    "coarse-to-fine sizes, e.g. 256,512,1024, or 'auto' for a x2 ladder from 256 up to --size",
    codec=_optional(
      Codec(
        lambda t: t.strip() if t.strip() == "auto" else _tuple(int, str, "S").parse(t),
        lambda v: ",".join(map(str, v)),
        "S,...|auto",
      )
    ),
    check=_optional_check(_tuple_of(_int_at_least(1), increasing=True)),
  )
  coarse_steps: int | tuple[int, ...] | None = setting(
    None,
    "steps at each scale but the last: one count for all, or one per coarse scale, e.g. 300,100,30 (none: --steps)",
    codec=_optional(
      Codec(
        _parse_steps,
        lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else str(v),
        "N[,N...]",
        expected="an integer, or one per coarse scale",
      )
    ),
    check=_optional_check(_int_or_tuple(_int_at_least(0))),
  )
  style_scale: float = setting(1.0, "style image size relative to the content", codec=FLOAT, check=_positive)
  style_blend: tuple[float, ...] | None = setting(
    None,
    "weights of several style images (none: equal)",
    codec=_optional(_tuple(float, _num, "W,...")),
    check=_optional_check(_tuple_of(_finite_nonneg)),
  )
  preserve_color: str = setting(
    "none",
    "keep the content's colours: transfer luminance only, or match the style's colours first",
    codec=_choices(COLOR_MODES),
  )
  init: str = setting(
    "content",
    "start from: content, noise, gray, mean (the ImageNet mean pixel plus faint noise, as neural-style), style "
    "(noise with the style's colours), fast (the feed-forward network's output), or an image path",
    codec=TEXT,
    check=_nonempty_text,
  )
  seed: int = setting(0, "random seed of the noise starts", codec=INT, check=_int_at_least(0))
  mask: str | None = setting(
    None, "mask image: white stylizes, black keeps the content", codec=_optional(Codec(str, str, "MASK"))
  )
  style_regions: tuple[str, ...] | None = setting(
    None,
    "one region map per style image (white: that style applies there)",
    codec=Codec(lambda t: t, str, "MAP", nargs="+"),
  )

  def __post_init__(self):
    if self.scales == "auto":  # resolved here so that the record holds the sizes run
      object.__setattr__(self, "scales", auto_scales(self.size or 512))
    super().__post_init__()

  def _check(self) -> None:
    if self.style_blend is not None and sum(self.style_blend) <= 0:
      raise InputError("style_blend weights must not all be zero")
    if isinstance(self.coarse_steps, tuple):
      coarse = len(self.scales or ()) - 1
      if len(self.coarse_steps) != coarse:
        raise InputError(
          f"coarse_steps has {len(self.coarse_steps)} counts for {max(coarse, 0)} coarse scales "
          "(give one count, or one per scale but the last)"
        )

  @property
  def output_size(self) -> int | None:
    """The longest side of the result (the last scale, or ``size``)."""
    return self.scales[-1] if self.scales else self.size

  @property
  def init_is_image(self) -> bool:
    """``init`` names an image file."""
    return self.init not in INIT_KINDS


@dataclasses.dataclass(frozen=True)
class NetworkSettings(Section):
  """The VGG19 as the objective runs it."""

  pooling: str = setting("max", "VGG pooling: max or avg", codec=_choices(POOLINGS))
  native_pooling: str | None = setting(
    None,
    "the pooling the loss weights were calibrated for; with the other one pool outputs are rescaled",
    codec=_choices(POOLINGS, optional=True),
  )
  conv: str = setting(
    "auto",
    "VGG convolutions: auto (Winograd on CPU, direct on GPU/TPU), direct or winograd",
    codec=_choices(vgg.CONV_ALGORITHMS),
  )
  tile: int | str | None = setting(
    None,
    "run the VGG tile by tile (exact; memory bounded by the tile): a tile side in px, auto (only when the whole "
    "image does not fit in memory) or none",
    codec=TILE,
    check=_tile_check,
  )


@dataclasses.dataclass(frozen=True)
class RunSettings(Section):
  """How long, and when to report and save. None of these changes the result."""

  steps: int = setting(500, "optimizer steps (at the last scale)", codec=INT, check=_int_at_least(0), resumable=True)
  report_every: int = setting(
    25, "steps between progress reports and checkpoints", codec=INT, check=_int_at_least(1), resumable=True
  )
  save_every: int | None = setting(
    None,
    "also write OUT_<step>.ext every N steps",
    codec=_optional(INT),
    check=_optional_check(_int_at_least(1)),
    resumable=True,
  )
  chunk: int = setting(
    50,
    "most steps per compiled chunk (a chunk also ends where a report or save is due)",
    codec=INT,
    check=_int_at_least(1),
    resumable=True,
  )


SECTIONS: dict[str, type] = {
  "loss": LossSettings,
  "optimizer": OptimizerSettings,
  "images": ImageSettings,
  "network": NetworkSettings,
  "run": RunSettings,
}


@dataclasses.dataclass(frozen=True)
class StyleConfig:
  """Everything that defines a stylization. Start from a preset and :meth:`set` fields.

  Attributes:
    name: the preset it came from (``--preset``).
    loss, optimizer, images, network, run: the sections.
  """

  name: str = "custom"
  loss: LossSettings = dataclasses.field(default_factory=LossSettings)
  optimizer: OptimizerSettings = dataclasses.field(default_factory=OptimizerSettings)
  images: ImageSettings = dataclasses.field(default_factory=ImageSettings)
  network: NetworkSettings = dataclasses.field(default_factory=NetworkSettings)
  run: RunSettings = dataclasses.field(default_factory=RunSettings)

  def set(self, **changes: Any) -> StyleConfig:
    """A copy with fields changed by their flat names (``steps=100``, ``style_weight=1e4``)
    or whole sections (``run=RunSettings(...)``).

    Switching ``kind`` (the optimizer) without a ``learning_rate`` resets it to the new
    kind's default, since L-BFGS and Adam steps live on different scales. Changing ``size``
    without ``scales`` when the scales are the automatic ladder of the old size
    (:func:`auto_scales`) re-derives the ladder for the new size (none for ``size=None``), so
    that ``--size`` means the output's size with a coarse-to-fine preset too.
    """
    top = {k: changes.pop(k) for k in list(changes) if k == "name" or k in SECTIONS}
    for k, v in top.items():
      if k in SECTIONS and not isinstance(v, SECTIONS[k]):
        hint = " (the optimizer's kind is set with kind=...)" if k == "optimizer" else ""
        raise InputError(f"{k} takes a {SECTIONS[k].__name__}, not {v!r}{hint}")
    config = dataclasses.replace(self, **top) if top else self
    per: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
      section = _OWNER.get(key)
      if section is None:
        raise InputError(f"unknown setting {key!r}")
      per.setdefault(section, {})[key] = value
    im = per.get("images", {})
    if "size" in im and "scales" not in im and config.images.scales is not None:
      if config.images.scales == auto_scales(config.images.size or 512):  # an automatic ladder follows the size
        im["scales"] = None if im["size"] is None else "auto"
    opt = per.get("optimizer", {})
    if "kind" in opt and opt["kind"] != config.optimizer.kind and "learning_rate" not in opt:
      opt["learning_rate"] = None
    for section, values in per.items():
      config = dataclasses.replace(config, **{section: getattr(config, section).replace(**values)})
    return config

  @property
  def layers(self) -> tuple[str, ...]:
    return self.loss.layers

  def to_dict(self) -> dict:
    """A JSON-ready nested record (tuples become lists)."""
    return {"name": self.name, **{s: dataclasses.asdict(getattr(self, s)) for s in SECTIONS}}

  @classmethod
  def from_dict(cls, record: Mapping[str, Any]) -> StyleConfig:
    """The inverse of :meth:`to_dict`."""
    sections = {}
    for s, kind in SECTIONS.items():
      values = dict(record.get(s, {}))
      for f in dataclasses.fields(kind):
        if isinstance(values.get(f.name), list):
          values[f.name] = _as_tuple(values[f.name])
      sections[s] = kind(**values)
    return cls(name=record.get("name", "custom"), **sections)

  def flat(self) -> dict[str, Any]:
    """Every field by its flat name."""
    return {"name": self.name, **{d.field: getattr(getattr(self, d.section), d.field) for d in declarations()}}


def _as_tuple(v: Any) -> Any:
  return tuple(_as_tuple(x) for x in v) if isinstance(v, list) else v


# --------------------------------------------------------------------------- derived views


@dataclasses.dataclass(frozen=True)
class Declaration:
  """One setting as the CLI and records see it."""

  section: str
  field: str
  flag: str
  help: str
  codec: Codec
  default: Any
  resumable: bool

  @property
  def dest(self) -> str:
    return self.flag.lstrip("-").replace("-", "_")


def declarations(sections: Mapping[str, type] | None = None) -> Iterator[Declaration]:
  """Every setting of ``sections`` (default: :class:`StyleConfig`'s), in section order.

  Other commands declare their settings the same way (a ``_Section`` dataclass of
  :func:`setting` fields) and derive their flags from ``declarations({"name": TheirSettings})``.
  """
  for section, kind in (SECTIONS if sections is None else sections).items():
    for f in dataclasses.fields(kind):
      m = f.metadata
      flag = m["flag"] or "--" + f.name.replace("_", "-")
      yield Declaration(section, f.name, flag, m["help"], m["codec"], f.default, m["resumable"])


_OWNER = {d.field: d.section for d in declarations()}


def to_flags(config: StyleConfig) -> list[str]:
  """The command-line words that rebuild ``config`` on top of its preset (every field)."""
  words = ["--preset", config.name]
  for d in declarations():
    v = getattr(getattr(config, d.section), d.field)
    if d.codec.flag_bool:
      words.append(d.flag if v else "--no-" + d.flag[2:])
    elif d.codec.nargs == "+":
      if v:
        words += [d.flag, *map(str, v)]
    else:
      words += [d.flag, d.codec.format(v)]
  return words


def from_flags(base: StyleConfig, given: Mapping[str, Any]) -> StyleConfig:
  """``base`` with the flags given (a mapping from :class:`Declaration` ``dest`` to the
  parsed value; flags not given are absent)."""
  changes = {}
  for d in declarations():
    if d.dest in given:
      v = given[d.dest]
      changes[d.field] = tuple(v) if d.codec.nargs == "+" and v is not None else v
  return base.set(**changes)


def resumable_fields() -> set[str]:
  """Settings that may change between a checkpoint and the run that resumes it."""
  return {f"{d.section}.{d.field}" for d in declarations() if d.resumable}


def auto_scales(size: int, *, start: int = 256, factor: float = 2.0) -> tuple[int, ...]:
  """A geometric coarse-to-fine ladder ending at ``size``: ``auto_scales(1024) == (256, 512, 1024)``."""
  out = [size]
  while out[-1] / factor >= start:
    out.append(round(out[-1] / factor))
  return tuple(reversed(out))
