"""Files in general: atomic writes, output checks, JSON records beside outputs, digests, the cache folder.

Every writer of the project (images, weights, checkpoints, records) goes through :func:`atomic_path`, so a
file is either untouched or complete; errors are :class:`~jaxstyle.errors.FileError` with one line that
names the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from jaxstyle.errors import FileError, one_line


def cache_dir() -> Path:
  """``$XDG_CACHE_HOME/jaxstyle`` (``~/.cache/jaxstyle`` by default): downloads and compiled programs."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "jaxstyle"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
  """Yields a temporary path beside ``path``; renames it onto ``path`` on success.

  On any error the temporary file is removed, so ``path`` is either untouched or complete.

  Raises:
    FileError: the folder does not exist or is not writable.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileError(f"{path}: directory {directory} does not exist")
  base = os.path.basename(path)
  try:
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part" + os.path.splitext(base)[1], dir=directory)
  except OSError as e:
    raise FileError(f"{path}: cannot write ({one_line(e)})") from None
  os.close(fd)
  umask = os.umask(0)
  os.umask(umask)
  try:
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make outputs private
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def check_writable(path: str | os.PathLike, *, suffixes: Iterable[str] | None = None, what: str = "output") -> None:
  """Raises :class:`FileError` unless ``path``'s folder exists and is writable, ``path`` is not a folder and
  (with ``suffixes``) its suffix is one of them. Run it before long work so a typo fails at once."""
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  if suffixes is not None and ext not in set(suffixes):
    raise FileError(f"{path}: unknown {what} format {ext or '(none)'}; use one of {', '.join(suffixes)}")
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileError(f"{path}: directory {directory} does not exist")
  if not os.access(directory, os.W_OK):
    raise FileError(f"{path}: directory {directory} is not writable")
  if os.path.isdir(path):
    raise FileError(f"{path}: is a directory")


def sidecar_path(output: str | os.PathLike) -> str:
  """The JSON record beside an output: ``out.png`` -> ``out.json``."""
  return os.path.splitext(os.fspath(output))[0] + ".json"


def json_default(o):
  """``json.dump``'s ``default`` for NumPy scalars and arrays."""
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray):
    return o.tolist()
  raise TypeError(type(o).__name__)


def write_json(path: str | os.PathLike, obj) -> None:
  """Writes ``obj`` as indented JSON, atomically."""
  with atomic_path(path) as tmp, open(tmp, "w") as f:
    json.dump(obj, f, indent=2, default=json_default)
    f.write("\n")


def file_digest(path: str | os.PathLike, algo: str) -> str:
  """The hex digest of a file's bytes (``"md5"``, ``"sha256"``), read in 1 MiB chunks."""
  h = hashlib.new(algo)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()
