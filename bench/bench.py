"""jaxstyle timings, side by side with the PyTorch reference (pastiche 1.6.0) when torch is there.

`make bench` runs this and writes bench/RESULTS.md. Everything printed is measured in this
run: medians over repeats, jaxstyle and the reference alternating, compile time apart.

1. One optimizer iteration (loss value + gradient with respect to the image) on pastiche's
   objective (relu4_2 content; relu1_1..relu5_1 style), jaxstyle vs reference, with
   achieved GFLOP/s (FLOPs counted by XLA's cost analysis of the jaxstyle program).
2. Time to quality: wall time for each to reach the loss the reference reaches after 300
   of its L-BFGS steps, same objective, same start (the content image).
3. Sweeps: image-steps per second for batches of 1, 2, 4, 8 loss weightings (gatys).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata as md
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reference  # noqa: E402

import jaxstyle as js  # noqa: E402
from jaxstyle import images, optimize, presets, samples, sweep  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "images"


def machine() -> str:
  cpu = platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  dev = jax.devices()[0]
  pkgs = ["jax", "jaxlib", "flax", "optax", "numpy"] + (["torch", "pastiche"] if reference.available() is None else [])
  vers = ", ".join(f"{p} {md.version(p)}" for p in pkgs)
  return (
    f"{dev.platform} ({dev.device_kind}) x {jax.device_count()}; host {cpu}, {len(os.sched_getaffinity(0))} cores; "
    f"Python {platform.python_version()}; {vers}"
  )


def paths() -> tuple[str, str]:
  if (SHARED / "tubingen.jpg").exists():
    return str(SHARED / "tubingen.jpg"), str(SHARED / "starry_night.jpg")
  return samples.content_path(), samples.style_path()


def setup(params, size: int, ref):
  """Content/style as pastiche loads them (when present) and jaxstyle's compiled value+grad."""
  if ref is not None:
    content, style = ref.images()
  else:
    c, s = paths()
    content, style = images.load_image(c, size=size), images.load_image(s, size=size)
  config = reference.pastiche_config(size=None)
  targets = optimize.compute_targets(params, content, style, config)
  static = optimize.Static.from_config(config)
  weights = config.loss_weights()
  f = jax.jit(jax.value_and_grad(lambda x, p, t, w: optimize.objective(x, p, t, w, static=static)[0]))
  x = jnp.asarray(content)
  t0 = time.perf_counter()
  exe = f.lower(x, params, targets, weights).compile()
  compile_s = time.perf_counter() - t0
  cost = exe.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  run = lambda: jax.block_until_ready(exe(x, params, targets, weights))  # noqa: E731
  run()
  return dict(
    content=content,
    style=style,
    config=config,
    targets=targets,
    x=x,
    run=run,
    compile_s=compile_s,
    flops=float(cost.get("flops", float("nan"))),
  )


def bench_iterations(params, sizes, repeats, lines):
  lines += [
    "## 1. One iteration: loss value + gradient with respect to the image",
    "",
    "| size (W x H) | jaxstyle ms | reference ms | ratio | jaxstyle GFLOP/s | reference GFLOP/s | GFLOP | "
    "jaxstyle compile s | loss agreement |",
    "|---|---|---|---|---|---|---|---|---|",
  ]
  c_path, s_path = paths()
  for size in sizes:
    ref = reference.Reference(c_path, s_path, size) if reference.available() is None else None
    b = setup(params, size, ref)
    if ref is not None:
      ref.iteration()  # warm-up
    ours, theirs = [], []
    for _ in range(repeats):
      t0 = time.perf_counter()
      b["run"]()
      ours.append(time.perf_counter() - t0)
      if ref is not None:
        t0 = time.perf_counter()
        ref.iteration()
        theirs.append(time.perf_counter() - t0)
    h, w = b["content"].shape[:2]
    gf = b["flops"] / 1e9
    mo = statistics.median(ours)
    if ref is not None:
      mr = statistics.median(theirs)
      lo = float(
        optimize.objective(
          b["x"], params, b["targets"], b["config"].loss_weights(), static=optimize.Static.from_config(b["config"])
        )[0]
      )
      agree = f"{lo / ref.loss_at(b['content']):.7f}"
      row = f"| {w} x {h} | {1e3 * mo:.0f} | {1e3 * mr:.0f} | {mo / mr:.2f} | {gf / mo:.0f} | {gf / mr:.0f} |"
    else:
      agree = "-"
      row = f"| {w} x {h} | {1e3 * mo:.0f} | - | - | {gf / mo:.0f} | - |"
    lines.append(f"{row} {gf:.1f} | {b['compile_s']:.1f} | {agree} |")
    print(lines[-1], flush=True)
  lines += [
    "",
    "*ratio*: jaxstyle / reference (below 1: jaxstyle faster). *loss agreement*: jaxstyle's loss / "
    "pastiche's at the same image (same quantized weights). Medians of the repeats, alternating.",
    "",
  ]


