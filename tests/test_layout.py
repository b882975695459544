"""The package's layout: subpackages by role whose imports run one way, from the command line down."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jaxstyle"
# Bottom to top: a layer may import its own and those before it (errors and samples are beside every layer).
LAYERS = ("nets", "io", "runtime", "objective", "settings", "fast", "optim", "video", "ui", "cli")
BESIDE = {"errors", "samples"}


def _imports(path: Path) -> set[str]:
  """The ``jaxstyle`` subpackages a module imports (``jaxstyle.x...`` and ``from jaxstyle import x``)."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "jaxstyle" else [])
    else:
      continue
    out |= {n.split(".")[1] for n in names if n.startswith("jaxstyle.") and n.count(".") >= 1}
  return out


def test_every_subpackage_says_what_lives_there_and_what_it_may_import():
  for layer in LAYERS:
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
    assert doc and "Imports" in doc, layer


def test_imports_run_one_way():
  bad = []
  for path in sorted(PACKAGE.rglob("*.py")):
    rel = path.relative_to(PACKAGE).parts
    if len(rel) == 1:  # the package's own __init__ (the public API) and __main__ import anything
      continue
    layer = rel[0]
    if layer in BESIDE:
      allowed = {layer}
    else:
      allowed = set(LAYERS[: LAYERS.index(layer) + 1]) | BESIDE
    for imported in _imports(path) - {"__version__"}:
      if imported not in allowed:
        bad.append(f"{'/'.join(rel)} imports jaxstyle.{imported}")
  assert not bad, bad


def test_no_module_is_left_at_the_top():
  top = {p.stem for p in PACKAGE.glob("*.py")}
  assert top == {"__init__", "__main__", "errors"}, top
