"""The real neural-style beside jaxstyle's default on Gatys et al.'s Fig. 2 pairs.

neural-style 0.5.7 is the PyTorch port of jcjohnson's neural-style that users install (ProGamerGov's). It runs
here as a user runs it, with its own defaults (512 px, 1000 L-BFGS iterations, a random start, max pooling,
content 5, style 100, TV 1e-3) on the CPU (`-gpu c`), seeded (`-seed 0`), with the VGG19 of
`jaxstyle weights export --torch` (our weights, OIHW: the same network; tests/test_torch_export.py checks its
activations against ours). Beside it, `jaxstyle.optim.stylize.stylize` with the default recipe at the same size.

Run: `.venv/bin/python bench/bench_neural_style.py [--pairs starry_night,...] [--size 512] [--iterations 1000]
[--out-dir DIR] [--no-write]` from the checkout (needs `pip install -e '.[reference-neural-style]'`,
../shared/images and the weights). For each pair (tubingen.jpg with starry_night, the_scream, shipwreck,
seated-nude, as bench/bench_quality.py), neural-style then jaxstyle:

* *wall s*: neural-style's whole process (Python and torch start-up, the model file read, the targets, every
  iteration, the image written), timed around the subprocess; its start-up alone (`neural-style -h`) is
  measured once and reported apart. jaxstyle's whole `stylize` call (weights prepared, targets, compilation,
  every scale), as bench_quality times it; the weights are read once before.
* *s/iter*: neural-style's time per L-BFGS iteration, from the times its progress lines are printed.
* scores: `jaxstyle.objective.metrics.score` of both pictures against the content resized to the size (each
  picture resized to it; the style as it is): the same independent measure for both, lower is better.

Images, logs and per-run records go to DIR (`neural-style_STYLE.png`, `jaxstyle_STYLE.png`, `.json`, `.log`); a
record of the same size and iterations already there is reused, so an interrupted run resumes. DIR/neural_style.jpg
shows the pictures side by side. With all four pairs at the defaults and without --no-write, writes its section
of bench/RESULTS.md and jaxstyle/samples/gallery/neural_style.jpg (the README's figures).

`--iterations N` (a smoke run) gives neural-style N iterations and jaxstyle its 300 + 600 steps scaled by N/1000.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import results  # noqa: E402

import bench  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.objective import metrics  # noqa: E402
from jaxstyle.optim.stylize import stylize  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402

SHARED = bench.SHARED
STYLES = ("starry_night", "the_scream", "shipwreck", "seated-nude")
GALLERY = HERE.parent / "jaxstyle" / "samples" / "gallery" / "neural_style.jpg"
SIZE, ITERATIONS = 512, 1000
TOOLS = ("neural-style", "jaxstyle")
SHOWN = ("style_gram", "content")

# neural-style's console script, run by this Python. neural-style imports torchvision only for its image
# transforms; torchvision 0.28.0's wheel on the package index is linked against a CUDA torch, and beside the CPU
# torch its import stops while registering the meta kernels of its detection operators (nms, roi_align: compiled
# code that did not load). Only then, those registrations are left out and torchvision imported again: its
# transforms are pure Python and the same.
LAUNCHER = """
import sys, types
try:
  import torchvision
except RuntimeError:
  for m in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
    del sys.modules[m]
  sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
  import torchvision
  print("bench_neural_style: torchvision imported without its detection operators' meta kernels", flush=True)