def bench_time_to_quality(params, size, ref_steps, lines):
  lines += [f"## 2. Time to quality ({size} px, pastiche's objective, from the content image)", ""]
  if reference.available() is not None:
    lines += [reference.available(), ""]
    return
  c_path, s_path = paths()
  ref = reference.Reference(c_path, s_path, size)
  ref_losses, ref_s = ref.run_lbfgs(ref_steps)
  target = ref_losses[-1]
  b = setup(params, size, ref)
  lines += [
    f"Target: the reference's loss after {ref_steps} steps, {target:.5g}. jaxstyle may run up to "
    f"{3 * ref_steps} steps; its time is read at the first progress report (every 5 steps) at or below "
    "the target, compile excluded.",
    "",
    "| | steps | wall s to reach the target | jaxstyle / reference | loss at the end |",
    "|---|---|---|---|---|",
    f"| reference: pastiche, torch.optim.LBFGS (no line search) | {ref_steps} | {ref_s:.1f} | 1 | {target:.5g} |",
  ]
  for ls in ("backtracking", "zoom"):
    config = b["config"].replace(steps=3 * ref_steps, report_every=5, lbfgs_linesearch=ls)
    marks, t0 = [], [0.0]

    def cb(p, marks=marks, t0=t0):
      marks.append((p.step, time.perf_counter() - t0[0], p.losses["total"]))

    reached = {}

    def stop(marks=marks, reached=reached):
      if marks and marks[-1][2] <= target:
        reached["at"] = marks[-1]
        return True
      return False

    t0[0] = time.perf_counter()
    run = optimize.optimize(b["content"], params, b["targets"], config.loss_weights(), config, callback=cb, stop=stop)
    if "at" in reached:
      st, t, loss = reached["at"]
      lines.append(f"| jaxstyle, L-BFGS {ls} line search | {st} | {t:.1f} | **{t / ref_s:.2f}** | {loss:.5g} |")
    else:
      lines.append(
        f"| jaxstyle, L-BFGS {ls} line search | {3 * ref_steps} (not reached) | - | - | "
        f"{float(run.losses['total']):.5g} |"
      )
    print(lines[-1], flush=True)
  lines.append("")


def bench_sweeps(params, size, steps, batches, lines):
  lines += [
    f"## 3. Sweeps ({size} px, gatys, L-BFGS, {steps} steps, one compiled batch)",
    "",
    "| batch | image-steps/s | s per step of the batch | compile s |",
    "|---|---|---|---|",
  ]
  c_path, s_path = paths()
  config = presets.gatys(size=size, steps=steps, report_every=steps)
  for n in batches:
    spec = sweep.SweepSpec(ratios=tuple(10.0 ** -np.linspace(2, 5, n)))
    r = sweep.stylize_sweep(c_path, s_path, config, spec.weights(config), params=params)
    lines.append(
      f"| {n} | {r.timings['image_steps_per_s']:.2f} | {r.timings['run_s'] / steps:.2f} | "
      f"{r.timings['compile_s']:.1f} |"
    )
    print(lines[-1], flush=True)
  lines.append("")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--sizes", default="128,256,512", help="longest sides for the iteration table")
  ap.add_argument("--repeats", type=int, default=7)
  ap.add_argument("--ttq-size", type=int, default=256)
  ap.add_argument("--ttq-steps", type=int, default=300)
  ap.add_argument("--sweep-size", type=int, default=256)
  ap.add_argument("--sweep-steps", type=int, default=10)
  ap.add_argument("--batches", default="1,2,4,8")
  ap.add_argument("--skip", default="", help="comma-separated sections to skip: iter,ttq,sweep")
  ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
  args = ap.parse_args(argv)
  skip = set(args.skip.split(","))
  params = js.load_vgg19()
  lines = [
    "# jaxstyle benchmark",
    "",
    f"Measured {datetime.date.today().isoformat()} with `python bench/bench.py {' '.join(argv or sys.argv[1:])}`.",
    "",
    f"Machine: {machine()}.",
    "",
    f"Images: {Path(paths()[0]).name} (content), {Path(paths()[1]).name} (style).",
    "",
  ]
  if reference.available() is not None:
    lines += [f"Reference: {reference.available()}.", ""]
  if "iter" not in skip:
    bench_iterations(params, [int(s) for s in args.sizes.split(",")], args.repeats, lines)
  if "ttq" not in skip:
    bench_time_to_quality(params, args.ttq_size, args.ttq_steps, lines)
  if "sweep" not in skip:
    bench_sweeps(params, args.sweep_size, args.sweep_steps, [int(b) for b in args.batches.split(",")], lines)
  Path(args.out).write_text("\n".join(lines) + "\n")
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
