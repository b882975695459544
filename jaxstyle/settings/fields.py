"""Declaring a setting once: its type, default, help, constraint and flag, from which everything else follows.

A setting is a field of a frozen dataclass (a :class:`Settings`) whose annotation says what it holds and whose
:func:`setting` gives its default, one line of help and, where the type is not enough, a constraint. From the
annotation alone come how it travels as command-line text (:func:`codec_for`: ``int``, ``float``, ``str``,
``bool``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]``, unions of these, ``Annotated[X, Codec]``) and the
check that a value is of that type (:func:`conforms`). The CLI's flags, the sidecar record
(:meth:`Settings.to_dict`), the reproduction command (:func:`to_flags`), the mapping from flags back to
settings (:func:`from_flags`) and the resume check (:meth:`Settings.resumable_fields`) are derived from these
declarations, so adding a setting means adding one field, its use and its test.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal, Union

from jaxstyle.errors import InputError

Check = Callable[[Any], "str | None"]  # None, or what is wrong with a value (the message names the field)


# --------------------------------------------------------------------------- codecs


@dataclasses.dataclass(frozen=True)
class Codec:
  """How one setting travels as command-line text, and which values it holds.

  Attributes:
    parse: flag text to value (raises ``ValueError`` on bad text).
    format: value to flag text (``parse(format(v)) == v``).
    holds: whether a value is of this codec's type.
    metavar: the flag's placeholder in ``--help``.
    choices: allowed values (shown in ``--help``), if a closed set.
    nargs: ``"+"`` for a flag that takes several words (one per element).
    flag_bool: a ``--x/--no-x`` switch rather than a flag with a value.
    expected: what a bad text should have been, for the error message.
    kind: what a value of the wrong type should have been, for the error message.
  """

  parse: Callable[[str], Any]
  format: Callable[[Any], str]
  holds: Callable[[Any], bool]
  metavar: str | None = None
  choices: tuple[str, ...] | None = None
  nargs: str | None = None
  flag_bool: bool = False
  expected: str = "a value"
  kind: str = "a value"


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: float) -> str:
  return repr(float(v))


INT = Codec(int, str, _is_int, "N", expected="an integer", kind="an integer")
FLOAT = Codec(float, _num, _is_number, "X", expected="a number", kind="a number")
TEXT = Codec(str, str, lambda v: isinstance(v, str), "TEXT", expected="text", kind="text")
BOOL = Codec(bool, lambda v: "", lambda v: isinstance(v, bool), flag_bool=True, kind="true or false")


def choices(options: tuple[str, ...]) -> Codec:
  """One of a closed set of words."""
  return Codec(str, str, lambda v: v in options, None, options, kind=f"one of {', '.join(options)}")


def optional(codec: Codec) -> Codec:
  """``none`` stands for ``None`` (e.g. ``--size none`` keeps the input's size)."""
  return dataclasses.replace(
    codec,
    parse=lambda t: None if t.strip().lower() == "none" else codec.parse(t),
    format=lambda v: "none" if v is None else codec.format(v),
    holds=lambda v: v is None or codec.holds(v),
    metavar=None if codec.choices else f"{codec.metavar}|none",
    choices=None if codec.choices is None else (*codec.choices, "none"),
    kind=f"{codec.kind} or none",
  )


def sequence(one: Codec) -> Codec:
  """A non-empty tuple, written comma-separated (``256,512``)."""

  def parse(text: str) -> tuple:
    items = tuple(one.parse(v.strip()) for v in text.split(",") if v.strip())
    if not items:
      raise ValueError("no values")
    return items

  return Codec(
    parse,
    lambda v: ",".join(one.format(x) for x in v),
    lambda v: isinstance(v, tuple) and len(v) > 0 and all(one.holds(x) for x in v),
    f"{one.metavar or 'V'},...",
    expected=f"comma-separated values, each {one.expected}",
    kind=f"a non-empty tuple, each {one.kind}",
  )


def either(*codecs: Codec) -> Codec:
  """A union: text is read by the first codec whose words match (a closed set), else by the one for its shape
  (a comma means a sequence), else by the last; a value is formatted by the codec that holds it."""
  words = [c for c in codecs if c.choices]
  seqs = [c for c in codecs if not c.choices and c.metavar and c.metavar.endswith(",...")]
  scalars = [c for c in codecs if c not in words and c not in seqs]

  def parse(text: str):
    for c in words:
      if text.strip() in c.choices:
        return c.parse(text.strip())
    pick = seqs if ("," in text and seqs) else (scalars or seqs)
    return pick[0].parse(text)

  def format(v):
    return next(c for c in codecs if c.holds(v)).format(v)

  metavar = "|".join([*(c.metavar for c in scalars + seqs if c.metavar), *(w for c in words for w in c.choices)])
  return Codec(
    parse,
    format,
    lambda v: any(c.holds(v) for c in codecs),
    metavar,
    expected=" or ".join(c.expected if not c.choices else "/".join(c.choices) for c in codecs),
    kind=" or ".join(c.kind for c in codecs),
  )


def codec_for(annotation: Any) -> Codec:
  """The codec of a field's type: ``int``, ``float``, ``str``, ``bool``, ``Literal[...]``, ``tuple[X, ...]``,
  ``X | None``, unions of those, or ``Annotated[X, codec]`` (a type with a codec of its own)."""
  origin, args = typing.get_origin(annotation), typing.get_args(annotation)
  if origin is Annotated:
    return next(a for a in args[1:] if isinstance(a, Codec))
  if origin is Literal:
    return choices(tuple(args))
  if origin in (Union, types.UnionType):
    members = [a for a in args if a is not type(None)]
    inner = codec_for(members[0]) if len(members) == 1 else either(*map(codec_for, members))
    return optional(inner) if len(members) < len(args) else inner
  if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
    return sequence(codec_for(args[0]))
  simple = {int: INT, float: FLOAT, str: TEXT, bool: BOOL}
  if annotation in simple:
    return simple[annotation]
  raise TypeError(f"no codec for the type {annotation!r}; annotate it with Annotated[..., Codec(...)]")


# --------------------------------------------------------------------------- constraints


def finite_nonneg(v: Any) -> str | None:
  return None if _is_number(v) and math.isfinite(v) and v >= 0 else "must be a finite non-negative number"


def positive(v: Any) -> str | None:
  return None if _is_number(v) and math.isfinite(v) and v > 0 else "must be a positive number"


def unit(v: Any) -> str | None:
  return None if _is_number(v) and 0 <= v < 1 else "must be in [0, 1)"


def closed_unit(v: Any) -> str | None:
  return None if _is_number(v) and 0 <= v <= 1 else "must be in [0, 1]"


def at_least(lo: float) -> Check:
  """Numbers (or every number of a tuple) of at least ``lo``."""

  def check(v: Any) -> str | None:
    values = v if isinstance(v, tuple) else (v,)
    if all(_is_number(x) and x >= lo for x in values):
      return None
    if all(_is_int(x) for x in values):
      return {0: "must be a non-negative integer", 1: "must be a positive integer"}.get(lo, f"must be at least {lo}")
    return f"must be a number of at least {lo}"

  return check


def each(check: Check) -> Check:
  """``check`` on every element of a tuple (``None`` passes)."""

  def check_all(v: Any) -> str | None:
    for x in () if v is None else v:
      msg = check(x)
      if msg:
        return f"has {x!r}, which {msg}"
    return None

  return check_all


def increasing(v: Any) -> str | None:
  return (
    None
    if v is None or not isinstance(v, tuple) or list(v) == sorted(v)
    else "must go from coarse to fine (increasing)"
  )


# --------------------------------------------------------------------------- declarations


def setting(
  default: Any,
  help: str,  # noqa: A002 - argparse's word
  *,
  check: Check | None = None,
  flag: str | None = None,
  resumable: bool = False,
) -> Any:
  """Declares one setting of a :class:`Settings` dataclass; its type is the field's annotation.

  Args:
    default: the value when no preset or flag sets it.
    help: one line for ``--help``.
    check: a constraint beyond the type (``None`` or what is wrong; ``None`` values are the type's concern).
    flag: the flag; default ``--`` plus the field name with dashes.
    resumable: may differ between a checkpoint and the run that resumes it.
  """
  meta = {"help": help, "check": check, "flag": flag, "resumable": resumable}
  return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class Declaration:
  """One setting as the CLI and records see it.

  Attributes:
    section: the section holding it (``""`` in a flat family).
    field: its name; unique over a family, so ``set`` takes it flat.
    flag: its command-line flag.
    help: one line.
    codec: how it travels as text.
    default: its default.
    resumable: may change on resume.
  """

  section: str
  field: str
  flag: str
  help: str
  codec: Codec
  default: Any
  resumable: bool

  @property
  def dest(self) -> str:
    """The argparse destination of its flag."""
    return self.flag.lstrip("-").replace("-", "_")

  @property
  def path(self) -> str:
    """``section.field`` (``field`` in a flat family), as records and resume checks name it."""
    return f"{self.section}.{self.field}" if self.section else self.field


def _hints(cls: type) -> dict[str, Any]:
  return typing.get_type_hints(cls, include_extras=True)


class Settings:
  """Base of every settings dataclass: the sections of :class:`~jaxstyle.settings.style.StyleConfig`, and
  the flat families :class:`~jaxstyle.settings.fast.FastSettings` and
  :class:`~jaxstyle.settings.train.TrainSettings`.

  On construction each field is checked against its type, then its constraint, then the whole by
  :meth:`_check`; a bad value raises :class:`~jaxstyle.errors.InputError` with one line naming the field.
  A field whose type is another :class:`Settings` is a section (a nested family).
  """

  def __post_init__(self):
    for f, codec in _fields(type(self)):
      value = getattr(self, f.name)
      if codec is None:
        continue
      if not codec.holds(value):
        raise InputError(f"{f.name} must be {codec.kind}; got {value!r}")
      msg = f.metadata["check"](value) if f.metadata.get("check") and value is not None else None
      if msg:
        raise InputError(f"{f.name} {msg}; got {value!r}")
    self._check()

  def _check(self) -> None:
    """Checks that span fields (none by default)."""

  def replace(self, **changes: Any):
    """A copy with fields changed (and checked again)."""
    return dataclasses.replace(self, **changes)

  def set(self, **changes: Any):
    """A copy with fields changed by their (flat) names; families with sections route them."""
    unknown = sorted(set(changes) - {d.field for d in type(self).declarations()})
    if unknown:
      raise InputError(f"unknown setting {unknown[0]!r}")
    return self.replace(**changes)

  def to_dict(self) -> dict:
    """A JSON-ready record (tuples become lists, sections nested dicts)."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, record: Mapping[str, Any]):
    """The inverse of :meth:`to_dict`."""
    values = {}
    for f, codec in _fields(cls):
      if f.name not in record:
        continue
      v = record[f.name]
      values[f.name] = _hints(cls)[f.name].from_dict(v) if codec is None else _as_tuple(v)
    return cls(**values)

  @classmethod
  def declarations(cls, section: str = "") -> Iterator[Declaration]:
    """Every setting, sections' in turn (in field order)."""
    for f, codec in _fields(cls):
      if codec is None:
        yield from _hints(cls)[f.name].declarations(f.name)
        continue
      flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
      yield Declaration(section, f.name, flag, f.metadata["help"], codec, f.default, f.metadata["resumable"])

  @classmethod
  def resumable_fields(cls) -> set[str]:
    """Settings that may change between a checkpoint and the run that resumes it (by :attr:`Declaration.path`)."""
    return {d.path for d in cls.declarations() if d.resumable}

  def value(self, d: Declaration) -> Any:
    """The value of one of :meth:`declarations`."""
    return getattr(getattr(self, d.section) if d.section else self, d.field)


def _fields(cls: type) -> list[tuple[dataclasses.Field, Codec | None]]:
  """Each setting with its codec, and each section with ``None``; other fields (a label such as a preset's
  name, not declared with :func:`setting`) are not settings."""
  hints = _hints(cls)
  out = []
  for f in dataclasses.fields(cls):
    kind = hints[f.name]
    if isinstance(kind, type) and issubclass(kind, Settings):
      out.append((f, None))
    elif "help" in f.metadata:
      out.append((f, codec_for(kind)))
  return out


def _as_tuple(v: Any) -> Any:
  return tuple(_as_tuple(x) for x in v) if isinstance(v, list) else v


# --------------------------------------------------------------------------- flags


def to_flags(settings: Settings) -> list[str]:
  """The command-line words that give every field of ``settings`` its value (a bare ``--x`` or ``--no-x``
  for a switch; a multi-word flag is left out when empty)."""
  words = []
  for d in type(settings).declarations():
    v = settings.value(d)
    if d.codec.flag_bool:
      words.append(d.flag if v else "--no-" + d.flag[2:])
    elif d.codec.nargs == "+":
      if v:
        words += [d.flag, *map(str, v)]
    else:
      words += [d.flag, d.codec.format(v)]
  return words


def from_flags(base: Settings, given: Mapping[str, Any]) -> Settings:
  """``base`` with the flags given: a mapping from :attr:`Declaration.dest` to the parsed value (flags not
  given are absent)."""
  changes = {}
  for d in type(base).declarations():
    if d.dest in given:
      v = given[d.dest]
      changes[d.field] = tuple(v) if d.codec.nargs == "+" and v is not None else v
  return base.set(**changes)