sys.argv = ["neural-style"] + sys.argv[1:]
from neural_style.neural_style import main
main()
"""


def available() -> str | None:
  """None if neural-style can run, else why not."""
  for dist in ("torch", "torchvision", "neural-style"):
    try:
      md.version(dist)
    except md.PackageNotFoundError:
      return f"{dist} is not installed (pip install -e '.[reference-neural-style]')"
  return None


def versions() -> str:
  return ", ".join(f"{d} {md.version(d)}" for d in ("torch", "torchvision", "neural-style"))


def model_file(out_dir: Path) -> Path:
  """Our VGG19 exported for neural-style, once per DIR. neural-style reads the architecture from the whole path
  it is given (lowercased): nothing in it may name another model before '19' does."""
  path = (out_dir / "vgg19.pth").resolve()
  hit = [w for w in ("fcn32s", "pruning", "sod") if w in str(path).lower()]
  if hit:
    raise SystemExit(f"bench_neural_style: neural-style would read {path} as another model ({hit[0]}); use --out-dir")
  if not path.exists():
    weights.export_torch(path)
  return path


def neural_style_args(style: str, output: Path, model: Path, size: int, iterations: int) -> list[str]:
  every = min(50, max(1, iterations // 4))
  return [
    "-content_image", str(SHARED / "tubingen.jpg"), "-style_image", str(SHARED / f"{style}.jpg"),
    "-output_image", str(output), "-model_file", str(model), "-gpu", "c", "-disable_check", "-seed", "0",
    "-image_size", str(size), "-num_iterations", str(iterations), "-print_iter", str(every), "-save_iter", "0",
  ]  # fmt: skip


def startup_s() -> float:
  """neural-style's start-up alone: Python, torch, torchvision and neural-style imported, arguments parsed."""
  t0 = time.perf_counter()
  subprocess.run([sys.executable, "-c", LAUNCHER, "-h"], check=True, capture_output=True)
  return time.perf_counter() - t0


def cpu_s(pid: int | None = None) -> float | None:
  """CPU seconds (user + system, all threads) of a child process by its id (Linux), or of this process."""
  if pid is None:
    return time.process_time()
  try:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):
    return None


def run_neural_style(style: str, out_dir: Path, model: Path, size: int, iterations: int) -> tuple[float, dict]:
  """Runs neural-style; returns its wall time and what its output tells (iteration times, the last loss)."""
  output = out_dir / f"neural-style_{style}.png"
  cmd = [sys.executable, "-u", "-c", LAUNCHER, *neural_style_args(style, output, model, size, iterations)]
  marks, loss = [], None
  with open(out_dir / f"neural-style_{style}.log", "w") as log:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
      now = time.perf_counter() - t0
      log.write(line)
      if line.startswith("Iteration "):
        marks.append((int(line.split()[1]), now, cpu_s(proc.pid)))
        print(f"  neural-style {style}: {line.strip()} ({now:.0f} s)", flush=True)
      elif line.strip().startswith("Total loss:"):
        loss = float(line.split(":")[1])
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)
  if code != 0 or not output.exists():
    raise SystemExit(f"bench_neural_style: neural-style failed ({code}); see {out_dir / f'neural-style_{style}.log'}")
  per_iter = cpu_per_iter = None
  if len(marks) > 1:
    (i0, t0, c0), (i1, t1, c1) = marks[0], marks[-1]
    per_iter = (t1 - t0) / (i1 - i0)
    cpu_per_iter = None if c0 is None or c1 is None else (c1 - c0) / (i1 - i0)
  info = {"s_per_iteration": per_iter, "cpu_s_per_iteration": cpu_per_iter, "last_loss": loss, "iteration_marks": marks}
  info["cpu_s"] = usage.ru_utime + usage.ru_stime
  return wall, info


def jaxstyle_config(size: int, iterations: int):
  config = presets.get("jaxstyle", size=size)
  if iterations != ITERATIONS:  # a smoke run: the ladder's steps scaled as neural-style's
    scale = iterations / ITERATIONS
    steps, coarse = config.run.steps, config.images.coarse_steps
    config = config.set(steps=max(1, round(steps * scale)), coarse_steps=max(1, round(coarse * scale)))
  return config


