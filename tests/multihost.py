"""Runs a script in two jax.distributed processes on 127.0.0.1 (two host devices each, gloo)."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

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


def run_two_processes(script: str, params, tmp_path: Path) -> list[Path]:
  """Runs :data:`PREAMBLE` then ``script`` as processes 0 and 1; returns the paths each was given as ``out``.

  ``script`` finds ``out``, ``params`` (NumPy arrays), ``jax`` and ``np`` defined. Fails the test
  with the stderr of a process that did not exit 0.
  """
  root = Path(__file__).resolve().parents[1]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(root)}
  path = tmp_path / "params.pkl"
  path.write_bytes(pickle.dumps(jax.tree.map(np.asarray, params)))
  port, outs = free_port(), [tmp_path / f"p{i}.npz" for i in range(2)]
  program = PREAMBLE + script + "\njax.distributed.shutdown()\n"
  procs = [
    subprocess.Popen(
      [sys.executable, "-c", program, str(out), str(path), str(port), str(i)],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root,
    )
    for i, out in enumerate(outs)
  ]  # fmt: skip
  try:
    errs = [p.communicate(timeout=600)[1] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, err in zip(procs, errs, strict=True):
    assert p.returncode == 0, err[-3000:]
  return outs
