"""`jaxstyle score`, the sweep's per-member measures and Pareto plot, and the plot helper."""

import json

import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.io import images, plot
from tests.conftest import rng_image


def test_score_table_and_json(files, capsys):
  images.save_image(files / "r.png", rng_image(7, 32, 40))
  args = ["score", files / "c.png", files / "s.png", files / "r.png", files / "c.png"]
  assert cli.main([str(a) for a in args]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0].split()[:4] == ["image", "style_gram", "style_swd", "content"] and len(out) == 3
  assert cli.main([str(a) for a in args] + ["--json"]) == 0
  rows = json.loads(capsys.readouterr().out)["scores"]
  assert rows[1]["content"] < 1e-6 < rows[0]["content"]  # the content is at distance 0 from itself
  assert cli.main(["score", str(files / "c.png"), str(files / "s.png"), str(files / "nope.png")]) == 2
  assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_records_measures_and_draws_the_pareto_plot(files, capsys):
  out = files / "sw"
  args = ["sweep", files / "c.png", files / "s.png", "-o", out, "--ratios", "1e-4,1e-2", "--size", "40", "--steps", "3"]
  assert cli.main([str(a) for a in args] + ["-q"]) == 0, capsys.readouterr().err
  rec = json.loads((out / "sweep.json").read_text())
  for m in rec["members"]:
    assert {"style_gram", "content", "border", "periodic_8"} <= set(m["metrics"])
    assert all(np.isfinite(v) for k, v in m["metrics"].items() if not k.startswith("periodic"))  # 40 px: too small
  assert images.load_image(out / "pareto.png").shape == (640, 900, 3)


def test_pareto_front():
  assert plot.pareto_front([1, 2, 3, 2], [3, 2, 1, 3]) == [True, True, True, False]


def test_scatter_draws_the_points():
  im = plot.scatter([0.0, 1.0], [0.0, 1.0], ["a", "b"], xlabel="x", ylabel="y", size=(400, 300))
  assert im.shape == (300, 400, 3)
  red = (im[..., 0] > 0.6) & (im[..., 1] < 0.3) & (im[..., 2] < 0.3)
  ys, xs = np.nonzero(red)
  left = xs < xs.mean()
  assert left.any() and (~left).any() and ys[left].mean() > ys[~left].mean()  # (0, 0) low left, (1, 1) high right