def run_jaxstyle(params, style: str, out_dir: Path, size: int, iterations: int) -> tuple[float, dict]:
  config = jaxstyle_config(size, iterations)
  content = images.load_image(SHARED / "tubingen.jpg")
  painting = images.load_image(SHARED / f"{style}.jpg")
  report = lambda p: print(f"  jaxstyle {style}: step {p.step}, loss {p.losses['total']:.5g}", flush=True)
  t0, c0 = time.perf_counter(), cpu_s()
  result = stylize(content, painting, config, params=params, callback=report)
  wall, cpu = time.perf_counter() - t0, cpu_s() - c0
  images.save_image(out_dir / f"jaxstyle_{style}.png", np.asarray(result.image))
  return wall, {"steps": result.steps_done, "compile_s": result.timings["compile_s"], "cpu_s": cpu}


def run_one(params, tool: str, style: str, out_dir: Path, model: Path, size: int, iterations: int) -> dict:
  record = out_dir / f"{tool}_{style}.json"
  if record.exists():
    old = json.loads(record.read_text())
    if old.get("size") == size and old.get("iterations") == iterations:
      return old
  load = os.getloadavg()[0]
  if tool == "neural-style":
    wall, extra = run_neural_style(style, out_dir, model, size, iterations)
  else:
    wall, extra = run_jaxstyle(params, style, out_dir, size, iterations)
  content = images.resize(images.load_image(SHARED / "tubingen.jpg"), size)
  painting = images.load_image(SHARED / f"{style}.jpg")
  picture = images.load_image(out_dir / f"{tool}_{style}.png")
  scores = metrics.score(params, content, painting, [picture])
  out = {
    "tool": tool,
    "style": style,
    "size": size,
    "iterations": iterations,
    "shape": list(picture.shape[:2]),
    "wall_s": wall,
    "load_at_start": load,
    **extra,
    "scores": {k: float(v[0]) for k, v in scores.items()},
  }
  record.write_text(json.dumps(out, indent=2))
  print(json.dumps({k: v for k, v in out.items() if k != "iteration_marks"}), flush=True)
  return out


def verdict(ns: dict, js: dict) -> tuple[bool, list[str]]:
  """Issue 22's target for one pair: at least neural-style's style distance, at most its content distance, in at
  most a third of its wall time."""
  a, b = js["scores"], ns["scores"]
  checks = [
    ("style", a["style_gram"] <= b["style_gram"], f"{a['style_gram']:.4g} vs {b['style_gram']:.4g}"),
    ("content", a["content"] <= b["content"], f"{a['content']:.4g} vs {b['content']:.4g}"),
    ("time <= 1/3", js["wall_s"] <= ns["wall_s"] / 3, f"{js['wall_s'] / ns['wall_s']:.2f}x"),
  ]
  return all(ok for _, ok, _ in checks), [f"{n} **{'met' if ok else 'NOT met'}** ({fig})" for n, ok, fig in checks]


def figure(runs: dict, styles, out_dir: Path) -> Path:
  """Per pair a row: the content, the painting, neural-style's picture, jaxstyle's."""
  sheet, labels = [], []
  for style in styles:
    ns, js = runs[("neural-style", style)], runs[("jaxstyle", style)]
    sheet += [images.load_image(SHARED / "tubingen.jpg"), images.load_image(SHARED / f"{style}.jpg")]
    sheet += [images.load_image(out_dir / f"{t}_{style}.png") for t in TOOLS]
    labels += ["content: tubingen", f"style: {style}"]
    labels += [f"neural-style 0.5.7, {ns['wall_s']:.0f} s", f"jaxstyle default, {js['wall_s']:.0f} s"]
  path = out_dir / "neural_style.jpg"
  images.save_image(path, images.contact_sheet(sheet, labels, columns=4, height=192))
  return path


