"""Perceptual controls: colour, scales, style scale, init, mask, output formats."""

import json
import shlex
import struct
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jaxstyle as js
from jaxstyle import cli
from jaxstyle.io import color, images
from jaxstyle.optim import problem, sweep
from jaxstyle.settings.style import ImageSettings, auto_scales
from tests import processes
from tests.conftest import rng_image, tiny

CONTENT = 0.25 + 0.5 * rng_image(0, 32, 40)  # mid-range, so recombined colours stay in gamut
STYLE = rng_image(1, 40, 32)


def test_luminance_mode_keeps_the_content_chroma(tiny_params):
  r = js.stylize(CONTENT, STYLE, tiny(preserve_color="luminance"), params=tiny_params)
  got, want = color.rgb_to_yiq(np.asarray(r.image)), color.rgb_to_yiq(CONTENT)
  np.testing.assert_allclose(got[..., 1:], want[..., 1:], atol=2e-3)
  assert np.abs(got[..., 0] - want[..., 0]).mean() > 1e-3  # the luminance was stylized


def test_yiq_round_trip():
  np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(STYLE)), STYLE, atol=1e-5)


def test_histogram_mode_matches_means_and_covariance():
  out = color.match_histogram(STYLE, CONTENT)
  o, c = out.reshape(-1, 3).astype(np.float64), CONTENT.reshape(-1, 3).astype(np.float64)
  np.testing.assert_allclose(o.mean(0), c.mean(0), atol=1e-5)
  np.testing.assert_allclose(np.cov(o, rowvar=False, bias=True), np.cov(c, rowvar=False, bias=True), atol=1e-5)


def test_histogram_mode_changes_the_style_targets(tiny_params):
  plain = problem.setup_problem(tiny_params, CONTENT, STYLE, tiny())
  matched = problem.setup_problem(tiny_params, CONTENT, STYLE, tiny(preserve_color="histogram"))
  k = "relu1_1"
  assert not np.allclose(plain.targets.style[k], matched.targets.style[k])


@pytest.mark.slow
def test_each_scale_has_its_size_and_its_loss_falls(tiny_params):
  r = js.stylize(rng_image(0, 48, 64), STYLE, tiny(scales=(32, 64)), params=tiny_params)
  assert [s["size"] for s in r.scales] == [[24, 32], [48, 64]]
  for s in r.scales:
    assert s["final_loss"] < s["first_loss"]
  assert r.image.shape == (48, 64, 3)


@pytest.mark.slow
def test_coarse_steps_apply_to_every_scale_but_the_last(tiny_params):
  r = js.stylize(rng_image(0, 48, 64), STYLE, tiny(scales=(24, 40, 64), coarse_steps=3), params=tiny_params)
  assert [s["steps"] for s in r.scales] == [3, 3, 6]
  assert [s["steps"] for s in js.stylize(CONTENT, STYLE, tiny(coarse_steps=3), params=tiny_params).scales] == [6]
  with pytest.raises(ValueError, match="coarse_steps must be a non-negative integer"):
    tiny(coarse_steps=-1)


def test_coarse_steps_one_count_per_scale(tiny_params):
  r = js.stylize(rng_image(0, 48, 64), STYLE, tiny(scales=(24, 40, 64), coarse_steps=(4, 2)), params=tiny_params)
  assert [s["steps"] for s in r.scales] == [4, 2, 6] and r.steps_done == 12
  with pytest.raises(ValueError, match="coarse_steps has 3 counts for 2 coarse scales"):
    tiny(scales=(24, 40, 64), coarse_steps=(4, 2, 1))
  with pytest.raises(ValueError, match="coarse_steps has 1 counts for 0 coarse scales"):
    tiny(coarse_steps=(4,))
  codec = next(d.codec for d in ImageSettings.declarations() if d.field == "coarse_steps")
  assert codec.parse("300,100") == (300, 100) and codec.parse("300") == 300 and codec.parse("none") is None
  assert codec.parse(codec.format((3, 1))) == (3, 1)


