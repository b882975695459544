"""CPU/GPU timings of jaxstyle: one optimizer iteration, compile time apart.

Run with `make bench` (needs the real weights). Prints a Markdown table and writes it,
with the machine and versions, to bench/RESULTS.md. Numbers are medians of repeats,
measured in this run; the compile step is timed separately and excluded.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxstyle as js
from jaxstyle import images, optimize, presets, samples

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  import importlib.metadata as md

  dev = jax.devices()[0]
  vers = ", ".join(f"{p} {md.version(p)}" for p in ("jax", "jaxlib", "flax", "optax", "numpy"))
  return (
      f"{dev.platform.upper()} ({dev.device_kind}); host {cpu}, {len(__import__('os').sched_getaffinity(0))} cores; "
      f"Python {platform.python_version()}; {vers}"
  )


def inputs(size: int):
  if (SHARED / "tubingen.jpg").exists():
    c, s = SHARED / "tubingen.jpg", SHARED / "starry_night.jpg"
  else:
    c, s = samples.content_path(), samples.style_path()
  return images.load_image(c, size=size), images.load_image(s, size=size)


def time_iteration(params, size: int, config, repeats: int) -> dict:
  """Loss value and gradient with respect to the image (one optimizer iteration's work)."""
  content, style = inputs(size)
  config = config.replace(size=size)
  targets = optimize.compute_targets(params, content, style, config)
  static = optimize.Static.from_config(config)
  weights = config.loss_weights()
  f = jax.jit(jax.value_and_grad(lambda x, p, t, w: optimize.objective(x, p, t, w, static=static)[0]))
  x = jnp.asarray(content)
  t0 = time.perf_counter()
  exe = f.lower(x, params, targets, weights).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(exe(x, params, targets, weights))  # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(exe(x, params, targets, weights))
    times.append(time.perf_counter() - t0)
  return {"shape": content.shape[:2], "ms": 1e3 * statistics.median(times), "compile_s": compile_s}


def time_run(params, size: int, config, steps: int) -> dict:
  """Whole stylize runs (optimizer included): steps per second after compilation."""
  content, style = inputs(size)
  r = js.stylize(content, style, config.replace(size=size, steps=steps, report_every=steps), params=params)
  r = js.stylize(content, style, config.replace(size=size, steps=steps, report_every=steps), params=params)
  return {"steps_per_s": r.timings["steps_per_s"]}


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--sizes", default="128,256,512")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--steps", type=int, default=10, help="steps per timed stylize run")
  ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
  args = ap.parse_args(argv)
  params = js.load_vgg19()
  sizes = [int(s) for s in args.sizes.split(",")]
  rows = []
  for size in sizes:
    it = time_iteration(params, size, presets.gatys(), args.repeats)
    lb = time_run(params, size, presets.gatys(), args.steps)
    ad = time_run(params, size, presets.tf_tutorial(), args.steps)
    h, w = it["shape"]
    rows.append(
        f"| {size} ({w}x{h}) | {it['ms']:.0f} | {it['compile_s']:.1f} | {lb['steps_per_s']:.2f} | {ad['steps_per_s']:.2f} |"
    )
    print(rows[-1], flush=True)
  table = "\n".join(
      [
          "| longest side px (W x H) | value+grad ms (median) | compile s | L-BFGS steps/s (gatys) | Adam steps/s (tf-tutorial) |",
          "|---|---|---|---|---|",
          *rows,
      ]
  )
  text = (
      f"# jaxstyle benchmark\n\nMeasured {datetime.date.today().isoformat()} by `make bench` "
      f"(`{' '.join(['python', 'bench/bench.py', *(argv or sys.argv[1:])])}`).\n\n"
      f"Machine: {machine()}.\n\n"
      "Content tubingen.jpg, style starry_night.jpg (../shared/images; the built-in samples when absent), "
      "Gatys layers (relu4_2; relu1_1..relu5_1). *value+grad*: loss and its gradient with respect to the image, "
      f"median of {args.repeats} after one warm-up, compile excluded. *steps/s*: a whole compiled run of "
      f"{args.steps} steps (the second of two, so nothing compiles), optimizer and progress included; an L-BFGS "
      "step may evaluate the loss more than once in its line search.\n\n" + table + "\n"
  )
  Path(args.out).write_text(text)
  print(f"\nwrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
