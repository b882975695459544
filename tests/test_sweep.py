"""Sweeps: vmap equals a loop, sharding equals no sharding, blends, batches, the CLI."""

import json
import shlex
import textwrap

import jax
import numpy as np
import pytest
from PIL import Image

import jaxstyle as js
from jaxstyle import cli
from jaxstyle.io import images
from jaxstyle.optim import sweep
from jaxstyle.settings import presets
from tests import processes
from tests.conftest import rng_image, targets_for

CONTENT = rng_image(0, 32, 40)
STYLE = rng_image(1, 40, 32)
STYLE2 = rng_image(2, 32, 32)
ATOL = 2e-3  # float tolerance between batched and single programs over a few L-BFGS steps
TIGHT = 1e-5  # the same batched program on 4 devices in 2 processes and on 1: float32 rounding only


def base(**kw):
  return presets.gatys(**{"size": None, "steps": 4, "report_every": 2, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_each_member_equals_a_separate_run(tiny_params, opt):
  config = base(kind=opt, learning_rate=1.0 if opt == "lbfgs" else 0.05)
  spec = sweep.SweepSpec(
    ratios=(1e-4, 1e-2), style_layer_sets=(("relu1_1",), ("relu1_1", "relu3_1")), tv_weights=(0.0,)
  )
  labels, members, cols = spec.grid(config)
  assert cols == 2 and len(members) == 4
  r = sweep.stylize_sweep(CONTENT, STYLE, spec.run_config(config), spec.weights(config), params=tiny_params)
  assert r.images.shape == (4,) + CONTENT.shape and r.history["total"].shape == (4, 4)
  for i, m in enumerate(members):
    single = js.stylize(CONTENT, STYLE, m, params=tiny_params)
    np.testing.assert_allclose(r.images[i], single.image, atol=ATOL)
    np.testing.assert_allclose(r.losses[i]["total"], single.losses["total"], rtol=5e-3)


def test_layer_sets_rescale_weights():
  config = presets.gatys()
  spec = sweep.SweepSpec(style_layer_sets=(("relu1_1",), ("relu1_1", "relu2_1")))
  _, members, _ = spec.grid(config)
  # every member reads the shared layers (so its command runs the sweep's program), 0 outside its set
  assert [w for _, w in members[0].loss.style_layers] == pytest.approx((0.25, 0, 0, 0, 0))
  assert [w for _, w in members[1].loss.style_layers] == pytest.approx((0.125, 0.125, 0, 0, 0))
  w = spec.weights(config)
  np.testing.assert_allclose(w.style_layers["relu2_1"], [0.0, 0.125])
  np.testing.assert_allclose(w.style_layers["relu5_1"], [0.0, 0.0])


@pytest.mark.slow
def test_batches_and_padding_do_not_change_results(tiny_params):
  config = base()
  spec = sweep.SweepSpec(ratios=(1e-5, 1e-3, 1e-1))
  w = spec.weights(config)
  whole = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batching="vmap")
  pairs = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batch_size=2, batching="vmap")
  assert pairs.timings["batch"] == 2 and whole.timings["batch"] == 3 and not whole.exact
  np.testing.assert_allclose(pairs.images, whole.images, atol=1e-5)
  # map: members alone, one or two at once, the same bits
  one = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batching="map")
  two = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batch_size=2, batching="map")
  assert one.exact and one.timings["batch"] == 1 and two.timings["batch"] == 2
  np.testing.assert_array_equal(one.images, two.images)
  np.testing.assert_allclose(one.images, whole.images, atol=1e-5)