@pytest.mark.slow
def test_progress_counts_a_later_scale_step_at_its_pixels(tiny_params):
  seen = []
  config = tiny(scales=(24, 48, 96), coarse_steps=(4, 2), report_every=1)
  js.stylize(rng_image(0, 72, 96), STYLE, config, params=tiny_params, callback=seen.append)
  left = {p.step: p.work_left for p in seen}
  # scale 24 ends at step 4: 2 steps at 4x its pixels and 6 at 16x remain
  assert left[4] == pytest.approx(2 * 4 + 6 * 16) and left[3] == pytest.approx(1 + 2 * 4 + 6 * 16)
  assert left[6] == pytest.approx(6 * 4) and left[9] == 3 and left[12] == 0
  p = seen[0]
  assert p.eta == pytest.approx(p.work_left / p.steps_per_second)


def test_auto_scales():
  assert auto_scales(1024) == (256, 512, 1024)
  assert auto_scales(300) == (300,)
  assert auto_scales(600, start=128) == (150, 300, 600)


def test_style_scale_changes_the_style_size():
  _, (s1,) = problem.prepare_images(CONTENT, STYLE, tiny())
  _, (s2,) = problem.prepare_images(CONTENT, STYLE, tiny(style_scale=0.5))
  assert max(s1.shape[:2]) == 40 and max(s2.shape[:2]) == 20


def test_style_statistics_init_is_seeded_and_matches_style_colours(tiny_params):
  a = problem.initial_image(CONTENT, tiny(init="style", seed=1), [STYLE])
  b = problem.initial_image(CONTENT, tiny(init="style", seed=1), [STYLE])
  c = problem.initial_image(CONTENT, tiny(init="style", seed=2), [STYLE])
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  np.testing.assert_allclose(a.reshape(-1, 3).mean(0), STYLE.reshape(-1, 3).mean(0), atol=0.05)


@pytest.mark.slow
def test_masked_out_region_stays_the_content(tiny_params):
  mask = np.zeros(CONTENT.shape[:2], np.float32)
  mask[:, 20:] = 1.0
  r = js.stylize(CONTENT, STYLE, tiny(init="noise"), params=tiny_params, mask=mask)
  out = np.asarray(r.image)
  np.testing.assert_allclose(out[:, :20], CONTENT[:, :20], atol=1e-6)
  assert np.abs(out[:, 20:] - CONTENT[:, 20:]).mean() > 0.05


def _read_png16(path):
  data = open(path, "rb").read()
  pos, idat, hdr = 8, b"", None
  while pos < len(data):
    (n,) = struct.unpack(">I", data[pos : pos + 4])
    kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
    if kind == b"IHDR":
      hdr = struct.unpack(">IIBBBBB", body)
    elif kind == b"IDAT":
      idat += body
    pos += 12 + n
  w, h, depth, ctype = hdr[:4]
  rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 6)
  assert np.all(rows[:, 0] == 0)
  return depth, ctype, rows[:, 1:].copy().view(">u2").reshape(h, w, 3)


def test_16_bit_png(tmp_path):
  x = np.random.default_rng(0).uniform(size=(5, 7, 3)).astype(np.float32)
  images.save_image(tmp_path / "o.png", x, bit_depth=16)
  depth, ctype, arr = _read_png16(tmp_path / "o.png")
  assert (depth, ctype) == (16, 2)
  np.testing.assert_allclose(arr / 65535.0, x, atol=1 / 65535)
  assert Image.open(tmp_path / "o.png").size == (7, 5)  # a valid PNG for other readers too
  with pytest.raises(images.ImageError, match="PNG only"):
    images.save_image(tmp_path / "o.jpg", x, bit_depth=16)


def test_icc_profile_is_carried(tmp_path):
  from PIL import ImageCms

  icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  Image.fromarray(images.to_uint8(CONTENT)).save(tmp_path / "c.jpg", icc_profile=icc)
  assert images.read_icc_profile(tmp_path / "c.jpg") == icc
  images.save_image(tmp_path / "o.png", CONTENT, icc_profile=icc)
  assert Image.open(tmp_path / "o.png").info.get("icc_profile") == icc


