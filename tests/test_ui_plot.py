"""The sweep's Pareto figure: matplotlib where the ui extra is installed, Pillow's drawing without it."""

import sys

import numpy as np
import pytest

from jaxstyle.io import plot

XS, YS = [0.7, 0.8, 1.1, 0.9], [0.28, 0.24, 0.18, 0.27]


def _red(im):
  return (im[..., 0] > 0.6) & (im[..., 1] < 0.3) & (im[..., 2] < 0.3)


def _draw():
  return plot.scatter(XS, YS, list("abcd"), xlabel="content", ylabel="style", title="t", size=(500, 360),
                      highlight=plot.pareto_front(XS, YS))  # fmt: skip


def test_the_figure_is_drawn_by_matplotlib_when_it_is_there():
  pytest.importorskip("matplotlib")
  im = _draw()
  assert im.shape == (360, 500, 3) and im.dtype == np.float32
  ys, xs = np.nonzero(_red(im))
  # the front's points and the line joining them are red; (0.7, 0.28) is up left, (1.1, 0.18) down right
  assert xs.min() < 0.35 * 500 and ys[xs < xs.min() + 5].mean() < ys[xs > xs.max() - 5].mean()


def test_without_matplotlib_pillow_draws_it(monkeypatch):
  monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import fails
  im = _draw()
  want = plot.scatter_pillow(XS, YS, list("abcd"), xlabel="content", ylabel="style", title="t", size=(500, 360),
                             highlight=plot.pareto_front(XS, YS))  # fmt: skip
  np.testing.assert_array_equal(im, want)
