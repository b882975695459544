"""Shared fixtures. Strict NumPy semantics everywhere; a tiny random VGG for speed."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
os.environ["JAXSTYLE_COMPILATION_CACHE"] = ""  # hermetic: the CLI's on-disk cache stays off in tests

from jaxstyle.io import images as _images  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.nets import vgg  # noqa: E402

TINY_WIDTHS = (4, 8, 8, 8, 8)
EPS32 = float(np.finfo(np.float32).eps)
VARIANTS = ("plain", "jit", "vmap")
SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


REAL = {"real_params", "real_fast", "shared_images"}


def pytest_collection_modifyitems(config, items):
  """Tests that read the real weights or the shared photographs are ``real_weights`` (not in the fast tier)."""
  for item in items:
    if REAL & set(getattr(item, "fixturenames", ())):
      item.add_marker(pytest.mark.real_weights)


@pytest.fixture(scope="session")
def tiny_params():
  """A VGG19 with 4-8 channels per block and random weights."""
  return vgg.init_params(jax.random.key(0), widths=TINY_WIDTHS)


@pytest.fixture(scope="session")
def tiny_weights_file(tmp_path_factory, tiny_params):
  """The tiny network saved in our HDF5 layout."""
  path = tmp_path_factory.mktemp("weights") / "tiny.h5"
  tree = jax.tree.map(np.asarray, tiny_params)
  weights.save_weights(path, tree, source="random (tests)", checksum="none")
  return path


def variants(fn):
  """The same function plain, jitted, and vmapped over a new leading axis of size 1 of every
  argument (outputs unbatched again), so one test body checks all three."""
  return {
    "plain": fn,
    "jit": jax.jit(fn),
    "vmap": lambda *a: jax.tree.map(lambda y: y[0], jax.vmap(fn)(*jax.tree.map(lambda x: jnp.asarray(x)[None], a))),
  }


def f32_tolerance(terms: int, scale: float, *, stages: int = 1) -> float:
  """An absolute tolerance for two float32 computations of the same value whose sums run in other orders.

  A sum of ``n`` float32 terms of magnitude ``scale`` is off by at most about ``n * eps * scale`` and typically
  ``sqrt(n) * eps * scale`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2002, sec. 3.1 and
  its probabilistic estimate); each of ``stages`` such sums in a row (layers of a network, steps of an
  iteration) adds its own, and either side of the comparison has them. So: ``2 * stages * 4 * sqrt(n) * eps *
  scale``, the typical estimate with a margin of 4, which one CPU's vector width or another's blocking moves
  by far less. Tolerances written as such numbers hold on any CPU XLA supports, not only the one a test was
  first run on.
  """
  return 2 * stages * 4 * float(np.sqrt(terms)) * EPS32 * scale


def assert_f32_close(actual, desired, *, terms: int, stages: int = 1, scale: float | None = None) -> None:
  """``assert_allclose`` within :func:`f32_tolerance`; ``scale`` defaults to the largest magnitude of
  ``desired``."""
  desired = np.asarray(desired, np.float64)
  scale = float(np.max(np.abs(desired))) if scale is None else scale
  np.testing.assert_allclose(
    np.asarray(actual, np.float64), desired, rtol=0, atol=f32_tolerance(terms, scale, stages=stages)
  )


def rng_image(seed: int, h: int, w: int) -> np.ndarray:
  """A smooth random RGB image in [0, 1] (``(h, w, 3)`` float32)."""
  rng = np.random.default_rng(seed)
  small = rng.uniform(0, 1, (max(2, h // 4), max(2, w // 4), 3)).astype(np.float32)
  from jaxstyle.io.images import resize

  return resize(small, (h, w))


@pytest.fixture(scope="session")
def real_params():
  """The real VGG19 weights; skipped when absent unless JAXSTYLE_REQUIRE_WEIGHTS=1
  (as in `make test` and CI), where absence is a failure."""
  path = weights.default_path()
  if not path.exists():
    if os.environ.get("JAXSTYLE_REQUIRE_WEIGHTS") == "1":
      pytest.fail(f"real weights required but missing at {path}; run 'make weights'")
    pytest.skip(f"real weights not at {path} (run 'make weights')")
  return weights.load_vgg19(path)


@pytest.fixture(scope="session")
def real_fast():
  """The converted fast networks' files (arbitrary, 26-style); skipped or failed like :func:`real_params`."""
  from jaxstyle.io import magenta_weights

  a, m = magenta_weights.default_paths()
  if not (a.exists() and m.exists()):
    if os.environ.get("JAXSTYLE_REQUIRE_WEIGHTS") == "1":
      pytest.fail(f"fast weights required but missing at {a}; run 'make weights'")
    pytest.skip("fast weights missing (run 'jaxstyle weights fetch --fast')")
  return a, m


@pytest.fixture(scope="session")
def shared_images():
  if not SHARED_IMAGES.is_dir():
    pytest.skip(f"{SHARED_IMAGES} not present")
  return SHARED_IMAGES


CONTENT = rng_image(0, 32, 40)
STYLE = rng_image(1, 40, 32)


def targets_for(params, content, style, config, **kw):
  """:func:`jaxstyle.objective.targets.compute_targets` with a config's form, blend and tile (as a run computes
  them)."""
  from jaxstyle.objective.targets import compute_targets

  return compute_targets(
    params, content, style, config.form(), blend=config.images.style_blend, tile=config.network.tile, **kw
  )


def tiny(**kw):
  """The ``gatys`` preset for tiny tests: input size kept, 6 steps, reports every 3."""
  from jaxstyle.settings import presets

  return presets.gatys(**{"size": None, "steps": 6, "report_every": 3, **kw})


@pytest.fixture
def files(tmp_path, tiny_weights_file, monkeypatch):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  _images.save_image(tmp_path / "c.png", CONTENT)
  _images.save_image(tmp_path / "s.png", STYLE)
  return tmp_path