@pytest.mark.parametrize("batching", ["map", "vmap"])
def test_stop_keeps_every_member_as_far_as_it_got(tiny_params, batching):
  config = base(steps=8)
  spec = sweep.SweepSpec(ratios=(1e-5, 1e-3, 1e-1))
  _, members, _ = spec.grid(config)
  reports = []
  r = sweep.stylize_sweep(CONTENT, STYLE, config, spec.weights(config), params=tiny_params, batching=batching,
                          batch_size=1 if batching == "map" else None, callback=reports.append,
                          stop=lambda: bool(reports))  # fmt: skip
  assert r.status == "stopped" and r.images.shape == (3,) + CONTENT.shape and len(r.losses) == 3
  assert [p.step for p in reports] == [2]
  if batching == "vmap":  # one batch: every member stopped at the first report
    assert r.steps_done == (2, 2, 2)
    return
  # map: the first member as a stylize stopped there, bit for bit; those not begun as they start
  assert r.steps_done == (2, 0, 0) and r.history["total"].shape == (3, 2) and np.isnan(r.history["total"][1:]).all()
  first = js.stylize(CONTENT, STYLE, members[0], params=tiny_params, stop=lambda: True)
  np.testing.assert_array_equal(r.images[0], first.image)
  for i in (1, 2):
    alone = js.stylize(CONTENT, STYLE, members[i].set(steps=0), params=tiny_params)
    np.testing.assert_array_equal(r.images[i], alone.image)
    assert r.losses[i]["total"] == pytest.approx(alone.losses["total"], rel=1e-6)
  done = sweep.stylize_sweep(CONTENT, STYLE, config, spec.weights(config), params=tiny_params, batching="map")
  assert done.status == "completed" and done.steps_done == (8, 8, 8)


def test_out_of_memory_halves_the_batch(tiny_params, monkeypatch):
  real = sweep.optimize
  seen = []

  def limited(x, *a, **k):
    seen.append(x.shape[0])
    if x.shape[0] > 2:
      raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.00GiB")
    return real(x, *a, **k)

  monkeypatch.setattr(sweep, "optimize", limited)
  config = base()
  w = sweep.SweepSpec(ratios=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1)).weights(config)
  r = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batching="vmap")
  assert seen[:2] == [5, 2] and r.timings["batch"] == 2 and r.images.shape[0] == 5
  monkeypatch.setattr(
    sweep, "optimize", lambda *a, **k: (_ for _ in ()).throw(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED"))
  )
  with pytest.raises(sweep.SweepMemoryError, match="does not fit"):
    sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batching="vmap")


def test_blend_of_one_style_at_weight_one_equals_that_style(tiny_params):
  a = js.stylize(CONTENT, STYLE, base(), params=tiny_params)
  b = js.stylize(CONTENT, [STYLE], base(style_blend=(1.0,)), params=tiny_params)
  c = js.stylize(CONTENT, [STYLE, STYLE2], base(style_blend=(1.0, 0.0)), params=tiny_params)
  np.testing.assert_array_equal(a.image, b.image)
  np.testing.assert_allclose(a.image, c.image, atol=1e-5)


def test_blend_targets_are_weighted_gram_means(tiny_params):
  config = base(style_blend=(3.0, 1.0))
  t = targets_for(tiny_params, CONTENT, [STYLE, STYLE2], config)
  t1 = targets_for(tiny_params, CONTENT, STYLE, base())
  t2 = targets_for(tiny_params, CONTENT, STYLE2, base())
  for k in t.style:
    np.testing.assert_allclose(t.style[k], 0.75 * t1.style[k] + 0.25 * t2.style[k], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="2 weights for 1 style"):
    targets_for(tiny_params, CONTENT, [STYLE], base(style_blend=(1.0, 2.0)))


SHARDED = textwrap.dedent(
  """
  import jax, numpy as np
  from jaxstyle.settings import presets
  from jaxstyle.optim import sweep
  from jaxstyle.nets import vgg
  from tests.conftest import rng_image
  assert jax.device_count() == 4, jax.devices()
  params = vgg.init_params(jax.random.key(0), widths=(4, 8, 8, 8, 8))
  config = presets.gatys(size=None, steps=4, report_every=2)
  w = sweep.SweepSpec(ratios=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)).weights(config)
  c, s = rng_image(0, 32, 40), rng_image(1, 40, 32)
  sharded = sweep.stylize_sweep(c, s, config, w, params=params, batching="vmap")
  single = sweep.stylize_sweep(c, s, config, w, params=params, devices=jax.devices()[:1], batching="vmap")
  assert sharded.timings["devices"] == 4 and sharded.timings["batch"] == 8, sharded.timings
  assert single.timings["devices"] == 1
  np.testing.assert_allclose(sharded.images, single.images, atol=1e-4)
  np.testing.assert_allclose([l["total"] for l in sharded.losses], [l["total"] for l in single.losses], rtol=1e-4)
  # map (auto on CPU): members on the four devices at once, the bits of each alone on one device
  spread = sweep.stylize_sweep(c, s, config, w, params=params)
  alone = sweep.stylize_sweep(c, s, config, w, params=params, devices=jax.devices()[:1], batch_size=1)
  assert spread.exact and spread.timings["batch"] == 4 and alone.timings["batch"] == 1
  np.testing.assert_array_equal(spread.images, alone.images)
  print("OK", sharded.images.shape)
  """
)


