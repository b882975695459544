"""The CLI end to end on tiny images with a tiny random-weight network."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from jaxstyle import cli
from jaxstyle.io import images
from tests import processes
from tests.conftest import rng_image

FAST = ["--size", "32", "--steps", "4", "--report-every", "2"]


@pytest.fixture
def env(tmp_path, tiny_weights_file, monkeypatch):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  ins = tmp_path / "in"
  ins.mkdir()
  images.save_image(ins / "c.png", rng_image(0, 24, 32))
  images.save_image(ins / "s.jpg", rng_image(1, 32, 32))
  out = tmp_path / "out"
  out.mkdir()
  return ins, out


def run(args, capsys):
  code = cli.main([str(a) for a in args])
  cap = capsys.readouterr()
  return code, cap.out, cap.err


@pytest.mark.slow
def test_stylize_end_to_end(env, capsys):
  ins, out = env
  code, stdout, stderr = run(
    ["stylize", ins / "c.png", ins / "s.jpg", "-o", out / "r.png", "--sheet", out / "sheet.png", *FAST], capsys
  )
  assert code == 0, stderr
  im = images.load_image(out / "r.png")
  assert im.shape == (24, 32, 3)
  assert "step 4/4" in stderr and "it/s" in stderr and "ETA" in stderr
  rec = json.loads((out / "r.json").read_text())
  st = rec["settings"]
  assert st["images"]["size"] == 32 and st["run"]["steps"] == 4 and st["name"] == "jaxstyle"
  assert set(rec["losses"]) == {"content", "style", "tv", "total"}
  t = rec["timings"]
  assert 0 <= t["compile_s"] and 0 < t["run_s"] and t["compile_s"] + t["run_s"] <= t["wall_s"]  # times the parts
  np.testing.assert_allclose(t["steps_per_s"], 4 / t["run_s"], rtol=1e-6)  # every step of both scales
  assert rec["versions"]["jax"] and rec["device"]["platform"] == "cpu"
  assert rec["weights"]["source"] == "random (tests)"
  assert Image.open(out / "sheet.png").size[0] > 3 * 32
  assert sorted(os.listdir(out)) == ["r.json", "r.png", "sheet.png"]


@pytest.mark.slow
def test_overrides_reach_the_settings(env, capsys):
  ins, out = env
  args = [
    "stylize",
    ins / "c.png",
    ins / "s.jpg",
    "-o",
    out / "r.jpg",
    *FAST,
    "--preset",
    "tf-tutorial",
    "--optimizer",
    "adam",
    "--lr",
    "0.01",
    "--content-weight",
    "2",
    "--style-weight",
    "3",
    "--tv-weight",
    "0.5",
    "--content-layers",
    "relu4_2",
    "--style-layers",
    "relu1_1:1,relu2_1:0.75",
    "--init",
    "noise",
    "--seed",
    "7",
    "--pooling",
    "avg",
    "-q",
  ]
  code, _, stderr = run(args, capsys)
  assert code == 0, stderr
  assert stderr == ""  # --quiet
  s = json.loads((out / "r.json").read_text())["settings"]
  o, lo = s["optimizer"], s["loss"]
  assert (o["kind"], o["learning_rate"], lo["content_weight"], lo["style_weight"], lo["tv_weight"]) == (
    "adam",
    0.01,
    2.0,
    3.0,
    0.5,
  )
  assert s["loss"]["style_layers"] == [["relu1_1", 1.0], ["relu2_1", 0.75]]
  assert (s["images"]["init"], s["images"]["seed"], s["network"]["pooling"], s["name"]) == (
    "noise",
    7,
    "avg",
    "tf-tutorial",
  )


def test_help_lists_every_option(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["stylize", "--help"])
  assert e.value.code == 0
  text = capsys.readouterr().out
  for opt in [
    "--preset",
    "--size",
    "--steps",
    "--optimizer",
    "--lr",
    "--content-weight",
    "--style-weight",
    "--tv-weight",
    "--content-layers",
    "--style-layers",
    "--init",
    "--seed",
    "--pooling",
    "--weights",
  ]:
    assert opt in text


def _bad_cases(ins, out, tmp_path):
  (tmp_path / "empty.png").write_bytes(b"")
  (tmp_path / "text.png").write_text("hello")
  good = (ins / "c.png").read_bytes()
  (tmp_path / "trunc.png").write_bytes(good[: len(good) // 3])
  c, s, o = ins / "c.png", ins / "s.jpg", out / "r.png"
  return {
    "missing content": (["stylize", tmp_path / "nope.png", s, "-o", o], "no such file"),
    "missing style": (["stylize", c, tmp_path / "nope.jpg", "-o", o], "no such file"),
    "not an image": (["stylize", tmp_path / "text.png", s, "-o", o], "not an image"),
    "empty": (["stylize", c, tmp_path / "empty.png", "-o", o], "empty file"),
    "truncated": (["stylize", tmp_path / "trunc.png", s, "-o", o], "cannot read image"),
    "output dir missing": (["stylize", c, s, "-o", out / "no" / "r.png"], "does not exist"),
    "output is a dir": (["stylize", c, s, "-o", out / "d.png"], "is a directory"),
    "output format": (["stylize", c, s, "-o", out / "r.bmpx"], "unknown output format"),
    "output is input": (["stylize", c, s, "-o", c], "overwrite input"),
    "unknown layer": (["stylize", c, s, "-o", o, "--style-layers", "relu9_1"], "unknown VGG19 layer"),
    "negative weight": (["stylize", c, s, "-o", o, "--style-weight", "-1"], "style_weight"),
    "non-numeric weight": (["stylize", c, s, "-o", o, "--content-weight", "abc"], "expected a number"),
    "bad layer weight": (["stylize", c, s, "-o", o, "--style-layers", "relu1_1:x"], "expected layers"),
    "bad size": (["stylize", c, s, "-o", o, "--size", "0"], "positive integer"),
    "bad preset": (["stylize", c, s, "-o", o, "--preset", "nope"], "invalid choice"),
    "unknown option": (["stylize", c, s, "-o", o, "--frobnicate"], "unrecognized arguments"),
    "missing -o": (["stylize", c, s], "required"),
    "weights missing": (["stylize", c, s, "-o", o, "--weights", tmp_path / "none.h5"], "jaxstyle weights fetch"),
    "weights foreign": (["stylize", c, s, "-o", o, "--weights", tmp_path / "text.png"], "weights"),
    "too small": (["stylize", c, s, "-o", o, "--size", "8"], "too small for layer"),
    "bad init file": (["stylize", c, s, "-o", o, "--init", tmp_path / "nope.png"], "no such file"),
  }


@pytest.mark.parametrize(
  "case",
  [
    "missing content",
    "missing style",
    "not an image",
    "empty",
    "truncated",
    "output dir missing",
    "output is a dir",
    "output format",
    "output is input",
    "unknown layer",
    "negative weight",
    "non-numeric weight",
    "bad layer weight",
    "bad size",
    "bad preset",
    "unknown option",
    "missing -o",
    "weights missing",
    "weights foreign",
    "too small",
    "bad init file",
  ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(env, tmp_path, capsys, case):
  ins, out = env
  (out / "d.png").mkdir()
  args, match = _bad_cases(ins, out, tmp_path)[case]
  before = sorted(os.listdir(out))
  code, _, stderr = run([args[0], *FAST, *args[1:]], capsys)  # case flags win over FAST
  assert code == 2
  lines = stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("jaxstyle: error:"), stderr
  assert match in lines[0]
  assert sorted(os.listdir(out)) == before


def test_decompression_bomb(env, tmp_path, capsys, monkeypatch):
  ins, out = env
  monkeypatch.setattr(images, "MAX_PIXELS", 100)
  code, _, stderr = run(["stylize", ins / "c.png", ins / "s.jpg", "-o", out / "r.png", *FAST], capsys)
  assert code == 2 and "too large" in stderr
  assert os.listdir(out) == []


def test_weights_commands(env, tmp_path, capsys, tiny_weights_file):
  code, stdout, _ = run(["weights", "info"], capsys)
  assert code == 0 and json.loads(stdout)["source"] == "random (tests)"
  code, stdout, _ = run(["weights", "convert", tiny_weights_file, "--weights", tmp_path / "x.h5"], capsys)
  assert code == 2  # our own layout is not a conversion source
  code, _, err = run(["weights", "fetch", "--keras-h5", tmp_path / "none.h5", "--weights", tmp_path / "y.h5"], capsys)
  assert code == 2 and "no such file" in err and not (tmp_path / "y.h5").exists()


@pytest.mark.slow
def test_module_entry_point_has_no_traceback(tmp_path):
  r = processes.run(
    processes.jaxstyle_command("stylize", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "o.png")
  )
  assert r.returncode == 2
  assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_sidecar_is_reproducible(env, capsys):
  """Two runs with the same settings give the same image."""
  ins, out = env
  for name in ("a.png", "b.png"):
    assert run(["stylize", ins / "c.png", ins / "s.jpg", "-o", out / name, *FAST, "-q"], capsys)[0] == 0
  np.testing.assert_array_equal(images.load_image(out / "a.png"), images.load_image(out / "b.png"))


@pytest.mark.slow
def test_compilation_cache_serves_the_second_run(tmp_path, tiny_weights_file):
  """The CLI keeps compiled programs on disk: a second process of the same shapes finds
  every program there and adds none (its time is measured in bench/, not here)."""
  images.save_image(tmp_path / "c.png", rng_image(0, 24, 32))
  env = processes.environment(
    JAXSTYLE_WEIGHTS=str(tiny_weights_file),
    JAXSTYLE_COMPILATION_CACHE=str(tmp_path / "xla"),
    JAXSTYLE_COMPILATION_CACHE_MIN_S="0",  # every program cached: which ones pass 0.2 s depends on the load
  )
  entries = []
  for k in range(2):
    out = tmp_path / f"r{k}.png"
    r = processes.run(
      processes.jaxstyle_command("stylize", tmp_path / "c.png", tmp_path / "c.png", "-o", out, *FAST, "-q"), env=env
    )
    assert r.returncode == 0, r.stderr
    entries.append(sorted(p.name for p in (tmp_path / "xla").iterdir()))
  assert entries[0], "nothing was cached"
  assert entries[1] == entries[0]  # every program came from the cache
