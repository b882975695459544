"""Settings: validation, presets, and the one declaration every flag, record and command derives from."""

import dataclasses
import json
import shlex
from typing import Literal

import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.nets import vgg
from jaxstyle.settings import fields, presets
from jaxstyle.settings import style as config
from jaxstyle.settings.fast import FastSettings
from jaxstyle.settings.style import PictureSettings, StyleConfig
from jaxstyle.settings.train import TrainSettings
from jaxstyle.settings.video import VideoSettings


def random_config(rng: np.random.Generator) -> StyleConfig:
  """A random valid config, masks, regions, colour, blends, scales and layer weights included."""
  names = list(vgg.LAYERS)
  pick = lambda k: tuple(rng.choice(names, size=k, replace=False))  # noqa: E731
  weight = lambda: float(rng.choice([0.0, 0.05, 0.75, 1.0, float(rng.uniform(0, 10))]))  # noqa: E731
  kind = str(rng.choice(config.OPTIMIZERS))
  size = int(rng.integers(16, 2048))
  n_styles = int(rng.integers(1, 4))
  changes = dict(
    content_layers=tuple((n, weight()) for n in pick(int(rng.integers(1, 3)))),
    style_layers=tuple((n, weight()) for n in pick(int(rng.integers(0, 6)))),
    content_weight=float(rng.uniform(0, 1e3)),
    style_weight=float(10 ** rng.uniform(-5, 8)),
    tv_weight=float(rng.choice([0.0, rng.uniform(0, 50)])),
    gram_norm=str(rng.choice(["none", "hw", "chw"])),
    content_reduction=str(rng.choice(["sum", "mean", "half_sum"])),
    style_reduction=str(rng.choice(["sum", "mean", "half_sum"])),
    style_layer_norm=str(rng.choice(["none", "chw"])),
    tv_kind=str(rng.choice(["l1", "l2"])),
    tv_reduction=str(rng.choice(["sum", "mean"])),
    kind=kind,
    learning_rate=None if rng.random() < 0.3 else float(rng.uniform(1e-4, 2)),
    line_search=str(rng.choice(config.LINE_SEARCHES)),
    memory=int(rng.integers(1, 200)),
    b1=float(rng.uniform(0, 0.999)),
    b2=float(rng.uniform(0, 0.999)),
    eps=float(10 ** rng.uniform(-10, 0)),
    clip=bool(rng.random() < 0.5),
    size=None if rng.random() < 0.2 else size,
    scales=None if rng.random() < 0.5 else tuple(sorted(int(v) for v in rng.integers(16, 4096, 3))),
    coarse_steps=None if rng.random() < 0.5 else int(rng.integers(0, 500)),
    style_scale=float(rng.uniform(0.1, 3)),
    style_blend=None if rng.random() < 0.5 else tuple(float(rng.uniform(0.1, 1)) for _ in range(n_styles)),
    preserve_color=str(rng.choice(config.COLOR_MODES)),
    init=str(rng.choice(["content", "noise", "gray", "style", "/tmp/start image.png"])),
    seed=int(rng.integers(0, 2**31)),
    mask=None if rng.random() < 0.5 else "/tmp/a mask.png",
    style_regions=None if rng.random() < 0.5 else tuple(f"/tmp/region {k}.png" for k in range(n_styles)),
    pooling=str(rng.choice(config.POOLINGS)),
    native_pooling=None if rng.random() < 0.5 else str(rng.choice(config.POOLINGS)),
    conv=str(rng.choice(vgg.CONV_ALGORITHMS)),
    steps=int(rng.integers(0, 2000)),
    report_every=int(rng.integers(1, 100)),
    save_every=None if rng.random() < 0.5 else int(rng.integers(1, 100)),
    chunk=int(rng.integers(1, 100)),
  )
  if changes["scales"] is not None and rng.random() < 0.5:  # one count per coarse scale
    changes["coarse_steps"] = tuple(int(v) for v in rng.integers(0, 500, len(changes["scales"]) - 1))
  if not changes["content_layers"] and not changes["style_layers"]:
    changes["style_layers"] = (("relu1_1", 1.0),)
  return presets.get(str(rng.choice(sorted(presets.PRESETS))), **changes)