@pytest.fixture
def cli_files(tmp_path, tiny_weights_file, monkeypatch):
  """Content, style and a mask (black over the first 10 columns) on disk; tiny weights in use."""
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  images.save_image(tmp_path / "c.png", CONTENT)
  images.save_image(tmp_path / "s.png", STYLE)
  mask = np.ones((32, 40, 3), np.float32)
  mask[:, :10] = 0
  images.save_image(tmp_path / "m.png", mask)
  return tmp_path


@pytest.mark.slow
def test_cli_controls_end_to_end(cli_files, capsys):
  tmp_path = cli_files
  args = [
    "stylize",
    tmp_path / "c.png",
    tmp_path / "s.png",
    "-o",
    tmp_path / "o.png",
    "--scales",
    "20,40",
    "--steps",
    "3",
    "--coarse-steps",
    "2",
    "--preserve-color",
    "luminance",
    "--mask",
    tmp_path / "m.png",
    "--bit-depth",
    "16",
    "--init",
    "style",
    "-q",
  ]
  assert cli.main([str(a) for a in args]) == 0, capsys.readouterr().err
  rec = json.loads((tmp_path / "o.json").read_text())
  assert rec["settings"]["images"]["scales"] == [20, 40] and rec["settings"]["images"]["preserve_color"] == "luminance"
  assert [s["size"] for s in rec["scales"]] == [[16, 20], [32, 40]]
  assert [s["steps"] for s in rec["scales"]] == [2, 3] and rec["settings"]["images"]["coarse_steps"] == 2
  depth, _, arr = _read_png16(tmp_path / "o.png")
  assert depth == 16 and arr.shape == (32, 40, 3)
  np.testing.assert_allclose(arr[:, :9] / 65535.0, images.load_image(tmp_path / "c.png")[:, :9], atol=2e-3)
  bad = ["stylize", tmp_path / "c.png", tmp_path / "s.png", "-o", tmp_path / "o.jpg", "--bit-depth", "16"]
  assert cli.main([str(a) for a in bad]) == 2 and "needs a .png" in capsys.readouterr().err
  assert cli.main([str(a) for a in [*bad[:5], "--scales", "64,32"]]) == 2
  assert "coarse to fine" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_with_preserved_colour(tiny_params):
  config = tiny(preserve_color="luminance")
  spec = sweep.SweepSpec(ratios=(1e-4, 1e-2))
  r = sweep.stylize_sweep(CONTENT, STYLE, config, spec.weights(config), params=tiny_params)
  for im in r.images:
    np.testing.assert_allclose(color.rgb_to_yiq(im)[..., 1:], color.rgb_to_yiq(CONTENT)[..., 1:], atol=2e-3)


