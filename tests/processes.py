"""Running jaxstyle in other processes: the CLI, scripts on several simulated devices, and several
``jax.distributed`` processes on 127.0.0.1 (two host devices each, gloo collectives).

Every test that starts a process goes through here, so the environment (this checkout first on the path,
the test's variables) is built in one place, and waiting for a process is waiting for what it writes (a
line), never sleeping.
"""

from __future__ import annotations

import os
import pickle
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def environment(*, devices: int | None = None, drop_jax: bool = False, **extra: str) -> dict[str, str]:
  """This process's environment with the checkout on the path, ``devices`` simulated host devices, and
  ``extra`` variables; ``drop_jax`` leaves out ``JAX_*`` (no distributed runtime by accident)."""
  env = {k: v for k, v in os.environ.items() if not (drop_jax and k.startswith("JAX_"))}
  env["PYTHONPATH"] = str(ROOT)
  if devices is not None:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return {**env, **extra}


def jaxstyle_command(*args) -> list[str]:
  """``python -m jaxstyle ARGS`` (paths turned into text)."""
  return [sys.executable, "-m", "jaxstyle", *map(str, args)]


def run(
  cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
  """Runs a command to its end in the checkout, capturing its output."""
  return subprocess.run(
    list(cmd), capture_output=True, text=True, env=dict(env or environment()), cwd=ROOT, timeout=timeout
  )


def run_script(script: str, *args, devices: int | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
  """Runs Python code in a fresh process with ``args`` as its ``sys.argv[1:]`` (``devices`` simulated host
  devices)."""
  return run([sys.executable, "-c", script, *map(str, args)], env=environment(devices=devices), timeout=timeout)


def start_script(script: str, *, devices: int | None = None) -> subprocess.Popen:
  """Starts Python code in a fresh process; ``communicate()`` collects its output."""
  return subprocess.Popen(
    [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    env=environment(devices=devices), cwd=ROOT,
  )  # fmt: skip


class Lines:
  """A process started with its stderr read line by line on a thread, so that a test can wait for a line."""

  def __init__(self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None):
    self.proc = subprocess.Popen(list(cmd), stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(env or environment()))
    self.lines: list[str] = []
    self._queue: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=self._read, daemon=True).start()

  def _read(self) -> None:
    for line in self.proc.stderr:
      self._queue.put(line)
    self._queue.put(None)

  def wait_for(self, pattern: str, *, timeout: float = 120) -> str:
    """Blocks until a stderr line matches ``pattern``; fails if the process ends first or ``timeout`` passes."""
    while True:
      try:
        line = self._queue.get(timeout=timeout)
      except queue.Empty:
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s: {''.join(self.lines)}") from None
      if line is None:
        raise AssertionError(f"the process ended before a line matching {pattern!r}: {''.join(self.lines)}")
      self.lines.append(line)
      if re.search(pattern, line):
        return line

  def finish(self, *, timeout: float = 120) -> tuple[int, str]:
    """Waits for the end; the exit code and the stderr lines after the last one waited for."""
    code = self.proc.wait(timeout=timeout)
    rest = []
    while (line := self._queue.get(timeout=timeout)) is not None:
      rest.append(line)
    self.lines += rest
    return code, "".join(rest)


# --------------------------------------------------------------------------- two jax.distributed processes

# What every process runs first: out path, params, distributed CPU runtime with gloo collectives.
PREAMBLE = """
import pickle, sys
import jax, numpy as np
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_cpu_collectives_implementation", "gloo")
out, params, port, pid = sys.argv[1], pickle.loads(open(sys.argv[2], "rb").read()), sys.argv[3], int(sys.argv[4])
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
"""


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def communicate_all(procs: Sequence[subprocess.Popen], *, timeout: float = 600) -> list[tuple[str, str]]:
  """Each process's ``(stdout, stderr)``, killing every process left when one times out."""
  try:
    return [p.communicate(timeout=timeout) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()


def run_two_processes(script: str, params, tmp_path: Path) -> list[Path]:
  """Runs :data:`PREAMBLE` then ``script`` as processes 0 and 1; returns the paths each was given as ``out``.

  ``script`` finds ``out``, ``params`` (NumPy arrays), ``jax`` and ``np`` defined. Fails the test with the
  stderr of a process that did not exit 0.
  """
  path = tmp_path / "params.pkl"
  path.write_bytes(pickle.dumps(jax.tree.map(np.asarray, params)))
  port, outs = free_port(), [tmp_path / f"p{i}.npz" for i in range(2)]
  program = PREAMBLE + script + "\njax.distributed.shutdown()\n"
  env = environment(devices=2)
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", program, str(out), str(path), str(port), str(i)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    for i, out in enumerate(outs)
  ]  # fmt: skip
  for p, (_, err) in zip(procs, communicate_all(procs), strict=True):
    assert p.returncode == 0, err[-3000:]
  return outs
