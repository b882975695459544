"""jaxstyle timings, side by side with the PyTorch reference (pastiche 1.6.0) when torch is there.

`make bench` runs this and writes bench/RESULTS.md. Everything printed is measured in this
run: medians over repeats, jaxstyle and the reference alternating, compile time apart.

1. One optimizer iteration (loss value + gradient with respect to the image) on pastiche's
   objective (relu4_2 content; relu1_1..relu5_1 style), jaxstyle vs reference, with
   achieved GFLOP/s (FLOPs counted by XLA's cost analysis of the jaxstyle program).
2. Time to quality: wall time for each to reach the loss the reference reaches after 300
   of its L-BFGS steps, same objective, same start (the content image).
3. Sweeps: image-steps per second for batches of 1, 2, 4, 8 loss weightings (gatys).
4. Memory: XLA's memory analysis of a compiled chunk, and the largest image that fits.
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
import results  # noqa: E402

import jaxstyle as js  # noqa: E402
from jaxstyle import fast, objective, samples  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.nets import vgg  # noqa: E402
from jaxstyle.optim import step, sweep  # noqa: E402
from jaxstyle.runtime.memory import memory_need  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402

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


def _compiled(f, args):
  t0 = time.perf_counter()
  exe = f.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  cost = exe.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  run = lambda: jax.block_until_ready(exe(*args))  # noqa: E731
  run()
  return run, compile_s, float(cost.get("flops", float("nan")))


def setup(params, size: int, ref):
  """Content/style as pastiche loads them (when present) and jaxstyle's compiled value+grad,
  with the convolution algorithm the config picks here ("auto") and with direct convolutions."""
  if ref is not None:
    content, style = ref.images()
  else:
    c, s = paths()
    content, style = images.load_image(c, size=size), images.load_image(s, size=size)
  config = reference.pastiche_config(size=None)
  targets = objective.compute_targets(params, content, style, config.form())
  static = step.Static.from_config(config)
  weights = config.loss.weights()
  f = jax.jit(jax.value_and_grad(lambda x, p, t, w: objective.objective(x, p, t, w, form=static.form)[0]))
  x = jnp.asarray(content)
  prepared = vgg.prepare(params, config.network.conv, layers=static.form.layers)
  run, compile_s, flops = _compiled(f, (x, prepared, targets, weights))
  run_direct, _, direct_flops = _compiled(f, (x, vgg.prepare(params, "direct"), targets, weights))
  return dict(
    content=content,
    style=style,
    config=config,
    targets=targets,
    x=x,
    run=run,
    run_direct=run_direct,
    compile_s=compile_s,
    flops=flops,
    direct_flops=direct_flops,
    loss=lambda image: float(objective.objective(image, prepared, targets, weights, form=static.form)[0]),
  )


def peak_gflops(repeats: int = 5) -> float:
  """The machine's practical float32 peak: a 4096^2 matrix product's rate."""
  a = jnp.ones((4096, 4096), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(f(a))
    ts.append(time.perf_counter() - t0)
  return 2 * 4096**3 / min(ts) / 1e9


def bench_iterations(params, sizes, repeats, lines):
  peak = peak_gflops()
  lines += [
    "## 1. One iteration: loss value + gradient with respect to the image",
    "",
    f'jaxstyle runs its default convolution algorithm (`conv="auto"`: {vgg.resolve_conv("auto")} on this '
    "backend); *direct* is the same program with direct convolutions. *GFLOP* is the direct program's count "
    "(XLA's cost analysis), so rates are direct-equivalent: Winograd does the same work in fewer FLOPs "
    f"and its rate may exceed the machine's. Machine peak, measured as a 4096^2 float32 matrix product: "
    f"{peak:.0f} GFLOP/s.",
    "",
    "| size (W x H) | jaxstyle ms | direct ms | reference ms | ratio | jaxstyle GFLOP/s | direct GFLOP/s | "
    "reference GFLOP/s | GFLOP | jaxstyle compile s | loss agreement |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  c_path, s_path = paths()
  for size in sizes:
    ref = reference.Reference(c_path, s_path, size) if reference.available() is None else None
    b = setup(params, size, ref)
    if ref is not None:
      ref.iteration()  # warm-up
    ours, direct, theirs = [], [], []
    for _ in range(repeats):
      for run, times in ((b["run"], ours), (b["run_direct"], direct)):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
      if ref is not None:
        t0 = time.perf_counter()
        ref.iteration()
        theirs.append(time.perf_counter() - t0)
    h, w = b["content"].shape[:2]
    gf = b["direct_flops"] / 1e9
    mo, md = statistics.median(ours), statistics.median(direct)
    row = f"| {w} x {h} | {1e3 * mo:.0f} | {1e3 * md:.0f} |"
    if ref is not None:
      mr = statistics.median(theirs)
      agree = b["loss"](b["x"]) / ref.loss_at(b["content"])
      if abs(agree - 1) > 1e-3:
        raise SystemExit(f"jaxstyle's loss is {agree:.6f}x the reference's at the same image: not the same objective")
      row += f" {1e3 * mr:.0f} | {mo / mr:.2f} | {gf / mo:.0f} | {gf / md:.0f} | {gf / mr:.0f} |"
      agree = f"{agree:.7f}"
    else:
      agree = "-"
      row += f" - | - | {gf / mo:.0f} | {gf / md:.0f} | - |"
    lines.append(f"{row} {gf:.1f} | {b['compile_s']:.1f} | {agree} |")
    print(lines[-1], flush=True)
  lines += [
    "",
    "*ratio*: jaxstyle / reference (below 1: jaxstyle faster). *loss agreement*: jaxstyle's loss / "
    "pastiche's at the same image (same quantized weights); the benchmark stops if it is off by more than "
    "1e-3. Medians of the repeats, alternating.",
    "",
  ]


TTQ_VARIANTS = (
  # (label, config overrides, coarse scales as divisors of the size, steps at each coarse scale)
  ("L-BFGS backtracking, memory 10, direct convolutions", dict(memory=10, conv="direct"), (), None),
  ("L-BFGS backtracking (defaults: memory 100, Winograd)", {}, (), None),
  ("L-BFGS zoom line search", dict(line_search="zoom"), (), None),
  ("coarse to fine: 200 steps at 1/2 size, then the defaults", {}, (2,), 200),
  ("coarse to fine: 100 steps at 1/4, 100 at 1/2, then the defaults", {}, (4, 2), 100),
)


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
    "the target, compile excluded. *loss at the end*: that iterate's loss re-evaluated with direct float32 "
    "convolutions.",
    "",
    "| jaxstyle | steps | wall s to reach the target | jaxstyle / reference | loss at the end |",
    "|---|---|---|---|---|",
    f"| reference: pastiche, torch.optim.LBFGS (no line search) | {ref_steps} | {ref_s:.1f} | 1 | {target:.5g} |",
  ]
  direct = step.Static.from_config(b["config"])
  side = max(b["content"].shape[:2])
  for label, overrides, divisors, coarse_steps in TTQ_VARIANTS:
    # The product's own coarse-to-fine stylize, with content and style as pastiche loads them.
    scales = tuple(side // d for d in divisors) + (side,) if divisors else None
    config = b["config"].set(
      size=side, scales=scales, coarse_steps=coarse_steps, steps=3 * ref_steps, report_every=5, **overrides
    )
    warm = config.set(steps=1, coarse_steps=1 if divisors else None)  # compile every scale apart, untimed
    js.stylize(b["content"], b["style"], warm, params=params)
    marks, reached, t0 = [], {}, time.perf_counter()
    last = len(scales) - 1 if scales else 0

    def cb(p, marks=marks, reached=reached, t0=t0, last=last):
      marks.append((p.step, time.perf_counter() - t0, p.losses["total"], p.scale))
      if p.scale == last and p.losses["total"] <= target:
        reached["x"] = np.array(p.image)  # a copy of the iterate, unclipped, as pastiche's loss is taken

    def stop(reached=reached):
      return "x" in reached

    run = js.stylize(b["content"], b["style"], config, params=params, callback=cb, stop=stop)
    x = reached.get("x", np.asarray(run.image))
    final = float(objective.objective(x, params, b["targets"], config.loss.weights(), form=direct.form)[0])
    coarse = f"{coarse_steps} x {len(divisors)} + " if divisors else ""
    if run.status == "stopped":
      st, t, _, _ = marks[-1]
      st -= coarse_steps * len(divisors) if divisors else 0
      lines.append(f"| {label} | {coarse}{st} | {t:.1f} | **{t / ref_s:.2f}** | {final:.5g} |")
    else:
      lines.append(f"| {label} | {coarse}{3 * ref_steps} (not reached) | - | - | {final:.5g} |")
    print(lines[-1], flush=True)
  lines.append("")


def bench_init_fast(params, size, steps, lines):
  """Wall time for `--init fast` to reach the loss `--init content` reaches in ``steps`` steps (gatys objective)."""
  c_path, s_path = paths()
  content, style = images.load_image(c_path), images.load_image(s_path)
  base = presets.gatys(size=size, steps=steps, report_every=5)
  js.stylize(content, style, base.set(steps=1), params=params)  # compile apart, untimed
  ref = js.stylize(content, style, base, params=params)
  target, ref_s = ref.losses["total"], ref.timings["run_s"]
  t0 = time.perf_counter()
  start = fast.initial_image(images.resize(content, size), [style])
  fast_s = time.perf_counter() - t0
  marks = []

  def cb(p):
    marks.append((p.step, p.elapsed, p.losses["total"]))

  run = js.stylize(
    content, style, base.set(init="fast", steps=3 * steps), params=params, init_image=start, callback=cb,
    stop=lambda: bool(marks) and marks[-1][2] <= target,
  )  # fmt: skip
  lines += [
    f"## 5. Starting from the fast network ({size} px, gatys, L-BFGS)",
    "",
    f"Target: the loss `--init content` reaches in {steps} steps, {target:.5g} ({ref_s:.1f} s, compile apart). "
    f"`--init fast` renders the start with the arbitrary network ({fast_s:.1f} s, its compile included) and "
    "optimizes the same objective; its time is read at the first report (every 5 steps) at or below the target.",
    "",
    "| start | steps | s to reach the target | vs --init content |",
    "|---|---|---|---|",
    f"| content | {steps} | {ref_s:.1f} | 1 |",
  ]
  first_loss = float(run.history["total"][0])
  if run.status == "stopped":
    st, t, _ = marks[-1]
    lines.append(f"| fast (start loss {first_loss:.4g}) | {st} | {fast_s + t:.1f} | {(fast_s + t) / ref_s:.2f} |")
  else:
    lines.append(f"| fast (start loss {first_loss:.4g}) | {3 * steps} (not reached) | - | - |")
  print(lines[-1], flush=True)
  lines.append("")


def bench_sweeps(params, size, steps, batches, lines):
  lines += [
    f"## 3. Sweeps ({size} px, gatys, L-BFGS, {steps} steps)",
    "",
    "Each sweep of B members both ways (`--batching`): *map*, every member alone with its single-image programs "
    "(bit for bit its own command); *vmap*, one compiled batch of B (equal to float32 rounding).",
    "",
    "| members | map image-steps/s | vmap image-steps/s | vmap s per step of the batch | compile s (map / vmap) |",
    "|---|---|---|---|---|",
  ]
  c_path, s_path = paths()
  config = presets.gatys(size=size, steps=steps, report_every=steps)
  for n in batches:
    spec = sweep.SweepSpec(ratios=tuple(10.0 ** -np.linspace(2, 5, n)))
    runs = {mode: sweep.stylize_sweep(c_path, s_path, config, spec.weights(config), params=params, batching=mode)
            for mode in ("map", "vmap")}  # fmt: skip
    m, v = runs["map"].timings, runs["vmap"].timings
    lines.append(
      f"| {n} | {m['image_steps_per_s']:.2f} | {v['image_steps_per_s']:.2f} | {v['run_s'] / steps:.2f} | "
      f"{m['compile_s']:.1f} / {v['compile_s']:.1f} |"
    )
    print(lines[-1], flush=True)
  lines.append("")


def chunk_memory(params, config, h: int, w: int) -> float:
  """GiB XLA's memory analysis gives for one compiled chunk of L-BFGS steps on an h x w image
  (arguments, outputs not aliased to donated arguments, temporaries; compiled from shapes,
  nothing runs)."""
  static = step.Static.from_config(config)
  prepared = vgg.prepare(params, config.network.conv, layers=static.form.layers)
  x = jax.ShapeDtypeStruct((h, w, 3), jnp.float32)
  targets = jax.eval_shape(lambda c: objective.compute_targets(params, c, c, config.form()), x)
  weights = config.loss.weights()
  state = jax.eval_shape(lambda x, t: step.init_state(x, prepared, t, weights, static=static), x, targets)
  f = jax.jit(lambda *a: step.run_chunk(*a, static=static), donate_argnums=(0, 1))
  m = f.lower(x, state, jnp.int32(0), prepared, targets, weights).compile().memory_analysis()
  return memory_need(m) / 2**30


def bench_memory(params, lines, budget_gib: float = 24.0):
  lines += [
    "## 4. Memory (gatys, L-BFGS chunk, 4:3 images)",
    "",
    f"XLA's memory analysis of the compiled chunk; the largest image that fits in {budget_gib:.0f} GiB is "
    "extrapolated linearly in pixels from the two sizes (not run).",
    "",
    "| convolutions | 512 x 384 GiB | 1024 x 768 GiB | largest 4:3 image in 24 GiB |",
    "|---|---|---|---|",
  ]
  for conv in ("direct", "winograd"):
    config = presets.gatys(conv=conv)
    small, big = chunk_memory(params, config, 384, 512), chunk_memory(params, config, 768, 1024)
    per_px = (big - small) / (768 * 1024 - 384 * 512)
    side = int(((budget_gib - (small - per_px * 384 * 512)) / per_px * 4 / 3) ** 0.5)
    lines.append(f"| {conv} | {small:.2f} | {big:.2f} | about {side} x {side * 3 // 4} |")
    print(lines[-1], flush=True)
  lines.append("")


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument(
    "--sizes", default=None, help="longest sides for the iteration table (default 128,256,512, and 1024,2048 on GPU)"
  )
  ap.add_argument("--repeats", type=int, default=7)
  ap.add_argument("--ttq-size", type=int, default=256)
  ap.add_argument("--ttq-steps", type=int, default=300)
  ap.add_argument("--sweep-size", type=int, default=256)
  ap.add_argument("--sweep-steps", type=int, default=10)
  ap.add_argument("--batches", default="1,2,4,8")
  ap.add_argument("--skip", default="", help="comma-separated sections to skip: iter,ttq,sweep,memory,init")
  ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
  args = ap.parse_args(argv)
  skip = set(args.skip.split(","))
  params = js.load_vgg19()
  lines = [
    "# jaxstyle benchmark",
    "",
    f"Machine: {machine()}.",
    "",
    f"Images: {Path(paths()[0]).name} (content), {Path(paths()[1]).name} (style).",
    "",
  ]
  if reference.available() is not None:
    lines += [f"Reference: {reference.available()}.", ""]
  sizes = [
    int(s)
    for s in (args.sizes or ("128,256,512" if jax.default_backend() == "cpu" else "128,256,512,1024,2048")).split(",")
  ]
  batches = [int(b) for b in args.batches.split(",")]
  sections = {
    "iter": lambda out: bench_iterations(params, sizes, args.repeats, out),
    "ttq": lambda out: bench_time_to_quality(params, args.ttq_size, args.ttq_steps, out),
    "sweep": lambda out: bench_sweeps(params, args.sweep_size, args.sweep_steps, batches, out),
    "memory": lambda out: bench_memory(params, out),
    "init": lambda out: bench_init_fast(params, args.ttq_size, args.ttq_steps, out),
  }
  out = Path(args.out)
  results.write_section("bench", lines, out)
  for name, run in sections.items():
    if name in skip:
      continue  # its block in RESULTS.md stays as it was
    body: list[str] = []
    run(body)
    when = (
      f"*Measured {datetime.date.today().isoformat()} with `python bench/bench.py {' '.join(argv or sys.argv[1:])}`.*"
    )
    results.write_section(f"bench.{name}", [body[0], "", when, *body[1:]], out)
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
