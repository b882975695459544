"""A browser session's jobs: its own folder of results, its stop switch, and a run on a thread streamed to the
page as previews.

Each browser session gets a :class:`Session` (a ``gr.State`` made per session), so a second browser sees its own
results only. An optimization runs on a worker thread (:func:`stream`) and reports through the library's
``callback``; the event's generator yields the latest report to the page. Stop sets the session's switch, which
the library polls between compiled chunks (``stop=``), so the run ends with the image so far; a closed page or a
cancelled event closes the generator, which stops the run the same way and waits for it, so the device is free
when the next queued job starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import queue
import threading
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np

from jaxstyle.io import images


class Session:
  """One browser session: an id, its jobs' folders in order, and the stop switch of its running job."""

  def __init__(self):
    self.id = uuid.uuid4().hex[:12]
    self.stop = threading.Event()
    self.results: list[str] = []  # finished images, newest last
    self.sweep: dict | None = None  # the last sweep's members (the Sweep tab)
    self._count = itertools.count(1)

  def __deepcopy__(self, memo) -> Session:
    return self  # Gradio deep-copies a new session's state; this one holds a lock and is meant to be shared

  def job_folder(self, outputs: Path, kind: str) -> Path:
    """A new folder for one job of this session, ``outputs/<session>/<kind>-<n>``."""
    folder = Path(outputs) / self.id / f"{kind}-{next(self._count):03d}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder

  def start(self) -> threading.Event:
    """A fresh stop switch for the job that starts now (a Stop pressed earlier does not stop it)."""
    self.stop = threading.Event()
    return self.stop


@dataclasses.dataclass(frozen=True)
class Snapshot:
  """What the page shows of a running job: the iterate (8-bit, a copy) and the progress numbers."""

  image: np.ndarray
  step: int
  steps: int
  loss: float
  steps_per_second: float
  eta: float

  def text(self) -> str:
    return (
      f"step {self.step}/{self.steps}  loss {self.loss:.4g}  {self.steps_per_second:.2f} it/s  ETA {duration(self.eta)}"
    )


def duration(s: float) -> str:
  """``75`` -> ``1m15s``; ``inf`` -> ``?``."""
  if not math.isfinite(s):
    return "?"
  s = int(round(s))
  return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def snapshot(p) -> Snapshot:
  """A :class:`~jaxstyle.optim.loop.Progress` as a :class:`Snapshot` (the live buffer copied at once)."""
  return Snapshot(images.to_uint8(np.asarray(p.image)), p.step, p.steps, float(p.losses["total"]),
                  float(p.steps_per_second), float(p.eta))  # fmt: skip


def _step_report(p) -> Snapshot | None:
  """The lead member's due reports, as :class:`Snapshot` (the others: nothing)."""
  return snapshot(p) if p.lead and p.report else None


def stream(
  run: Callable[[Callable, Callable[[], bool]], Any],
  stop: threading.Event,
  *,
  report: Callable[[Any], Any] = _step_report,
) -> Generator[Any, None, Any]:
  """Runs ``run(callback, stop)`` on a thread and yields its latest report whenever one came (older ones the
  page had no time for are dropped); returns what ``run`` returned (``yield from``).

  ``report`` turns what ``run`` passes to ``callback`` into what is yielded (``None``: nothing); the default
  takes :class:`~jaxstyle.optim.loop.Progress` and yields a :class:`Snapshot` of each due report. Closing the
  generator (a closed page, a cancelled event) sets ``stop`` and waits for the run to end at its next chunk
  boundary. An exception of ``run`` is raised here.
  """
  reports: queue.Queue = queue.Queue()
  box: dict[str, Any] = {}

  def callback(p) -> None:
    item = report(p)
    if item is not None:
      reports.put(item)

  def work() -> None:
    try:
      box["result"] = run(callback, stop.is_set)
    except BaseException as e:  # noqa: BLE001 - handed to the generator, which raises it
      box["error"] = e
    finally:
      reports.put(None)

  thread = threading.Thread(target=work, name="jaxstyle-job", daemon=True)
  thread.start()
  try:
    done = False
    while not done:
      latest = reports.get()
      while latest is not None and not reports.empty():
        nxt = reports.get()
        if nxt is None:
          done = True
          break
        latest = nxt
      if latest is None:
        break
      yield latest
  finally:
    if thread.is_alive():
      stop.set()
      thread.join()
  if "error" in box:
    raise box["error"]
  return box["result"]


def mapped(gen: Generator, fn: Callable) -> Generator:
  """Yields ``fn(x)`` for each ``x`` that ``gen`` yields and returns what ``gen`` returns (``yield from``);
  closing it closes ``gen``."""
  try:
    while True:
      try:
        x = next(gen)
      except StopIteration as end:
        return end.value
      yield fn(x)
  finally:
    gen.close()
