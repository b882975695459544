"""Video files and folders of frames: streamed reading and writing, the audio track copied unchanged.

A clip is read as a stream of ``(H, W, 3)`` uint8 RGB frames (:func:`read_frames`) after :func:`probe` has
checked it; memory does not grow with its length. :class:`VideoWriter` encodes frames as they come (H.264 in
yuv420p with even sides for mp4/mov/mkv, VP9 for webm, GIF) at the input's frame rate and timestamps, and copies
the input's audio packets into the output without decoding them, interleaved by time. The output is written
beside its name and renamed onto it when closed, so a closed output always plays: after an interruption it
holds the frames written so far. A folder of frames is read in name order and written as ``000000.png``, ...

Containers and codecs come from PyAV (FFmpeg's libraries in its wheel), the ``jaxstyle[video]`` extra.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from jaxstyle.errors import FileError, InputError, one_line
from jaxstyle.io import files
from jaxstyle.io import images as imageio

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif", ".avi", ".m4v")
FOLDER_RATE = Fraction(25)  # a folder of frames has no rate of its own
_CODECS = {".webm": ("libvpx-vp9", "yuv420p"), ".gif": ("gif", "rgb8")}
_H264 = ("libx264", "yuv420p")


class VideoError(FileError):
  """A clip that cannot be read or written (one line naming the file, and the frame where it applies)."""


class ClipInfo(NamedTuple):
  """What a clip is, read before anything is written.

  Attributes:
    path: the file or folder.
    width, height: frame size in px.
    rate: frames per second.
    frames: the frame count (the container's; may be ``None`` when it does not say).
    time_base: the video stream's time base (seconds per pts unit).
    audio: whether the file has an audio track (copied into video outputs).
  """

  path: str
  width: int
  height: int
  rate: Fraction
  frames: int | None
  time_base: Fraction
  audio: bool


class Frame(NamedTuple):
  """One decoded frame: its index in the clip, its presentation time in seconds and its pixels."""

  index: int
  time: float
  pixels: np.ndarray  # (H, W, 3) uint8


def _av():
  try:
    import av
  except ImportError:
    raise InputError("video needs PyAV: pip install 'jaxstyle[video]'") from None
  av.logging.set_level(av.logging.PANIC)  # errors reach the user as one line each, not FFmpeg's log
  return av


def is_video_path(path: str | os.PathLike) -> bool:
  """Whether ``path`` names a video file by its suffix (a folder of frames is not one)."""
  return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_SUFFIXES


def probe(path: str | os.PathLike) -> ClipInfo:
  """Opens a clip (a video file or a folder of frames) and decodes its first frame.

  Raises:
    VideoError: missing, not a video, no video stream, zero frames or an undecodable first frame.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    try:
      first = next(_folder_frames(path, 0, 1), None)
    except FileError as e:
      raise VideoError(f"{path}: no frames ({one_line(e)})") from None
    if first is None:
      raise VideoError(f"{path}: no frames (a folder of frames holds images)")
    h, w = first.pixels.shape[:2]
    return ClipInfo(path, w, h, FOLDER_RATE, len(imageio.list_images(path)), Fraction(1) / FOLDER_RATE, False)
  if not os.path.exists(path):
    raise VideoError(f"{path}: no such file")
  av = _av()
  try:
    with av.open(path) as c:
      if not c.streams.video:
        raise VideoError(f"{path}: no video stream")
      s = c.streams.video[0]
      rate = Fraction(s.average_rate or s.guessed_rate or FOLDER_RATE)
      first = next(c.decode(s), None)
      if first is None:
        raise VideoError(f"{path}: no frames")
      return ClipInfo(
        path, first.width, first.height, rate, s.frames or None, Fraction(s.time_base), bool(c.streams.audio)
      )
  except av.FFmpegError as e:
    raise VideoError(f"{path}: not a readable video ({one_line(e)})") from None


def read_frames(path: str | os.PathLike, *, start: int = 0, count: int | None = None) -> Iterator[Frame]:
  """Yields frames ``start .. start + count - 1`` of a clip (all from ``start`` when ``count`` is None).

  Raises:
    VideoError: a frame fails to decode (the message names it).
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    yield from _folder_frames(path, start, count)
    return
  av = _av()
  index = 0
  try:
    c = av.open(path)
  except av.FFmpegError as e:
    raise VideoError(f"{path}: not a readable video ({one_line(e)})") from None
  with c:
    s = c.streams.video[0]
    s.thread_type = "AUTO"
    decoded = c.decode(s)
    while count is None or index < start + count:
      try:
        frame = next(decoded, None)
      except av.FFmpegError as e:
        raise VideoError(f"{path}: frame {index} does not decode ({one_line(e)})") from None
      if frame is None:
        return
      if index >= start:
        t = float(frame.time) if frame.time is not None else index / float(s.average_rate or FOLDER_RATE)
        yield Frame(index, t, frame.to_ndarray(format="rgb24"))
      index += 1


def _folder_frames(path: str, start: int, count: int | None) -> Iterator[Frame]:
  names = imageio.list_images(path)[start : None if count is None else start + count]
  for i, name in enumerate(names, start):
    yield Frame(i, i / float(FOLDER_RATE), imageio.to_uint8(imageio.load_image(name)))


class VideoWriter:
  """Writes frames to a video file or a folder of PNGs, the source's audio copied alongside.

  Use as a context manager; :meth:`close` flushes the encoder, copies the remaining audio of the written time
  range and renames the file onto ``path``. Frames are cropped to even sides (yuv420p needs them).

  Args:
    path: ``*.mp4`` / ``.mov`` / ``.mkv`` / ``.m4v`` (H.264), ``.webm`` (VP9), ``.gif``, or a folder.
    rate: frames per second.
    time_base: the timestamps' unit (the source's keeps its timestamps; default ``1 / rate``).
    audio_from: a clip whose audio track is copied (the same time range as the frames written).
    start_time: the source time of the first frame written (audio before it is skipped; output starts at 0).
    end_time: the source time where the frames end (audio from it on is dropped; None keeps the whole track).
    quality: H.264's constant rate factor (lower is better; 18 is visually lossless).
  """

  def __init__(
    self,
    path: str | os.PathLike,
    *,
    rate: Fraction,
    audio_from: str | None = None,
    time_base: Fraction | None = None,
    start_time: float = 0.0,
    end_time: float | None = None,
    quality: int = 18,
  ):
    self.path = os.fspath(path)
    self.rate = Fraction(rate)
    self.time_base = Fraction(time_base) if time_base else 1 / self.rate
    self.frames = 0
    self._start = start_time
    self._quality = quality
    self._folder = not is_video_path(self.path)
    self._out = self._stream = None
    self._audio_in = self._audio_out = self._packets = None
    self._audio_from = audio_from
    self._end_time = end_time
    if self._folder:
      os.makedirs(self.path, exist_ok=True)

  def __enter__(self) -> VideoWriter:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def write(self, pixels: np.ndarray, *, time: float | None = None) -> None:
    """Appends one ``(H, W, 3)`` uint8 (or float in [0, 1]) RGB frame shown at source time ``time``
    (default: the next frame at ``rate``)."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
      pixels = imageio.to_uint8(pixels)
    if self._folder:
      imageio.save_image(os.path.join(self.path, f"{self.frames:06d}.png"), pixels)
    else:
      self._encode(pixels, self._start + self.frames / float(self.rate) if time is None else time)
    self.frames += 1

  def _encode(self, pixels: np.ndarray, time: float) -> None:
    av = _av()
    h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    if self._out is None:
      self._open(av, w, h)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:h, :w]), format="rgb24")
    frame.pts = round(Fraction(time - self._start) / self.time_base)
    frame.time_base = self.time_base
    for packet in self._stream.encode(frame):
      self._out.mux(packet)
    self._copy_audio(until=time + 1 / float(self.rate))

  def _open(self, av, w: int, h: int) -> None:
    suffix = os.path.splitext(self.path)[1].lower()
    codec, pix_fmt = _CODECS.get(suffix, _H264)
    self._tmp_ctx = files.atomic_path(self.path)
    container = {".mkv": "matroska", ".m4v": "mp4"}.get(suffix, suffix[1:])
    self._out = av.open(self._tmp_ctx.__enter__(), "w", format=container)
    self._stream = self._out.add_stream(codec, rate=self.rate)
    self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, pix_fmt
    self._stream.time_base = self.time_base
    self._stream.codec_context.time_base = self.time_base
    if codec == "libx264":
      # Matroska has no edit list to hide B-frames' reordering delay: without them its timestamps start at 0.
      bframes = {"bf": "0"} if suffix == ".mkv" else {}
      self._stream.options = {"crf": str(self._quality), "preset": "medium", **bframes}
    if self._audio_from and suffix != ".gif":
      self._open_audio(av)

  def _open_audio(self, av) -> None:
    src = av.open(self._audio_from)
    if not src.streams.audio:
      src.close()
      return
    a = src.streams.audio[0]
    try:
      self._audio_out = self._out.add_stream_from_template(a)
    except (ValueError, av.FFmpegError):  # the container does not take this codec: no audio, not an error
      src.close()
      return
    self._audio_in, self._audio_tb, self._packets = src, Fraction(a.time_base), src.demux(a)
    self._offset = round(self._start / self._audio_tb)
    self._pending = None

  def _copy_audio(self, *, until: float | None) -> None:
    """Muxes the source's audio packets whose time is below ``until`` (all that remain when None)."""
    if self._packets is None:
      return
    while True:
      packet = self._pending or next(self._packets, None)
      self._pending = None
      if packet is None:
        self._packets = None
        return
      if packet.pts is None or packet.size == 0:
        continue
      t = float(packet.pts * self._audio_tb)
      if self._start > 0 and t < self._start:
        continue
      if until is not None and t >= until:
        self._pending = packet
        return
      if self._end_time is not None and t >= self._end_time:
        self._packets = None
        return
      packet.pts -= self._offset
      if packet.dts is not None:
        packet.dts -= self._offset
      packet.stream = self._audio_out
      self._out.mux(packet)

  def close(self) -> None:
    """Flushes, copies the audio up to the last frame's end, and renames the file into place."""
    if self._out is None:
      return
    out = self._out
    try:
      for packet in self._stream.encode():
        out.mux(packet)
      self._copy_audio(until=None)
      self._out = None
      out.close()
      if self._audio_in is not None:
        self._audio_in.close()
      self._tmp_ctx.__exit__(None, None, None)
    except BaseException as e:
      with contextlib.suppress(Exception):
        self._tmp_ctx.__exit__(type(e), e, e.__traceback__)
      raise


def count_frames(path: str | os.PathLike) -> int:
  """Decodes a whole clip and counts its frames (a check that it plays from start to end)."""
  return sum(1 for _ in read_frames(path))