def section(runs: dict, styles, args, startup: float) -> list[str]:
  rows = [
    "| pair | neural-style wall s | s/iter | jaxstyle wall s | time ratio | style NS | style jaxstyle | "
    "content NS | content jaxstyle | target |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  notes = []
  for style in styles:
    ns, js = runs[("neural-style", style)], runs[("jaxstyle", style)]
    ok, cells = verdict(ns, js)
    per = "-" if ns.get("s_per_iteration") is None else f"{ns['s_per_iteration']:.3f}"
    ratio = js["wall_s"] / ns["wall_s"]
    rows.append(
      f"| tubingen x {style} | {ns['wall_s']:.0f} | {per} | {js['wall_s']:.0f} | {ratio:.2f} | "
      f"{ns['scores']['style_gram']:.4g} | {js['scores']['style_gram']:.4g} | {ns['scores']['content']:.4g} | "
      f"{js['scores']['content']:.4g} | {'met' if ok else '**NOT met**'} |"
    )
    busy = [f"{r['tool']} {r['cpu_s'] / r['wall_s']:.2f}" for r in (ns, js) if r.get("cpu_s")]
    notes.append(f"- {style}: " + "; ".join(cells) + (f"; cores busy on average: {', '.join(busy)}" if busy else ""))
  loads = sorted({round(r["load_at_start"], 1) for r in runs.values()})
  steps = runs[("jaxstyle", styles[0])]["steps"]
  return [
    f"## neural-style 0.5.7 against the default recipe (Gatys et al. Fig. 2 pairs, tubingen.jpg, {args.size} px)",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_neural_style.py`* on {bench.machine()}; "
    f"{versions()}; load averages at the starts of the runs: {', '.join(map(str, loads))}.",
    "",
    f"neural-style (ProGamerGov's PyTorch port of jcjohnson's, as installed from the package index) with its own "
    f"defaults ({args.iterations} L-BFGS iterations, random start), `-gpu c -seed 0`, and our VGG19 exported by "
    "`jaxstyle weights export --torch`; the default recipe (`jaxstyle stylize`'s, "
    f"{' + '.join(map(str, steps)) if isinstance(steps, list) else steps} steps). *wall s*: neural-style's whole "
    f"process (its start-up alone, `neural-style -h`, took {startup:.1f} s), jaxstyle's whole `stylize` call "
    "(compilation included). *s/iter*: neural-style's time per iteration, from its progress lines. *style*: "
    "`style_gram`, *content*: `content` of `jaxstyle.objective.metrics.score` against the content at the same "
    "size, the same measure for both (lower is better). *target* (issue 22): the default at most neural-style's "
    "style and content distances on every pair, in at most a third of its wall time. *cores busy*: CPU seconds "
    "(all threads) over wall seconds, of the machine's cores: well under them means the run shared the machine.",
    "",
    *rows,
    "",
    *notes,
    "",
    "![neural-style and the default side by side](../jaxstyle/samples/gallery/neural_style.jpg)",
    "",
  ]


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--pairs", default=",".join(STYLES), help="styles paired with tubingen.jpg")
  ap.add_argument("--size", type=int, default=SIZE, help="longest side in pixels (default: 512)")
  ap.add_argument("--iterations", type=int, default=ITERATIONS, help="neural-style's iterations (smoke runs)")
  ap.add_argument("--out-dir", default="out/neural_style", help="images, logs and records (default: out/neural_style)")
  ap.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md or the gallery")
  args = ap.parse_args(argv)
  why = available()
  if why is not None:
    print(f"bench_neural_style: {why}")
    return 1
  if not (SHARED / "tubingen.jpg").exists():
    print(f"bench_neural_style: {SHARED} not found")
    return 1
  styles = args.pairs.split(",")
  out_dir = Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  params = weights.load_vgg19()
  model = model_file(out_dir)
  startup = startup_s()
  print(f"neural-style start-up: {startup:.1f} s ({versions()})", flush=True)
  runs = {(t, s): run_one(params, t, s, out_dir, model, args.size, args.iterations) for s in styles for t in TOOLS}
  sheet = figure(runs, styles, out_dir)
  lines = section(runs, styles, args, startup)
  print("\n".join(lines))
  print(f"side by side: {sheet}")
  if args.no_write or tuple(styles) != STYLES or (args.size, args.iterations) != (SIZE, ITERATIONS):
    return 0
  shutil.copyfile(sheet, GALLERY)
  results.write_section("bench_neural_style", lines)
  return 0


if __name__ == "__main__":
  sys.exit(main())
