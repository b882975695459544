"""The README's Python API snippet runs as written (smaller, with the tiny network)."""

import re
from pathlib import Path

import numpy as np
import pytest

import jaxstyle as js
from tests.conftest import CONTENT, STYLE

README = Path(__file__).resolve().parents[1] / "README.md"


def snippet() -> str:
  text = README.read_text()
  section = text[text.index("## Python API") :]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_python_api_snippet_runs(files, monkeypatch):
  """Run from a folder holding ``photo.jpg`` and ``painting.jpg``, with the tiny VGG as the default weights
  (``files`` sets ``$JAXSTYLE_WEIGHTS``) and the sizes and step counts cut down; every name it uses must exist
  and every result it names must be there."""
  js.save_image(files / "photo.jpg", CONTENT)
  js.save_image(files / "painting.jpg", STYLE)
  monkeypatch.chdir(files)
  code = snippet()
  small = code.replace("size=384, steps=200", "size=24, steps=4")
  assert small != code, "the snippet's sizes moved: update this test"
  scope: dict = {}
  exec(compile(small, str(README), "exec"), scope)  # noqa: S102 - the README's own code
  assert scope["g"].shape == (1, 4, 4) and set(scope["feats"]) == {"relu1_1", "relu4_2"}
  result, batch = scope["result"], scope["batch"]
  assert result.status == "completed" and result.steps_done == 4 and (files / "out.png").exists()
  assert max(np.asarray(result.image).shape[:2]) == 24
  assert batch.images.shape[0] == 3 and len(batch.losses) == 3
