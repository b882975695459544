"""Print-size stylization with the tiled objective: seconds per step and peak memory as the image grows.

Run: `.venv/bin/python bench/bench_tiled.py [--sizes 2048,4096] [--tile 512] [--steps 3]` from the checkout
(needs ../shared/images). Each size runs in its own process (so its peak resident memory is its own): the
default objective with Adam (no L-BFGS pairs to hold), `--tile` fixed, `--steps` steps after a first one that
includes compilation. Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402

import bench  # noqa: E402

SHARED = bench.SHARED


def one(size: int, tile: int, steps: int) -> dict:
  import numpy as np

  from jaxstyle import images, presets, weights
  from jaxstyle.multiscale import stylize

  params = weights.load_vgg19()
  content = images.resize(images.load_image(SHARED / "tubingen.jpg"), size)  # upsampled past its own size
  style = images.load_image(SHARED / "starry_night.jpg")
  config = presets.get(presets.DEFAULT, size=size, scales=None, steps=steps + 1, kind="adam", tile=tile)
  config = config.set(report_every=1, init="content")
  ends = []
  t0 = time.perf_counter()
  result = stylize(content, style, config, params=params, callback=lambda p: ends.append(time.perf_counter()))
  per_step = np.diff(ends)  # the first step (with compilation) is left out
  return {
    "size": list(np.asarray(result.image).shape[:2]),
    "tile": result.scales[0]["tile"],
    "s_per_step": float(np.median(per_step)),
    "first_step_s": ends[0] - t0,
    "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
  }


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--sizes", default="2048,4096", help="longest sides, 4:3 (tubingen resized)")
  ap.add_argument("--tile", type=int, default=512)
  ap.add_argument("--steps", type=int, default=3, help="timed steps after the first")
  ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
  args = ap.parse_args(argv)
  if args.one:
    print(json.dumps(one(args.one, args.tile, args.steps)))
    return 0
  if not (SHARED / "tubingen.jpg").exists():
    print(f"bench_tiled: {SHARED} not found")
    return 1
  rows = []
  for size in map(int, args.sizes.split(",")):
    cmd = [sys.executable, __file__, "--one", str(size), "--tile", str(args.tile), "--steps", str(args.steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows.append(json.loads(out.strip().splitlines()[-1]))
    print(rows[-1], flush=True)
  lines = [
    "## Print size: the tiled objective (Adam, default objective, tubingen x starry_night)",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_tiled.py --sizes {args.sizes} --tile "
    f"{args.tile} --steps {args.steps}`* on {bench.machine()}. One process per size; *s per step*: median of "
    "the steps after the first (which compiles); *peak resident*: the whole process, weights and images included.",
    "",
    "| image (W x H) | tile | s per step | first step s (compile included) | peak resident GiB |",
    "|---|---|---|---|---|",
    *(
      f"| {r['size'][1]} x {r['size'][0]} | {r['tile']} | {r['s_per_step']:.1f} | {r['first_step_s']:.1f} | "
      f"{r['peak_rss_gib']:.2f} |"
      for r in rows
    ),
  ]
  results.write_section("bench_tiled", lines)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
