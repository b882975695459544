"""What the web workbench's tests share (no tests here): tiny networks, the app built on them, input files, a
server started in this process."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxstyle.fast.stylize import Networks
from jaxstyle.io import images
from jaxstyle.nets import magenta
from tests.conftest import rng_image
from tests.processes import free_port

PREDICTOR = magenta.StylePredictor(stem=4, blocks=((1, 4, 1, 1), (2, 6, 2, 2)), head=8, style_dim=5)
TRANSFORMER = magenta.Transformer(contract=(3, 4, 6), expand=(4, 3), residual_blocks=1, style_dim=5)
MULTI = magenta.MultiStyle26(contract=(4, 4, 6), expand=(4, 3), residual_blocks=1)


def tiny_networks() -> Networks:
  return Networks(
    predictor=magenta.init_params(jax.random.key(1), PREDICTOR),
    transformer=magenta.init_params(jax.random.key(2), TRANSFORMER),
    multistyle=magenta.init_params(jax.random.key(3), MULTI),
    predictor_model=PREDICTOR,
  )


def bomb_png(path: Path, side: int = 20_000) -> Path:
  """A PNG whose header claims ``side`` x ``side`` pixels (over Pillow's limit) and holds almost nothing."""

  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

  ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
  path.write_bytes(
    b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
  )
  return path


def write_inputs(folder: Path, *, h: int = 32, w: int = 40) -> dict[str, str]:
  """A content, a style, a mask, a text file and a decompression bomb in ``folder``."""
  images.save_image(folder / "content.png", rng_image(0, h, w))
  images.save_image(folder / "style.png", rng_image(1, w, h))
  images.save_image(folder / "style2.png", rng_image(2, h, h))
  mask = np.zeros((h, w, 3), np.float32)
  mask[:, : w // 2] = 1.0
  images.save_image(folder / "mask.png", mask)
  (folder / "notes.png").write_text("not an image")
  bomb_png(folder / "bomb.png")
  return {k: str(folder / f"{k}.png") for k in ("content", "style", "style2", "mask", "notes", "bomb")}


@pytest.fixture(scope="module")
def tiny_fast():
  return tiny_networks()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  return write_inputs(tmp_path_factory.mktemp("ui_inputs"))


class Server:
  """The app served by this process on a free port of 127.0.0.1 (``url``), closed by :meth:`close`."""

  def __init__(self, app):
    from jaxstyle.ui import app as workbench

    self.app = app
    self.port = free_port()
    _, self.url, _ = workbench.launch(app, port=self.port, block=False)

  def close(self) -> None:
    self.app.close()


def write_clip(path: Path, *, frames: int = 6, h: int = 48, w: int = 64, audio: bool = False) -> Path:
  """A short H.264 clip written with PyAV: a texture panning 2 px a frame to the right (and a 440 Hz AAC tone as
  long, with ``audio``)."""
  import av

  big = rng_image(7, h, w + 2 * frames)
  with av.open(str(path), "w") as c:
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = w, h, "yuv420p"
    v.options = {"crf": "10"}
    a = c.add_stream("aac", rate=48000, layout="mono") if audio else None
    for t in range(frames):
      frame = images.to_uint8(big[:, 2 * frames - 2 * t : 2 * frames - 2 * t + w])
      c.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
    c.mux(v.encode())
    if a is not None:
      n = 48000 * frames // 25
      tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)[None]
      for k in range(0, n, 1024):
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 48000, k
        c.mux(a.encode(chunk))
      c.mux(a.encode())
  return path


def clip_frames(path) -> np.ndarray:
  """Every frame of a clip, ``(T, H, W, 3)`` uint8."""
  from jaxstyle.io import video

  return np.stack([f.pixels for f in video.read_frames(path)])