@pytest.mark.parametrize("seed", range(40))
def test_settings_to_command_to_settings_is_the_identity(seed):
  want = random_config(np.random.default_rng(seed))
  command = cli.stylize_command("/c.png", ["/s.png"], "/o.png", want, None)
  args = cli.build_parser().parse_args(shlex.split(command)[1:])
  assert cli.config_from_args(args) == want


@pytest.mark.parametrize("seed", range(10))
def test_record_round_trip(seed):
  want = random_config(np.random.default_rng(100 + seed))
  record = json.loads(json.dumps(want.to_dict()))
  assert StyleConfig.from_dict(record) == want


def test_every_field_has_a_flag_and_every_flag_a_field():
  parser = cli.build_parser()
  stylize = parser._subparsers._group_actions[0].choices["stylize"]
  recipe = next(g for g in stylize._action_groups if g.title.startswith("recipe"))
  flags = {opt for a in recipe._group_actions for opt in a.option_strings if opt.startswith("--")}
  declared = {d.flag for d in StyleConfig.declarations()} | {"--preset"}
  booleans = {"--no-" + d.flag[2:] for d in StyleConfig.declarations() if d.codec.flag_bool}
  assert flags == declared | booleans
  fields = {(s, f.name) for s, kind in config.SECTIONS.items() for f in dataclasses.fields(kind)}
  assert fields == {(d.section, d.field) for d in StyleConfig.declarations()}
  assert len({d.field for d in StyleConfig.declarations()}) == len(fields)  # flat names are unique


@pytest.mark.parametrize(
  "changes,match",
  [
    ({"style_weight": -1.0}, "style_weight must be a finite non-negative number"),
    ({"tv_weight": float("inf")}, "tv_weight"),
    ({"style_layers": (("relu9_9", 1.0),)}, "style_layers names unknown VGG19 layer"),
    ({"content_layers": ("relu4_2", "relu4_2")}, "content_layers names a layer twice"),
    ({"kind": "sgd"}, "kind must be one of lbfgs, adam"),
    ({"memory": 0}, "memory must be a positive integer"),
    ({"b1": 1.0}, "b1 must be in"),
    ({"scales": (512, 256)}, "scales must go from coarse to fine"),
    ({"style_blend": (0.0, 0.0)}, "style_blend weights must not all be zero"),
    ({"steps": 2.5}, "steps must be an integer"),
    ({"steps": -1}, "steps must be a non-negative integer"),
    ({"size": "big"}, "size must be an integer or none"),
    ({"scales": (256, "x")}, "scales must be a non-empty tuple, each an integer or one of auto or none"),
    ({"tile": "whole"}, "tile must be an integer or one of auto"),
    ({"clip": 1}, "clip must be true or false"),
    ({"chunk": 0}, "chunk must be a positive integer"),
    ({"no_such_setting": 1}, "unknown setting 'no_such_setting'"),
    ({"optimizer": "adam"}, "kind="),
  ],
)
def test_each_section_refuses_bad_values_with_a_line_naming_the_field(changes, match):
  with pytest.raises(ValueError, match=match) as e:
    presets.gatys(**changes)
  assert "\n" not in str(e.value)


def test_switching_optimizer_kind_resets_the_learning_rate_unless_given():
  assert presets.gatys(kind="adam").optimizer.lr == config.DEFAULT_LR["adam"]
  assert presets.pytorch_course(kind="lbfgs").optimizer.lr == 1.0
  assert presets.gatys(kind="adam", learning_rate=0.1).optimizer.lr == 0.1
  assert presets.tf_tutorial(kind="adam").optimizer.lr == 0.02  # same kind: the preset's own rate stays


def test_auto_scales_resolve_against_the_size():
  assert config.auto_scales(1024) == (256, 512, 1024)
  assert presets.gatys(size=1024, scales="auto").images.scales == "auto"  # as declared, until resolved
  assert presets.gatys(size=1024, scales="auto").resolve().images.scales == (256, 512, 1024)
  assert presets.gatys(size=200, scales="auto").resolve().images.scales == (200,)