@pytest.mark.slow
def test_sharded_equals_unsharded_on_four_cpu_devices():
  r = processes.run_script(SHARDED, devices=4)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "OK (6, 32, 40, 3)" in r.stdout


MULTIHOST = textwrap.dedent(
  """
  from jaxstyle.optim import sweep
  from tests.test_sweep import CONTENT, STYLE, multihost_case
  config, w = multihost_case()
  # every process passes the same inputs; devices=jax.devices(): the mesh spans both processes
  r = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=params, devices=jax.devices())
  assert r.timings["devices"] == 4 and r.timings["batch"] == 8, r.timings  # 2 members per device, 2 padded
  np.savez(out, images=r.images, history=r.history["total"], losses=[[l[k] for k in sorted(l)] for l in r.losses])
  """
)


def multihost_case():
  """Six weightings, four L-BFGS steps (the two-process sweep's members)."""
  config = base()
  return config, sweep.SweepSpec(ratios=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)).weights(config)


@pytest.mark.slow
def test_two_process_sweep_equals_one_process(tiny_params, tmp_path):
  """Two processes on 127.0.0.1 (jax.distributed, two host devices each, gloo collectives)
  shard six members over four devices in two processes; each process gets every member's
  image, history and losses, as one process computes them."""
  from tests.processes import run_two_processes

  outs = run_two_processes(MULTIHOST, tiny_params, tmp_path)
  config, w = multihost_case()
  one = sweep.stylize_sweep(CONTENT, STYLE, config, w, params=tiny_params, batching="vmap")
  assert one.timings["devices"] == 1
  losses = [[m[k] for k in sorted(m)] for m in one.losses]
  for i in range(2):
    got = np.load(outs[i])
    assert got["images"].shape == (6,) + CONTENT.shape
    np.testing.assert_allclose(got["images"], one.images, atol=TIGHT)
    np.testing.assert_allclose(got["history"], one.history["total"], rtol=TIGHT)
    np.testing.assert_allclose(got["losses"], losses, rtol=TIGHT)


@pytest.mark.slow
def test_cli_sweep_writes_members_sheet_and_reproducible_commands(tmp_path, tiny_weights_file, monkeypatch, capsys):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  images.save_image(tmp_path / "c.png", CONTENT)
  images.save_image(tmp_path / "s.png", STYLE)
  out = tmp_path / "sweep"
  args = [
    "sweep",
    tmp_path / "c.png",
    tmp_path / "s.png",
    "-o",
    out,
    "--ratios",
    "1e-4,1e-2",
    "--style-layer-sets",
    "relu1_1",
    "relu1_1,relu2_1,relu3_1",
    "--size",
    "40",
    "--steps",
    "4",
    "--report-every",
    "2",
    "-q",
  ]
  assert cli.main([str(a) for a in args]) == 0, capsys.readouterr().err
  rec = json.loads((out / "sweep.json").read_text())
  assert len(rec["members"]) == 4 and rec["columns"] == 2
  for m in rec["members"]:
    assert (out / m["image"]).is_file() and set(m["settings"]) == {"ratio", "style_layers"}
    assert np.isfinite(m["losses"]["total"])
  sheet = Image.open(out / "sheet.png")
  cell_h = 32  # images are 32 px high: 2 rows of (cell + label + pad), 2 columns
  assert sheet.size[1] == 8 + 2 * (cell_h + 18 + 8)
  assert sheet.size[0] == 8 + 2 * (40 + 8)
  # rerun one member alone from its recorded command
  m = rec["members"][3]
  cmd = shlex.split(m["command"])
  alone = tmp_path / "alone.png"
  cmd[cmd.index("-o") + 1] = str(alone)
  assert cmd[:2] == ["jaxstyle", "stylize"]
  assert cli.main(cmd[1:] + ["-q"]) == 0, capsys.readouterr().err
  assert rec["batching"] == "map" and rec["members_equal_their_commands"] == "bit for bit"
  np.testing.assert_array_equal(images.load_image(alone), images.load_image(out / m["image"]))


