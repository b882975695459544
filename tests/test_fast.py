"""Fast stylization (jaxstyle.fast and `jaxstyle fast`): tiny random networks, and the real ones through the CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.fast import stylize as fast
from jaxstyle.fast.stylize import Networks
from jaxstyle.io import color, images
from jaxstyle.nets import magenta
from jaxstyle.settings.fast import BUILTIN, FastSettings
from tests.conftest import assert_f32_close, rng_image

PREDICTOR = magenta.StylePredictor(stem=4, blocks=((1, 4, 1, 1), (2, 6, 2, 2)), head=8, style_dim=5)
TRANSFORMER = magenta.Transformer(contract=(3, 4, 6), expand=(4, 3), residual_blocks=1, style_dim=5)
MULTI = magenta.MultiStyle26(contract=(4, 4, 6), expand=(4, 3), residual_blocks=1)
PHOTOS = [rng_image(k, 24, 32) for k in range(3)] + [rng_image(9, 20, 20)]
STYLE = rng_image(5, 30, 30)


@pytest.fixture(scope="module")
def nets():
  return Networks(
    predictor=magenta.init_params(jax.random.key(1), PREDICTOR),
    transformer=magenta.init_params(jax.random.key(2), TRANSFORMER),
    multistyle=magenta.init_params(jax.random.key(3), MULTI),
    predictor_model=PREDICTOR,
  )


def settings(**kw):
  return FastSettings(size=None, style_size=16, **kw)


@pytest.mark.slow
def test_batched_by_shape_equals_one_at_a_time(nets):
  together = fast.stylize_fast(PHOTOS, [STYLE], settings(batch=2), nets)
  for photo, got in zip(PHOTOS, together, strict=True):
    alone = fast.stylize_fast([photo], [STYLE], settings(batch=1), nets)[0]
    assert got.shape == photo.shape
    np.testing.assert_allclose(got, alone, atol=1e-5)


def test_the_network_sees_the_blended_vector(nets):
  style2 = rng_image(6, 28, 36)
  v = fast.style_vector(nets.predictor, [STYLE, style2], settings(style_blend=(1.0, 3.0)), model=PREDICTOR)
  v1, v2 = (magenta.predict_style(nets.predictor, s, style_size=16, model=PREDICTOR) for s in (STYLE, style2))
  assert_f32_close(v, 0.25 * v1 + 0.75 * v2, terms=2)
  got = fast.stylize_fast([PHOTOS[0]], [STYLE, style2], settings(style_blend=(1.0, 3.0)), nets)[0]
  want = np.clip(np.asarray(magenta.transfer(nets.transformer, PHOTOS[0], v)), 0, 1)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_strength_interpolates_toward_the_contents_own_vector(nets):
  photo = PHOTOS[0]
  own = magenta.predict_style(nets.predictor, photo, style_size=16, model=PREDICTOR)
  zero = fast.stylize_fast([photo], [STYLE], settings(strength=0.0), nets)[0]
  np.testing.assert_allclose(zero, np.clip(np.asarray(magenta.transfer(nets.transformer, photo, own)), 0, 1), atol=1e-5)
  full = fast.stylize_fast([photo], [STYLE], settings(strength=1.0), nets)[0]
  assert np.abs(full - zero).max() > 1e-3


def test_builtin_mix_equals_the_weighted_network(nets):
  got = fast.stylize_fast([PHOTOS[0]], [], settings(builtin=((3, 1.0), (12, 3.0))), nets)[0]
  w = np.zeros(26, np.float32)
  w[3], w[12] = 0.25, 0.75
  want = np.clip(np.asarray(magenta.multistyle(nets.multistyle, PHOTOS[0], w)), 0, 1)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_all_26_in_one_call_equal_each_alone(nets):
  sheet = fast.stylize_variants(PHOTOS[0], np.eye(26, dtype=np.float32), settings(builtin=((0, 1.0),)), nets)
  assert sheet.shape == (26, *PHOTOS[0].shape)
  for k in (0, 7, 25):
    alone = fast.stylize_fast([PHOTOS[0]], [], settings(builtin=((k, 1.0),)), nets)[0]
    np.testing.assert_allclose(sheet[k], alone, atol=1e-5)


def test_mask_keeps_the_content_and_luminance_keeps_its_colours(nets):
  photo = 0.25 + 0.5 * PHOTOS[0]
  mask = np.zeros(photo.shape[:2] + (1,), np.float32)
  mask[:, 16:] = 1.0
  out = fast.stylize_fast([photo], [STYLE], settings(), nets, mask=mask)[0]
  np.testing.assert_allclose(out[:, :14], photo[:, :14], atol=2e-3)
  lum = fast.stylize_fast([photo], [STYLE], settings(preserve_color="luminance"), nets)[0]
  inside = np.all((lum > 0.01) & (lum < 0.99), axis=-1)  # where the recombined colour is in gamut (not clipped)
  assert inside.mean() > 0.5
  np.testing.assert_allclose(color.rgb_to_yiq(lum)[inside, 1:], color.rgb_to_yiq(photo)[inside, 1:], atol=2e-3)


def test_size_sets_the_longest_side(nets):
  out = fast.stylize_fast([PHOTOS[0]], [STYLE], FastSettings(size=16, style_size=16), nets)[0]
  assert out.shape == (12, 16, 3)


@pytest.mark.parametrize(
  "changes,match",
  [
    (dict(strength=1.5), "strength must be in"),
    (dict(builtin=((26, 1.0),)), "builtin names style 26"),
    (dict(builtin=((1, 0.0),)), "must not all be zero"),
    (dict(size=2), "size must be"),
    (dict(style_blend=(0.0,)), "style_blend weights must not all be zero"),
  ],
)
def test_bad_settings(changes, match):
  with pytest.raises(ValueError, match=match):
    FastSettings(**changes)


def test_builtin_flag_round_trip():
  assert BUILTIN.parse("3") == ((3, 1.0),)
  v = BUILTIN.parse("3:0.5,12:0.5")
  assert v == ((3, 0.5), (12, 0.5)) and BUILTIN.parse(BUILTIN.format(v)) == v


# --------------------------------------------------------------------------- the real networks, through the CLI


@pytest.mark.real_weights
def test_cli_fast_file_folder_and_sheet(real_fast, tmp_path, capsys):
  images.save_image(tmp_path / "c.png", rng_image(0, 48, 64))
  images.save_image(tmp_path / "s.png", rng_image(1, 64, 64))
  (tmp_path / "in").mkdir()
  for k in range(3):
    images.save_image(tmp_path / "in" / f"p{k}.png", rng_image(10 + k, 48, 64))
  run = lambda *a: cli.main([str(x) for x in a])  # noqa: E731
  assert run("fast", tmp_path / "c.png", tmp_path / "s.png", "-o", tmp_path / "o.png", "--size", "64", "-q") == 0
  assert images.load_image(tmp_path / "o.png").shape == (48, 64, 3)
  rec = json.loads((tmp_path / "o.json").read_text())
  assert rec["settings"]["size"] == 64 and rec["style"] == [str(tmp_path / "s.png")]
  assert run("fast", tmp_path / "in", "--builtin", "3:0.5,12:0.5", "-o", tmp_path / "out", "--batch", "2", "-q") == 0
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fast.json", "p0.png", "p1.png", "p2.png"]
  assert run("fast", tmp_path / "c.png", "--sheet", tmp_path / "sheet.png", "--size", "32") == 0
  assert images.load_image(tmp_path / "sheet.png").shape[1] > 9 * 32
  capsys.readouterr()
  for bad, msg in [
    (["fast", tmp_path / "c.png", "-o", tmp_path / "x.png"], "give STYLE image(s)"),
    (["fast", tmp_path / "c.png", tmp_path / "s.png"], "give -o OUT"),
    (["fast", tmp_path / "c.png", tmp_path / "s.png", "-o", tmp_path / "x.png", "--strength", "2"], "strength"),
    (["fast", tmp_path / "nope.png", tmp_path / "s.png", "-o", tmp_path / "x.png"], "no such file"),
    (["fast", tmp_path / "c.png", "--builtin", "30", "-o", tmp_path / "x.png"], "builtin"),
  ]:
    assert run(*bad) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.real_weights
def test_stylize_can_start_from_the_fast_network(real_fast, tiny_params):
  import jaxstyle as js
  from tests.conftest import tiny

  content, style = rng_image(0, 32, 40), rng_image(1, 40, 32)
  r = js.stylize(content, style, tiny(init="fast", steps=0), params=tiny_params)
  want = fast.initial_image(content, [style])
  np.testing.assert_allclose(r.image, want, atol=1e-5)
  assert np.abs(np.asarray(r.image) - content).mean() > 0.02  # not the content: the network's picture


def test_jit_of_the_fast_path_compiles_once_per_shape(nets):
  f = jax.jit(lambda x, v: magenta.transfer(nets.transformer, x, v))
  v = jnp.zeros((2, 5))
  f(jnp.zeros((2, 24, 32, 3)), v)
  with jax.log_compiles(False):
    before = f._cache_size()
    f(jnp.ones((2, 24, 32, 3)), v)
    assert f._cache_size() == before


@pytest.mark.real_weights
def test_cli_train_then_fast_with_the_model(real_fast, real_params, tmp_path, capsys):
  (tmp_path / "photos").mkdir()
  for k in range(2):
    images.save_image(tmp_path / "photos" / f"p{k}.png", rng_image(20 + k, 72, 96))
  images.save_image(tmp_path / "s.png", rng_image(3, 64, 64))
  model = tmp_path / "m.h5"
  args = ["train", tmp_path / "s.png", "--content", tmp_path / "photos", "-o", model]
  args += ["--steps", "2", "--batch", "1", "--size", "64", "-q"]
  assert cli.main([str(a) for a in args]) == 0, capsys.readouterr().err
  rec = json.loads(model.with_suffix(".json").read_text())
  assert rec["steps_done"] == 2 and rec["settings"]["size"] == 64
  out = tmp_path / "o.png"
  fast_args = ["fast", tmp_path / "photos" / "p0.png", "--model", model, "-o", out, "--size", "none", "-q"]
  assert cli.main([str(a) for a in fast_args]) == 0
  assert images.load_image(out).shape == (72, 96, 3)
  capsys.readouterr()
  bad = ["train", tmp_path / "s.png", "--content", tmp_path / "nothing", "-o", tmp_path / "x.h5"]
  assert cli.main([str(a) for a in bad]) == 2
  err = capsys.readouterr().err
  assert "not a folder" in err and err.count("\n") == 1 and not (tmp_path / "x.h5").exists()
