"""The VGG19 handed to neural-style: a PyTorch state dict written without torch (``jaxstyle weights export``).

Fast tier: the zip-format ``torch.save`` writer against our own restricted reader, the state dict's keys,
layout (OIHW) and values on the tiny network, the file-name rule and the CLI. With torch installed (each in a
process of its own: torch never runs beside XLA in the suite's), ``slow``: ``torch.load`` of the file; and in
the full tier (``real_weights``): the real weights through neural-style's own VGG19 loader give our
activations, relu1_1 .. relu5_1, to float32 tolerance. Without torch or neural-style these skip, saying why.
"""

from __future__ import annotations

import importlib.util
import struct
import zipfile

import jax
import numpy as np
import pytest

from jaxstyle import cli
from jaxstyle.errors import WeightsError
from jaxstyle.io import torch_pickle
from jaxstyle.io import vgg_weights as weights
from jaxstyle.nets import vgg
from tests import processes
from tests.conftest import assert_f32_close, rng_image

FEATURES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
KEYS = {f"features.{i}.{p}" for i in FEATURES for p in ("weight", "bias")}


def arrays():
  rng = np.random.default_rng(0)
  return {
    "w": rng.standard_normal((4, 3, 3, 3), np.float32),
    "t": rng.standard_normal((3, 4, 5), np.float32).transpose(2, 0, 1),  # not contiguous
    "b": np.arange(7, dtype=np.float32),
    "scalar": np.asarray(2.5, np.float32),
    "empty": np.zeros((0, 3), np.float32),
    "q": np.arange(256, dtype=np.uint8),
  }


def test_torch_zip_round_trip(tmp_path):
  a = arrays()
  path = torch_pickle.write_torch_zip(tmp_path / "x.pth", a)
  back = torch_pickle.read_torch_zip(path)
  assert list(back) == list(a)
  for k, v in a.items():
    assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
    np.testing.assert_array_equal(back[k], v)
  assert torch_pickle.read_torch_zip(path.read_bytes()).keys() == a.keys()
  # As torch.save lays it out: stored, one archive folder, each record's data at a multiple of 64 bytes.
  raw = path.read_bytes()
  with zipfile.ZipFile(path) as z:
    assert {i.filename.split("/")[0] for i in z.infolist()} == {"archive"}
    assert z.read("archive/version") == b"3\n" and z.read("archive/byteorder") == b"little"
    for info in z.infolist():
      assert info.compress_type == zipfile.ZIP_STORED
      name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
      assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename


def test_torch_zip_refuses(tmp_path):
  with pytest.raises(WeightsError, match="float64"):
    torch_pickle.write_torch_zip(tmp_path / "x.pth", {"a": np.zeros(3)})
  (tmp_path / "bad.pth").write_bytes(b"not a zip")
  with pytest.raises(WeightsError):
    torch_pickle.read_torch_zip(tmp_path / "bad.pth")
  # A pickle naming any other global (code) is refused by the reader.
  with zipfile.ZipFile(tmp_path / "evil.pth", "w") as z:
    z.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\n(X\x04\x00\x00\x00truetR.")
  with pytest.raises(WeightsError, match="os.system"):
    torch_pickle.read_torch_zip(tmp_path / "evil.pth")


def test_export_layout(tmp_path, tiny_params):
  params = jax.tree.map(np.asarray, tiny_params)
  path = weights.export_torch(tmp_path / "vgg19-tiny.pth", params)
  state = torch_pickle.read_torch_zip(path)
  assert set(state) == KEYS
  for conv, i in zip(vgg.CONV_LAYERS, FEATURES, strict=True):
    k, b = params[conv]["kernel"], params[conv]["bias"]
    w = state[f"features.{i}.weight"]
    assert w.shape == (k.shape[3], k.shape[2], 3, 3)  # OIHW
    # No channel flip: our first kernel reads BGR input channels in order, as Caffe's and neural-style's do.
    np.testing.assert_array_equal(w, k.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(w[:, :, 0, 2], k[0, 2].T)  # row 0, column 2: a cross-correlation as in torch
    np.testing.assert_array_equal(state[f"features.{i}.bias"], b)
  back = weights.read_torch_export(path)
  for conv in vgg.CONV_LAYERS:
    np.testing.assert_array_equal(back[conv]["kernel"], params[conv]["kernel"])
    np.testing.assert_array_equal(back[conv]["bias"], params[conv]["bias"])


@pytest.mark.parametrize("name", ["model.pth", "vgg16.pth", "vgg19_sod.pth", "19.pth"])
def test_export_needs_a_name_neural_style_reads_as_vgg19(tmp_path, tiny_params, name):
  with pytest.raises(WeightsError, match="'vgg' and '19'"):
    weights.export_torch(tmp_path / name, jax.tree.map(np.asarray, tiny_params))
  assert not (tmp_path / name).exists()


def test_export_cli(tmp_path, tiny_weights_file, capsys):
  code = cli.main(["weights", "export", "--torch", str(tmp_path / "VGG19.pth"), "--weights", str(tiny_weights_file)])
  out = capsys.readouterr().out
  assert code == 0 and "-model_file" in out
  assert set(torch_pickle.read_torch_zip(tmp_path / "VGG19.pth")) == KEYS
  assert cli.main(["weights", "export", "--torch", str(tmp_path / "w.pth"), "--weights", str(tiny_weights_file)]) != 0


def needs(*modules: str) -> None:
  """Skips unless every module is installed (looked up, not imported: torch runs in a process of its own, never
  beside XLA in the suite's)."""
  for m in modules:
    if importlib.util.find_spec(m) is None:
      pytest.skip(f"{m} not installed (pip install -e '.[reference-neural-style]')")


TORCH_LOAD = """
import sys
import numpy as np
import torch
states = [torch.load(sys.argv[1], **kw) for kw in ({}, {"weights_only": True}, {"weights_only": True, "mmap": True})]
for state in states:
  assert list(state) == list(states[0])
  assert all(v.dtype == torch.float32 and v.is_contiguous() and not v.requires_grad for v in state.values())
  assert all(torch.equal(v, states[0][k]) for k, v in state.items())
np.savez(sys.argv[2], **{k: v.numpy() for k, v in states[0].items()})
"""


@pytest.mark.slow
def test_torch_loads_the_export(tmp_path, tiny_params):
  needs("torch")
  params = jax.tree.map(np.asarray, tiny_params)
  path = weights.export_torch(tmp_path / "vgg19.pth", params)
  proc = processes.run_script(TORCH_LOAD, path, tmp_path / "state.npz", timeout=300)
  assert proc.returncode == 0, proc.stderr
  state = np.load(tmp_path / "state.npz")
  assert set(state.files) == KEYS
  for conv, i in zip(vgg.CONV_LAYERS, FEATURES, strict=True):
    np.testing.assert_array_equal(state[f"features.{i}.weight"], params[conv]["kernel"].transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state[f"features.{i}.bias"], params[conv]["bias"])


NEURAL_STYLE_FEATURES = """
import sys
import numpy as np
import torch
from neural_style.loader.CaffeLoader import loadCaffemodel
cnn, names = loadCaffemodel(sys.argv[1], "max", "c", True)  # -pooling max -gpu c -disable_check
x = torch.from_numpy(np.load(sys.argv[2]))
want, out, relu = sys.argv[4].split(","), {}, 0
with torch.no_grad():
  for layer in cnn:
    x = layer(x)
    if isinstance(layer, torch.nn.ReLU):
      if names["R"][relu] in want:
        out[names["R"][relu]] = x.numpy().transpose(0, 2, 3, 1).copy()
      relu += 1
      if len(out) == len(want):
        break
np.savez(sys.argv[3], **out)
"""


@pytest.mark.slow
def test_neural_style_loader_gives_our_activations(tmp_path, real_params):
  """The real weights, exported, through neural-style's own ``loadCaffemodel`` (the VGG19 it builds, loaded
  with ``-disable_check``'s ``strict=False``, which would silently keep random weights under a wrong key):
  relu1_1 .. relu5_1 equal ``jaxstyle.nets.vgg``'s on the same Caffe-preprocessed image."""
  needs("torch", "neural_style")
  path = weights.export_torch(tmp_path / "vgg19.pth", jax.tree.map(np.asarray, real_params))
  image = rng_image(3, 48, 64)
  x = np.asarray(vgg.preprocess(image[None]))  # (1, H, W, 3) BGR, x255, mean subtracted
  np.save(tmp_path / "x.npy", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  proc = processes.run_script(
    NEURAL_STYLE_FEATURES, path, tmp_path / "x.npy", tmp_path / "f.npz", ",".join(vgg.STYLE_LAYERS), timeout=300
  )
  assert proc.returncode == 0, proc.stderr
  theirs = np.load(tmp_path / "f.npz")
  ours = vgg.extract_features(real_params, image[None], vgg.STYLE_LAYERS)
  for depth, name in enumerate(vgg.STYLE_LAYERS, 1):
    a = np.asarray(ours[name])
    assert a.shape == theirs[name].shape, name
    assert float(np.abs(theirs[name]).max()) > 0, name
    assert_f32_close(a, theirs[name], terms=9 * 512, stages=4 * depth)