def test_cli_sweep_bad_input(tmp_path, tiny_weights_file, monkeypatch, capsys):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  images.save_image(tmp_path / "c.png", CONTENT)
  for extra, msg in [
    ([], "give at least one"),
    (["--ratios", "0"], "must be positive"),
    (["--style-layer-sets", "relu9_9"], "unknown VGG19 layer"),
  ]:
    code = cli.main(["sweep", str(tmp_path / "c.png"), str(tmp_path / "c.png"), "-o", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and msg in err and err.count("\n") == 1
  assert not (tmp_path / "o").exists()


def test_figure3_grid():
  config, spec = sweep.figure3(size=64)
  labels, members, cols = spec.grid(config)
  assert cols == 4 and len(members) == 20 and config.images.init == "noise"
  assert labels[0] == {"style_layers": ["relu1_1"], "ratio": 1e-5}
  assert [n for n, _ in members[-1].loss.style_layers] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
  assert members[-1].loss.style_weight == pytest.approx(1e2)


@pytest.mark.slow
def test_public_api_names(tiny_params):
  """The names the README and the issue use are there."""
  config = base()
  spec = js.SweepSpec(ratios=(1e-3,))
  r = js.stylize_sweep(CONTENT, STYLE, spec.run_config(config), spec.weights(config), params=tiny_params)
  assert isinstance(r, js.SweepResult) and r.images.shape[0] == 1
  assert js.sweep.figure3 and js.run_step and js.lbfgs.step and js.optimizer


@pytest.mark.slow
def test_every_member_is_its_command_alone_bit_for_bit(tmp_path, tiny_weights_file, monkeypatch, capsys):
  """Sweeps of 3 and 8 members, 200 L-BFGS steps at 128 px, run 1, 3 and 8 at a time: every member's image is
  exactly what its recorded command gives alone (long enough for last-bit differences to grow into visible
  ones, as batched runs' do)."""
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  c, s = tmp_path / "c.png", tmp_path / "s.png"
  images.save_image(c, rng_image(3, 96, 128))
  images.save_image(s, rng_image(4, 128, 96))
  flags = ["--size", "128", "--steps", "200", "--report-every", "100", "--seed", "0", "-q"]
  ratios = {3: "1e-4,1e-3,1e-2", 8: "1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2,3e-2"}
  commands: dict[str, list] = {}
  for members, at_once in ((3, 3), (8, 1), (8, 8)):
    out = tmp_path / f"sweep{members}_{at_once}"
    args = ["sweep", c, s, "-o", out, "--ratios", ratios[members], "--batch", str(at_once), *flags]
    assert cli.main([str(a) for a in args]) == 0, capsys.readouterr().err
    rec = json.loads((out / "sweep.json").read_text())
    assert rec["members_equal_their_commands"] == "bit for bit" and len(rec["members"]) == members
    for m in rec["members"]:
      key = m["command"].split(" -o ")[1].split(" ", 1)[1]  # the settings, not the output path
      commands.setdefault(key, []).append(images.load_image(out / m["image"]))
  assert len(commands) == 8  # the 3-member sweep's ratios are among the 8's
  for k, (key, got) in enumerate(commands.items()):
    cmd = shlex.split(
      "jaxstyle stylize " + str(c) + " " + str(s) + " -o " + str(tmp_path / f"alone{k}.png") + " " + key
    )
    assert cli.main(cmd[1:] + ["-q"]) == 0, capsys.readouterr().err
    alone = images.load_image(tmp_path / f"alone{k}.png")
    for image in got:
      np.testing.assert_array_equal(image, alone)