def test_guided_gram_matches_numpy_and_reduces_to_the_plain_gram():
  from jaxstyle.objective import losses

  rng = np.random.default_rng(5)
  f = rng.normal(size=(2, 6, 8, 4)).astype(np.float32)
  m = rng.uniform(size=(3, 6, 8)).astype(np.float32)
  got = np.asarray(losses.guided_gram_matrix(f, m, normalize="hw"))
  want = np.einsum("nhwc,khw,nhwd->nkcd", f.astype(np.float64), m, f) / m.sum(axis=(1, 2))[None, :, None, None]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  one = np.asarray(losses.guided_gram_matrix(f, np.ones((1, 12, 16), np.float32), normalize="chw"))[:, 0]
  np.testing.assert_allclose(one, losses.gram_matrix(f, normalize="chw"), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_one_region_everywhere_equals_no_regions(tiny_params):
  a = js.stylize(CONTENT, STYLE, tiny(), params=tiny_params)
  b = js.stylize(CONTENT, STYLE, tiny(), params=tiny_params, regions=[np.ones(CONTENT.shape[:2], np.float32)])
  np.testing.assert_allclose(b.image, a.image, atol=1e-4)


@pytest.mark.slow
def test_each_region_takes_its_own_style(tiny_params):
  """Left half matched to a red style, right half to a blue one: the halves' colours
  follow, and swapping the region maps swaps them (measured +0.12 and -0.07 on this
  random 4-channel network)."""
  red = np.zeros((32, 32, 3), np.float32)
  red[..., 0] = 0.9
  blue = np.zeros((32, 32, 3), np.float32)
  blue[..., 2] = 0.9
  left = np.zeros((32, 40), np.float32)
  left[:, :20] = 1.0
  config = tiny(
    steps=40,
    report_every=20,
    style_layers=(("relu1_1", 0.05), ("relu2_1", 0.05)),
    content_weight=0.0,
    init="gray",
  )

  def redness_left_minus_right(regions):
    r = np.asarray(js.stylize(CONTENT, [red, blue], config, params=tiny_params, regions=regions).image)
    lm, rm = r[:, :16].reshape(-1, 3).mean(0), r[:, 24:].reshape(-1, 3).mean(0)
    return (lm[0] - lm[2]) - (rm[0] - rm[2])

  assert redness_left_minus_right([left, 1.0 - left]) > 0.04
  assert redness_left_minus_right([1.0 - left, left]) < -0.04
  with pytest.raises(ValueError, match="2 region maps for 1 style"):
    js.stylize(CONTENT, STYLE, tiny(), params=tiny_params, regions=[left, left])


@pytest.mark.slow
def test_cli_sweep_honours_mask_and_regions(cli_files, capsys):
  tmp_path = cli_files
  args = [
    "sweep",
    tmp_path / "c.png",
    tmp_path / "s.png",
    "-o",
    tmp_path / "o",
    "--ratios",
    "1e-3,1e-2",
    "--size",
    "40",
    "--steps",
    "3",
    "--preserve-color",
    "luminance",
    "--mask",
    tmp_path / "m.png",
    "--style-regions",
    tmp_path / "m.png",
    "-q",
  ]
  assert cli.main([str(a) for a in args]) == 0, capsys.readouterr().err
  rec = json.loads((tmp_path / "o" / "sweep.json").read_text())
  for k, m in enumerate(rec["members"]):
    out = images.load_image(tmp_path / "o" / m["image"])
    np.testing.assert_allclose(out[:, :9], images.load_image(tmp_path / "c.png")[:, :9], atol=1.5 / 255)
    # each member alone, from the command its record gives, is the same image
    cmd = shlex.split(m["command"])
    alone = tmp_path / f"alone{k}.png"
    cmd[cmd.index("-o") + 1] = str(alone)
    assert cli.main(cmd[1:] + ["-q"]) == 0, capsys.readouterr().err
    np.testing.assert_allclose(images.load_image(alone), out, atol=2.5 / 255)
  bad = [*args[:-3], "--style-regions", tmp_path / "m.png", tmp_path / "m.png", "-q"]
  assert cli.main([str(a) for a in bad]) == 2 and "one per style" in capsys.readouterr().err


def test_cli_sweep_bad_mask_or_regions_write_nothing(cli_files, capsys):
  """Masks and region maps are read before anything is created."""
  base = ["sweep", cli_files / "c.png", cli_files / "s.png", "--ratios", "1e-3", "--size", "40", "--steps", "2", "-q"]
  for extra, msg in [
    (["--mask", cli_files / "none.png"], "no such file"),
    (["--style-regions", cli_files / "m.png", cli_files / "m.png"], "one per style"),
  ]:
    out = cli_files / "new_dir"
    assert cli.main([str(a) for a in [*base, "-o", out, *extra]]) == 2
    assert msg in capsys.readouterr().err and not out.exists()


@pytest.mark.slow
def test_a_folder_of_photos_each_equal_to_its_command_alone(tmp_path, tiny_weights_file, monkeypatch, capsys):
  """``jaxstyle stylize PHOTOS/ STYLE -o OUT/``, 200 steps at 128 px: every photo's image is exactly what its
  record's command gives alone; two shapes, a style folder paired by name; --resume skips what is done."""
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  photos, styles, out = tmp_path / "photos", tmp_path / "styles", tmp_path / "out"
  photos.mkdir()
  styles.mkdir()
  for k, (name, hw) in enumerate([("a.png", (96, 128)), ("b.jpg", (96, 128)), ("c.png", (128, 96))]):
    images.save_image(photos / name, rng_image(10 + k, *hw))
    images.save_image(styles / f"{Path(name).stem}.png", rng_image(20 + k, 100, 100))
  flags = ["--size", "128", "--steps", "200", "--report-every", "100", "-q"]
  assert cli.main([str(a) for a in ["stylize", photos, styles, "-o", out, *flags]]) == 0, capsys.readouterr().err
  for stem in "abc":
    rec = json.loads((out / f"{stem}.json").read_text())
    assert rec["status"] == "completed" and rec["style"] == [str(styles / f"{stem}.png")]
    cmd = shlex.split(rec["reproduce"])
    alone = tmp_path / f"{stem}_alone.png"
    cmd[cmd.index("-o") + 1] = str(alone)
    assert cli.main(cmd[1:] + ["-q"]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(images.load_image(alone), images.load_image(out / f"{stem}.png"))
  before = (out / "a.png").stat().st_mtime_ns
  assert (
    cli.main([str(a) for a in ["stylize", photos, styles, "-o", out, *flags[:-1], "--resume", tmp_path / "ck"]]) == 0
  )
  assert "3 of 3 photos done before" in capsys.readouterr().err and (out / "a.png").stat().st_mtime_ns == before


def test_a_folder_refuses_what_only_one_photo_can_take(tmp_path, tiny_weights_file, monkeypatch, capsys):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tiny_weights_file))
  photos = tmp_path / "photos"
  photos.mkdir()
  images.save_image(photos / "a.png", rng_image(1, 40, 48))
  images.save_image(photos / "a.jpg", rng_image(2, 40, 48))
  images.save_image(tmp_path / "s.png", rng_image(3, 40, 48))
  base = ["stylize", photos, tmp_path / "s.png", "-o", tmp_path / "out", "--size", "40", "--steps", "2"]
  for extra, msg in [
    (["--mask", tmp_path / "s.png"], "not with a folder"),
    (["--sheet", tmp_path / "sheet.png"], "--sheet takes one content image"),
    ([], "photos share the name a"),
  ]:
    code = cli.main([str(a) for a in [*base, *extra]])
    err = capsys.readouterr().err
    assert code == 2 and msg in err and err.count("\n") == 1, err
  (photos / "a.jpg").unlink()
  styles = tmp_path / "styles"
  styles.mkdir()
  code = cli.main([str(a) for a in ["stylize", photos, styles, *base[3:]]])
  assert code == 2 and "no images there" in capsys.readouterr().err
  images.save_image(styles / "other.png", rng_image(4, 40, 48))
  code = cli.main([str(a) for a in ["stylize", photos, styles, *base[3:]]])
  assert code == 2 and "no style named a.*" in capsys.readouterr().err


