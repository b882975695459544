"""Video files and folders of frames: streamed reading and writing, the audio track copied unchanged.

A clip is read as a stream of ``(H, W, 3)`` uint8 RGB frames (:func:`read_frames`) after :func:`probe` has
checked it; memory does not grow with its length. :class:`VideoWriter` encodes frames as they come (H.264 in
yuv420p with even sides for mp4/mov/mkv, VP9 for webm, GIF) at the input's frame rate and timestamps, and copies
the input's audio packets into the output without decoding them, interleaved by time. The output is written
beside its name and renamed onto it when closed, so a closed output always plays: after an interruption it
holds the frames written so far. A folder of frames is read in name order and written as ``000000.png``, ...
An interrupted output can be continued (``keep=``): a video's packets are copied into the new file unchanged and
a new encoder goes on after them in the same stream; a folder keeps its PNGs.

Containers and codecs come from PyAV (FFmpeg's libraries in its wheel), the ``jaxstyle[video]`` extra.
"""

from __future__ import annotations

import contextlib
import heapq
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
    keep: continue an earlier output at ``path`` after its first ``keep`` frames (written by a writer with the
      same arguments; :func:`frames_written` counts them): a video's packets are copied, not re-encoded (H.264
      as Annex B, its parameter sets in band), with the source's audio alongside, and the new frames are encoded
      after them in the same stream by a new encoder; a folder's PNGs stay. GIF cannot be continued.
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
    keep: int = 0,
  ):
    self.path = os.fspath(path)
    self.rate = Fraction(rate)
    self.time_base = Fraction(time_base) if time_base else 1 / self.rate
    self.frames = self._keep = keep
    self._start = start_time
    self._quality = quality
    self._folder = not is_video_path(self.path)
    self._out = self._stream = None
    self._audio_in = self._audio_out = self._packets = None
    self._audio_from = audio_from
    self._end_time = end_time
    self._dts: _DecodingTimes | None = None  # a continued file's decoding times
    if self._folder:
      os.makedirs(self.path, exist_ok=True)
    elif keep and os.path.splitext(self.path)[1].lower() == ".gif":
      raise VideoError(f"{self.path}: a GIF cannot be continued (each frame's delay is fixed as it is written)")

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
      self._start_file(av, w, h)
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:h, :w]), format="rgb24")
    frame.pts = round(Fraction(time - self._start) / self.time_base)
    frame.time_base = self.time_base
    for packet in self._stream.encode(frame):
      self._mux_encoded(packet)
    self._copy_audio(until=time + 1 / float(self.rate))

  def _mux_encoded(self, packet) -> None:
    """Muxes a packet of the encoder (after kept packets, at the decoding time the kept ones lead to)."""
    if self._dts is not None and packet.pts is not None:
      tb = Fraction(packet.time_base)
      packet.dts = round(self._dts(packet.pts * tb) / tb)
    self._out.mux(packet)

  def _start_file(self, av, w: int, h: int) -> None:
    """Opens the file beside ``path`` and copies the kept frames into it; on failure nothing is left."""
    self._open(av, w, h)
    keep, self._keep = self._keep, 0  # tried once: a close after a failure does not try again
    if not keep:
      return
    try:
      self._copy_kept(av, keep)
    except BaseException as e:
      out, self._out = self._out, None
      with contextlib.suppress(Exception):
        out.close()
      self._tmp_ctx.__exit__(type(e), e, e.__traceback__)
      raise

  def _copy_kept(self, av, keep: int) -> None:
    """Muxes the earlier output's ``keep`` video packets and the source's audio up to their end. Their times move
    back to start at 0 (Matroska had moved them past the audio's priming); decoding times, theirs and the new
    encoder's, are given anew (:class:`_DecodingTimes`): two encoders' reordering delays need not agree."""
    from av.bitstream import BitStreamFilterContext

    count, offset = _packet_count(self.path)  # offset: the first packet's time, the first frame's
    if count != keep:
      raise VideoError(f"{self.path}: holds {count} frames, not the {keep} to keep")
    self._dts = _DecodingTimes(_reorder_delay(av, self._stream), 1 / self.rate)
    end = 0
    with av.open(self.path) as old:
      s = old.streams.video[0]
      tb = Fraction(s.time_base)
      annexb = BitStreamFilterContext("h264_mp4toannexb", s) if s.codec_context.name == "h264" else None
      if annexb is not None:
        self._check_parameter_sets(s)
      for packet in (p for p in old.demux(s) if p.size):
        packet.pts -= offset
        packet.dts = round(self._dts(packet.pts * tb) / tb)
        end = max(end, packet.pts)
        for p in annexb.filter(packet) if annexb else (packet,):
          p.stream = self._stream
          self._out.mux(p)
        self._copy_audio(until=self._start + float(end * tb) + 1 / float(self.rate))

  def _check_parameter_sets(self, kept) -> None:
    """Refuses to continue H.264 whose parameter sets (SPS, PPS) are not the new encoder's: the new frames would
    be decoded with the kept ones' (another libx264, or other options)."""
    self._out.start_encoding()  # opens the encoder: its parameter sets are known
    if _parameter_sets(kept.codec_context.extradata) != _parameter_sets(self._stream.codec_context.extradata):
      raise VideoError(f"{self.path}: encoded with other H.264 parameters (another libx264?); it cannot be continued")

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
    if self._out is None and self._keep and not self._folder and self.frames == self._keep:
      self._start_file(_av(), *_size(self.path))  # continued with no new frame: the kept ones alone
    if self._out is None:
      return
    out = self._out
    try:
      for packet in self._stream.encode():
        self._mux_encoded(packet)
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