def test_an_automatic_ladder_follows_the_size_an_explicit_one_stays():
  base = presets.jaxstyle()
  assert base.resolve().images.scales == (256, 512) and base.images.output_size == 512
  assert base.set(size=1024).resolve().images.scales == (256, 512, 1024)
  assert base.set(size=256).resolve().images.scales == (256,)
  assert base.set(size=None).resolve().images.scales is None and base.set(size=None).images.output_size is None
  assert base.set(size=384, scales=(192, 384)).resolve().images.scales == (192, 384)
  assert presets.gatys(scales=(100, 300)).set(size=256).resolve().images.scales == (100, 300)
  assert fields.from_flags(base, {"size": 1024}).resolve().images.output_size == 1024  # as the CLI builds it
  resolved = base.resolve()
  assert resolved.resolve() is resolved and resolved.set(size=1024).images.scales == (256, 512)


def test_loss_defaults_are_the_loss_spec_defaults():
  from jaxstyle.objective import losses

  assert config.LossSettings().spec() == losses.LossSpec()


def test_resumable_fields_are_the_run_intervals():
  assert StyleConfig.resumable_fields() == {"run.steps", "run.report_every", "run.save_every", "run.chunk"}
  assert TrainSettings.resumable_fields() == {"steps", "report_every", "eval_every", "checkpoint_every"}


@pytest.mark.parametrize(
  "annotation,text,value",
  [
    (int, "12", 12),
    (float, "0.25", 0.25),
    (int | None, "none", None),
    (Literal["a", "b"], "b", "b"),
    (tuple[int, ...], "256,512", (256, 512)),
    (tuple[float, ...] | None, "0.5,0.5", (0.5, 0.5)),
    (int | Literal["auto"] | None, "auto", "auto"),
    (int | Literal["auto"] | None, "64", 64),
    (int | tuple[int, ...] | None, "300,100", (300, 100)),
    (int | tuple[int, ...] | None, "300", 300),
    (tuple[int, ...] | Literal["auto"] | None, "256", (256,)),
  ],
)
def test_codecs_follow_from_the_type(annotation, text, value):
  codec = fields.codec_for(annotation)
  assert codec.parse(text) == value
  assert codec.holds(value) and codec.parse(codec.format(value)) == value


def test_every_family_shares_one_base_and_its_flags_round_trip():
  for family in (StyleConfig, FastSettings, TrainSettings, VideoSettings):
    assert issubclass(family, fields.Settings)
    want = family().set() if family is not StyleConfig else presets.gatys()
    words = fields.to_flags(want)
    parser = cli.common.Parser(prog="t")
    cli.common.add_setting_flags(parser, family.declarations())
    assert (
      fields.from_flags(family() if family is not StyleConfig else presets.gatys(), vars(parser.parse_args(words)))
      == want
    )


def test_the_fast_settings_reuse_the_picture_declarations():
  picture = {f.name for f in dataclasses.fields(PictureSettings)}
  assert picture <= {f.name for f in dataclasses.fields(FastSettings)}
  assert picture <= {f.name for f in dataclasses.fields(config.ImageSettings)}
  with pytest.raises(ValueError, match="style_blend weights must not all be zero"):
    FastSettings(style_blend=(0.0,))
  with pytest.raises(ValueError, match="size must be at least 5"):
    FastSettings(size=4)


def test_neural_style_preset_is_jcjohnsons_defaults():
  c = presets.get("neural-style")
  assert (c.loss.content_weight, c.loss.style_weight) == (5.0, 100.0)
  assert c.loss.style_layers == tuple((n, 1.0) for n in vgg.STYLE_LAYERS) and c.loss.content_layers == (
    ("relu4_2", 1.0),
  )
  assert (c.loss.gram_norm, c.loss.content_reduction, c.loss.style_reduction) == ("chw", "mean", "mean")
  assert (c.loss.tv_kind, c.loss.tv_reduction) == ("l2", "sum") and c.loss.tv_weight == 1e-3 * 256**2 / 2
  assert (c.network.pooling, c.images.size, c.run.steps, c.images.init, c.optimizer.memory) == (
    "max",
    512,
    1000,
    "mean",
    100,
  )
