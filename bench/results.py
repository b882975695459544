"""bench/RESULTS.md holds one section per benchmark script; each script rewrites only its own."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, lines: list[str], path: Path = RESULTS) -> Path:
  """Replaces the block between ``<!-- name -->`` and ``<!-- /name -->`` (or appends it)."""
  block = f"<!-- {name} -->\n" + "\n".join(lines).rstrip("\n") + f"\n<!-- /{name} -->\n"
  text = path.read_text() if path.exists() else ""
  pattern = re.compile(rf"<!-- {re.escape(name)} -->\n.*?<!-- /{re.escape(name)} -->\n", re.S)
  if pattern.search(text):
    text = pattern.sub(lambda _: block, text)
  else:
    text = (text.rstrip("\n") + "\n\n" if text else "") + block
  path.write_text(text)
  return path
