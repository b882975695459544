"""``stylize`` with a tile in two ``jax.distributed`` processes equals the one-process run.

Both processes run on 127.0.0.1 with two forced host devices each and gloo collectives
(:mod:`tests.processes`): the tiles of one image are spread over the four devices of both
processes in one program, and each process computes the same optimizer update.
"""

import json
import subprocess
import textwrap

import numpy as np
import pytest

import jaxstyle as js
from jaxstyle import cli
from jaxstyle.io import images
from tests import processes
from tests.conftest import rng_image, tiny
from tests.processes import run_two_processes

HW = (40, 56)
# Shallow layers keep compiling cheap; tile 20 gives 6 tiles, 8 slots on 4 devices.
LAYERS = dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu2_2",))
TILE = 20


def configs():
  """A few Adam steps, then a few backtracking L-BFGS steps (whose line search decides on
  the summed values), both tiled."""
  return {
    "adam": tiny(kind="adam", learning_rate=0.05, steps=4, report_every=2, tile=TILE, **LAYERS),
    "lbfgs": tiny(steps=3, report_every=3, tile=TILE, **LAYERS),
  }


def inputs():
  return rng_image(1, *HW), rng_image(2, 29, 34)


SCRIPT = textwrap.dedent(
  """
  import jaxstyle as js
  from jaxstyle.optim import stylize as multiscale
  from jaxstyle.optim import loop as optimize
  from tests.test_multihost_stylize import configs, inputs

  spread, used = optimize._spread, []

  def record(static, *a, **k):  # the devices each run's tiles are spread over
    out = spread(static, *a, **k)
    used.append([d.process_index for d in out[0].tiling.devices or ()])
    return out

  optimize._spread = record
  content, style = inputs()
  got = {}
  for name, cfg in configs().items():
    tiles, steps = [], []
    r = multiscale.stylize(content, style, cfg, params=params, tile_callback=tiles.append,
                           callback=lambda p: steps.append((p.step, np.asarray(p.image).shape)))
    got[name] = np.asarray(r.image)
    got[name + "_total"] = r.history["total"]
    got[name + "_tiles"] = sorted({t.total for t in tiles})
    got[name + "_steps"] = [s for s, _ in steps]
  # a stop asked for in process 1 alone (a signal on one host) stops both at the first chunk's end
  r = multiscale.stylize(content, style, configs()["adam"], params=params, stop=lambda: jax.process_index() == 1)
  got["stopped"] = np.asarray([r.status == "stopped", r.steps_done])
  try:  # a process given another content is refused in both, before any step
    multiscale.stylize(content * (1 - 0.1 * jax.process_index()), style, cfg, params=params)
    mismatch = ""
  except js.InputError as e:
    mismatch = str(e)
  np.savez(out, used=np.asarray(used), mismatch=mismatch, **got)
  """
)


@pytest.mark.slow
def test_two_processes_stylize_equals_one(tiny_params, tmp_path):
  """Adam and L-BFGS runs in two processes each give the one-process image (the same bits
  in both processes), with their tiles on the four devices of both; a stop in one process
  stops both; different inputs are refused."""
  outs = run_two_processes(SCRIPT, tiny_params, tmp_path)
  got = [np.load(o) for o in outs]
  content, style = inputs()
  for name, cfg in configs().items():
    one = js.stylize(content, style, cfg, params=tiny_params)
    assert one.status == "completed"
    for g in got:
      assert g["used"].tolist() == [[0, 0, 1, 1]] * 3  # every run: every device of both processes
      # 8 tile slots on 4 devices: each process hears its own 4 tiles per pass
      assert g[name + "_tiles"].tolist() == [4]
      assert g[name + "_steps"].tolist() == list(range(cfg.run.report_every, cfg.run.steps + 1, cfg.run.report_every))
      ref = np.asarray(one.image)
      assert g[name].shape == ref.shape
      assert np.max(np.abs(g[name] - ref)) <= 1e-5 * np.max(np.abs(ref)), name
      np.testing.assert_allclose(g[name + "_total"], one.history["total"], rtol=1e-5, err_msg=name)
    np.testing.assert_array_equal(got[0][name], got[1][name])  # nothing diverged between processes
  for g in got:
    assert g["stopped"].tolist() == [1, 2]
    assert "differ between the 2 processes" in str(g["mismatch"])
    np.testing.assert_array_equal(got[0][name + "_total"], got[1][name + "_total"])


@pytest.mark.slow
def test_cli_distributed_two_processes(files, tmp_path):
  """``jaxstyle stylize --tile ...`` started in two processes with the standard variables:
  process 0 writes the one-process image and its sidecar (4 devices), process 1 nothing."""
  c, s = files / "c.png", files / "s.png"
  flags = ["--preset", "gatys", "--size", "40", "--steps", "3", "--report-every", "2", "--tile", str(TILE)]
  flags += ["--content-layers", "relu2_2", "--style-layers", "relu1_1,relu2_1,relu3_1"]
  coordinator = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{processes.free_port()}", "JAX_NUM_PROCESSES": "2"}
  dirs = [tmp_path / f"p{i}" for i in range(2)]
  procs = []
  for i, d in enumerate(dirs):
    d.mkdir()
    cmd = processes.jaxstyle_command("stylize", c, s, "-o", d / "out.png", *flags)
    cmd += ["--distributed"] * (i == 0)  # implied by $JAX_COORDINATOR_ADDRESS: both ways start it
    env = processes.environment(devices=2, **coordinator, JAX_PROCESS_ID=str(i))
    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
  results = processes.communicate_all(procs, timeout=300)
  for p, (_, err) in zip(procs, results, strict=True):
    assert p.returncode == 0, err[-3000:]
  assert "step 2/3" in results[0][1] and "wrote" in results[0][0]  # process 0 reports and writes
  # process 1 neither (gloo itself prints connection lines to stdout)
  assert "wrote" not in results[1][0] and "step" not in results[1][1] and not any(dirs[1].iterdir())
  assert cli.main(["stylize", str(c), str(s), "-o", str(tmp_path / "one.png"), *flags, "-q"]) == 0
  rec = json.loads((dirs[0] / "out.json").read_text())
  assert rec["device"]["count"] == 4 and rec["status"] == "completed"
  got, one = images.load_image(dirs[0] / "out.png"), images.load_image(tmp_path / "one.png")
  assert np.max(np.abs(got - one)) <= 1 / 255 + 1e-6  # 8-bit rounding of images equal to ~1e-5


@pytest.mark.slow
def test_cli_distributed_without_coordinator_is_a_usage_error(files):
  cmd = processes.jaxstyle_command(
    "stylize", files / "c.png", files / "s.png", "-o", files / "out.png", "--distributed"
  )
  r = processes.run(cmd, env=processes.environment(drop_jax=True), timeout=120)
  assert r.returncode == 2 and "jaxstyle: error: --distributed: coordinator_address" in r.stderr, r.stderr
  assert not (files / "out.png").exists()