FOLDER_ON_DEVICES = textwrap.dedent(
  """
  import jax, numpy as np
  import jaxstyle as js
  from jaxstyle.nets import vgg
  from jaxstyle.optim.stylize import Photo, stylize_folder
  from tests.conftest import rng_image
  assert jax.device_count() == 4, jax.devices()
  params = vgg.init_params(jax.random.key(0), widths=(4, 8, 8, 8, 8))
  config = js.presets.jaxstyle(size=48, steps=30, report_every=10)
  style = rng_image(9, 40, 40)
  contents = [rng_image(1, 36, 48), rng_image(2, 48, 36), rng_image(3, 36, 48)]
  seen = []
  got = {}
  for group, results in stylize_folder([Photo(c, style) for c in contents], config, params=params,
                                       callback=lambda p: seen.append((p.member, p.lead))):
    got.update(zip(group, results))
  assert sorted(got) == [0, 1, 2] and {m for m, _ in seen} == {0, 1, 2}, seen
  assert [m for m, lead in seen if lead][:1] == [0]  # photos 0 and 2 (one shape) ran side by side, 0 leading
  for i, c in enumerate(contents):
    alone = js.stylize(c, style, config, params=params)
    np.testing.assert_array_equal(np.asarray(got[i].image), np.asarray(alone.image))
  print("OK")
  """
)


@pytest.mark.slow
def test_a_folder_spreads_its_photos_over_the_devices():
  """Four devices: photos of one shape run side by side, each on its own device, and each is bit for bit
  its run alone on one device."""
  r = processes.run_script(FOLDER_ON_DEVICES, devices=4)
  assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