def _packet_count(path: str) -> tuple[int, int | None]:
  """How many video packets a video has, and the first one's presentation time (in its stream's time base)."""
  count, first = 0, None
  with _av().open(path) as c:
    for p in c.demux(c.streams.video[0]):
      if p.size:
        count, first = count + 1, p.pts if first is None else first
  return count, first


def _parameter_sets(extradata: bytes | None) -> list[bytes]:
  """H.264's SPS and PPS units in a stream's extradata, as MP4 stores them (avcC) or as Annex B."""
  data = bytes(extradata or b"")
  if data[:1] != b"\x01":  # Annex B: units after start codes
    units = [u.strip(b"\x00") for u in data.split(b"\x00\x00\x01")]
    return sorted(u for u in units if u and u[0] & 0x1F in (7, 8))
  units, at = [], 5
  for _ in range(2):  # the SPS, then the PPS
    n, at = data[at] & 0x1F if not units else data[at], at + 1
    for _ in range(n):
      size = int.from_bytes(data[at : at + 2], "big")
      units.append(data[at + 2 : at + 2 + size])
      at += 2 + size
  return sorted(units)


class _DecodingTimes:
  """Decoding times for packets given in decoding order by their presentation times (in seconds), reordered by at
  most ``delay`` frames, as one encoder with that delay gives them: from the ``delay``-th packet on, the smallest
  presentation time not yet used; before it, the first one less whole frames (``tick`` apart). The duration
  they span is the frames' (what a player's frame rate is read from), whatever ``delay`` is."""

  def __init__(self, delay: int, tick: Fraction):
    self.delay, self.tick, self.waiting, self.first, self.count = delay, tick, [], None, 0

  def __call__(self, pts: Fraction) -> Fraction:
    heapq.heappush(self.waiting, pts)
    self.first = pts if self.first is None else self.first
    self.count += 1
    if self.count <= self.delay:
      return self.first - (self.delay - self.count + 1) * self.tick
    return heapq.heappop(self.waiting)


def _reorder_delay(av, stream) -> int:
  """How many frames the encoder of ``stream`` delays decoding times by (H.264's B-frames), as a throwaway
  encoder with its codec and options gives them to a few blank frames."""
  c = av.CodecContext.create(stream.codec_context.name, "w")
  c.width, c.height, c.pix_fmt, c.time_base, c.framerate = 16, 16, stream.pix_fmt, Fraction(1, 25), Fraction(25)
  c.options = dict(stream.options)
  packets = []
  for i in range(8):
    frame = av.VideoFrame(16, 16, stream.pix_fmt)
    for plane in frame.planes:
      plane.update(bytes(plane.buffer_size))
    frame.pts = i
    packets += c.encode(frame)
  packets += c.encode(None)
  return packets[0].pts - packets[0].dts


def _size(path: str) -> tuple[int, int]:
  with _av().open(path) as c:
    s = c.streams.video[0]
    return s.codec_context.width, s.codec_context.height


def frames_written(path: str | os.PathLike) -> int:
  """How many frames a :class:`VideoWriter` output holds, without decoding them: a video's video packets, or a
  folder's ``000000.png``, ``000001.png``, ... up to the first one missing.

  Raises:
    VideoError: missing, or not a readable video.
  """
  path = os.fspath(path)
  if not is_video_path(path):
    if not os.path.isdir(path):
      raise VideoError(f"{path}: no such folder")
    n = 0
    while os.path.isfile(os.path.join(path, f"{n:06d}.png")):
      n += 1
    return n
  if not os.path.isfile(path):
    raise VideoError(f"{path}: no such file")
  av = _av()
  try:
    return _packet_count(path)[0]
  except (av.FFmpegError, IndexError) as e:
    raise VideoError(f"{path}: not a readable video ({one_line(e)})") from None


def count_frames(path: str | os.PathLike) -> int:
  """Decodes a whole clip and counts its frames (a check that it plays from start to end)."""
  return sum(1 for _ in read_frames(path))
