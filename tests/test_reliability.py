"""Long runs survive signals, NaNs, resumption and garbage input."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import cli
from jaxstyle.io import images
from jaxstyle.optim import loop as optimize
from tests import processes
from tests.conftest import rng_image, targets_for, tiny

ROOT = Path(__file__).resolve().parents[1]
CONTENT = rng_image(0, 32, 40)
STYLE = rng_image(1, 40, 32)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_writes_the_image_so_far(files, sig, code):
  out, ckpt = files / "out.png", files / "ckpt"
  cmd = processes.jaxstyle_command("stylize", files / "c.png", files / "s.png", "-o", out, "--size", "40")
  run = processes.Lines([*cmd, "--steps", "100000", "--report-every", "1", "--checkpoint", ckpt])
  try:
    run.wait_for(r"^step 2/100000 ")  # past its first checkpoint
    run.proc.send_signal(sig)
    got, err = run.finish()
  finally:
    if run.proc.poll() is None:
      run.proc.kill()
  assert got == code, err
  last = err.strip().splitlines()[-1]  # after the progress lines, one line saying where it stopped
  assert "Traceback" not in err and f"{signal.Signals(sig).name} at step" in last, err
  rec = json.loads(out.with_suffix(".json").read_text())
  assert rec["status"] == "interrupted" and rec["signal"] == signal.Signals(sig).name
  assert 1 <= rec["steps_done"] < 100000
  assert images.load_image(out).shape == (32, 40, 3)
  assert not list(files.glob(".*.part*"))


@pytest.mark.slow
def test_cli_resume_equals_uninterrupted(files, capsys):
  c, s = files / "c.png", files / "s.png"
  base = ["stylize", c, s, "--size", "40", "--report-every", "3", "-q"]
  run = lambda *extra: cli.main([str(a) for a in [*base, *extra]])
  assert run("-o", files / "full.png", "--steps", "6") == 0
  assert run("-o", files / "half.png", "--steps", "3", "--checkpoint", files / "ck") == 0
  assert run("-o", files / "resumed.png", "--steps", "6", "--resume", files / "ck") == 0
  np.testing.assert_array_equal(images.load_image(files / "resumed.png"), images.load_image(files / "full.png"))
  assert run("-o", files / "x.png", "--steps", "6", "--resume", files / "ck", "--style-weight", "3") == 2
  assert "differ" in capsys.readouterr().err


def test_save_every_writes_intermediate_images(files):
  out = files / "o.png"
  args = [
    "stylize",
    files / "c.png",
    files / "s.png",
    "-o",
    out,
    "--size",
    "40",
    "--steps",
    "6",
    "--save-every",
    "2",
    "-q",
  ]
  assert cli.main([str(a) for a in args]) == 0
  assert sorted(p.name for p in files.glob("o_*.png")) == ["o_00002.png", "o_00004.png", "o_00006.png"]


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_overflowing_weight_stops_with_the_last_finite_image(tiny_params, opt):
  config = tiny(kind=opt, style_weight=1e38, learning_rate=1.0 if opt == "lbfgs" else 1e30)
  r = js.stylize(CONTENT, STYLE, config, params=tiny_params)
  assert r.status == "non-finite"
  assert np.all(np.isfinite(np.asarray(r.image)))
  np.testing.assert_allclose(r.image, CONTENT, atol=1e-6)  # nothing finite after the start


def test_lbfgs_recovers_from_one_non_finite_chunk(tiny_params, monkeypatch):
  """A chunk that ends in NaN resets L-BFGS memory from the last finite image; the run then completes."""
  real = optimize.compiled
  poisoned = []

  def wrapped(name, fn, args, **kw):
    exe, t = real(name, fn, args, **kw)
    if name != "chunk":
      return exe, t

    def once_nan(x, state, n, *rest):
      x, state, values, parts = exe(x, state, n, *rest)
      if not poisoned:
        poisoned.append(int(n))
        x = x * np.nan
        parts = {k: v * np.nan for k, v in parts.items()}
      return x, state, values, parts

    return once_nan, t

  monkeypatch.setattr(optimize, "compiled", wrapped)
  config = tiny()
  targets = targets_for(tiny_params, CONTENT, STYLE, config)
  r = optimize.optimize(CONTENT, tiny_params, targets, config.loss.weights(), config)
  assert poisoned == [3]
  assert r.status == "completed" and r.lbfgs_resets == 1 and r.step == 6
  assert np.all(np.isfinite(np.asarray(r.image)))
  assert r.losses["total"] < r.history["total"][0]
  # with NaN weights it can never recover: one reset, then it stops with the start image
  bad = optimize.optimize(
    CONTENT, tiny_params, targets, config.loss.weights()._replace(style=np.float32(np.nan)), config
  )
  assert bad.status == "non-finite" and bad.lbfgs_resets == 1
  np.testing.assert_allclose(bad.image, CONTENT, atol=1e-6)


def test_cli_non_finite_exits_2_and_keeps_image(files, capsys):
  out = files / "o.png"
  code = cli.main(
    [
      str(a)
      for a in [
        "stylize",
        files / "c.png",
        files / "s.png",
        "-o",
        out,
        "--size",
        "40",
        "--steps",
        "4",
        "--style-weight",
        "1e38",
      ]
    ]
  )
  err = capsys.readouterr().err.strip().splitlines()
  assert code == 2 and err[-1].startswith("jaxstyle: error: the loss became NaN")
  assert json.loads(out.with_suffix(".json").read_text())["status"] == "non-finite"
  assert np.all(np.isfinite(images.load_image(out)))


def test_truncated_and_misshapen_weights_via_cli(files, tiny_weights_file, capsys):
  data = Path(tiny_weights_file).read_bytes()
  (files / "t.h5").write_bytes(data[: len(data) // 2])
  code = cli.main(
    [str(a) for a in ["stylize", files / "c.png", files / "s.png", "-o", files / "o.png", "--weights", files / "t.h5"]]
  )
  assert code == 2 and "truncated" in capsys.readouterr().err


# --------------------------------------------------------------------------- fuzzing


def _stylize_options():
  """Every long option of `jaxstyle stylize`, from the parser itself (so new options get fuzzed too),
  less those that name outputs or folders."""
  parser = cli.build_parser()
  sub = next(a for a in parser._actions if a.dest == "command").choices["stylize"]
  skip = {"--output", "--help", "--sheet", "--checkpoint", "--resume", "--weights", "--quiet"}
  return sorted(o for a in sub._actions for o in a.option_strings if o.startswith("--") and o not in skip)


OPTIONS = _stylize_options()
VALUES = [
  "0",
  "1",
  "2",
  "-1",
  "1e3",
  "nan",
  "inf",
  "abc",
  "",
  "relu1_1",
  "relu1_1:2,relu9_9",
  "conv3_1:0.5",
  "max",
  "avg",
  "lbfgs",
  "adam",
  "gatys",
  "noise",
  "gray",
  "0.5",
  "3",
  "1,1",
  "-",
  "--",
  "luminance",
  "histogram",
  "auto",
  "16",
  "20,40",
  "style",
]


def test_random_bytes_and_arguments(files, capsys):
  rng = np.random.default_rng(1234)
  out = files / "fuzz"
  out.mkdir()
  for case in range(40):
    blob = files / f"blob{case}.png"
    kind = rng.integers(3)
    if kind == 0:
      blob.write_bytes(rng.bytes(int(rng.integers(0, 2000))))
    elif kind == 1:  # a real PNG, cut short
      data = (files / "c.png").read_bytes()
      blob.write_bytes(data[: int(rng.integers(1, len(data)))])
    else:
      blob.write_bytes((files / "c.png").read_bytes())
    args = [
      "stylize",
      str(blob),
      str(files / "s.png"),
      "-o",
      str(out / f"r{case}.png"),
      "--size",
      "40",
      "--steps",
      "2",
      "-q",
    ]
    for _ in range(int(rng.integers(0, 4))):
      args += [str(rng.choice(OPTIONS)), str(rng.choice(VALUES))]
    code = cli.main(args)  # an unexpected exception here is a traceback: the test fails
    err = capsys.readouterr().err
    assert code in (0, 2), (args, code, err)
    assert "Traceback" not in err
    if code == 2:
      last = err.strip().splitlines()[-1]
      assert last.startswith("jaxstyle: error:"), (args, err)
      if "kept the last finite image" not in last:  # the one error that writes what it has
        assert not (out / f"r{case}.png").exists(), args
    assert not [p for p in os.listdir(out) if ".part" in p], args
