"""Print-size stylization by tiles: seconds per step and peak memory as the image grows.

Run: `.venv/bin/python bench/bench_tiled.py [--sizes 2048,4096,8192] [--tile 512] [--steps 2]
[--fast-sizes 8192] [--fast-tile 1024]` from the checkout (needs ../shared/images, and the fast weights for
the second table). Each measurement runs in its own process (so its peak resident memory is its own).

1. The tiled objective: the default objective with Adam (no L-BFGS pairs to hold), `--tile` fixed, `--steps`
   steps after a first one that includes compilation.
2. Fast stylization (Magenta's arbitrary network, starry_night's vector) of the same image whole and by
   `--fast-tile` tiles with whole-image instance-norm statistics (`jaxstyle.fast.tiled`): seconds, peak
   memory, and the largest difference between the two results.

Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import results  # noqa: E402

import bench  # noqa: E402
from jaxstyle.fast import tiled as fast_tiled  # noqa: E402
from jaxstyle.io import images, magenta_weights  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.nets import magenta  # noqa: E402
from jaxstyle.optim.stylize import stylize  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402

SHARED = bench.SHARED


def one(size: int, tile: int, steps: int) -> dict:
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


def fast_one(size: int, tile: int | None, out: str) -> dict:
  predictor, transformer = magenta_weights.load_arbitrary()
  content = images.resize(images.load_image(SHARED / "tubingen.jpg"), size)
  vector = magenta.predict_style(predictor, images.load_image(SHARED / "starry_night.jpg"))
  t0 = time.perf_counter()
  y = fast_tiled.stylize(transformer, content[None], vector[None], tile=tile)
  y = np.asarray(y[0])
  wall = time.perf_counter() - t0
  np.save(out, y)
  return {
    "size": list(y.shape[:2]),
    "tile": tile,
    "s": wall,
    "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
  }


def fast_pair(size: int, tile: int, tmp: Path) -> dict:
  """The fast network at ``size`` whole and by ``tile`` tiles, each in its own process, and their difference."""
  import numpy as np

  runs = []
  for t in (None, tile):
    out = tmp / f"fast_{size}_{t}.npy"
    cmd = [sys.executable, __file__, "--fast-one", str(size), "--fast-tile", str(t or 0), "--npy", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    runs.append(json.loads(res.strip().splitlines()[-1]))
  whole, tiled = (np.load(tmp / f"fast_{size}_{t}.npy") for t in (None, tile))
  levels = int(np.abs(np.round(tiled * 255) - np.round(whole * 255)).max())
  out = {"runs": runs, "max_diff": float(np.abs(tiled - whole).max()), "diff_8bit": levels}
  for t in (None, tile):
    (tmp / f"fast_{size}_{t}.npy").unlink()
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--sizes", default="2048,4096,8192", help="longest sides, 4:3 (tubingen resized; '' to skip)")
  ap.add_argument("--tile", type=int, default=512)
  ap.add_argument("--steps", type=int, default=2, help="timed steps after the first")
  ap.add_argument("--fast-sizes", default="8192", help="longest sides for the fast network ('' to skip)")
  ap.add_argument("--fast-tile", type=int, default=1024)
  ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
  ap.add_argument("--fast-one", type=int, help=argparse.SUPPRESS)
  ap.add_argument("--npy", help=argparse.SUPPRESS)
  ap.add_argument("--out-dir", default="quality/tiled", help="records of finished measurements (reused)")
  args = ap.parse_args(argv)
  if args.one:
    print(json.dumps(one(args.one, args.tile, args.steps)))
    return 0
  if args.fast_one:
    print(json.dumps(fast_one(args.fast_one, args.fast_tile or None, args.npy)))
    return 0
  if not (SHARED / "tubingen.jpg").exists():
    print(f"bench_tiled: {SHARED} not found")
    return 1
  out_dir = Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)

  def cached(name: str, run) -> dict:  # a record already there is reused, so an interrupted run resumes
    path = out_dir / f"{name}.json"
    if not path.exists():
      path.write_text(json.dumps(run()))
    print(path.read_text(), flush=True)
    return json.loads(path.read_text())

  def objective(size: int) -> dict:
    cmd = [sys.executable, __file__, "--one", str(size), "--tile", str(args.tile), "--steps", str(args.steps)]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])

  sizes = [int(v) for v in args.sizes.split(",") if v.strip()]
  rows = [cached(f"objective_{n}_{args.tile}_{args.steps}", functools.partial(objective, n)) for n in sizes]
  fast_sizes = [int(v) for v in args.fast_sizes.split(",") if v.strip()]
  fast = [
    cached(f"fast_{n}_{args.fast_tile}", functools.partial(fast_pair, n, args.fast_tile, out_dir)) for n in fast_sizes
  ]
  lines = [
    "## Print size by tiles (tubingen x starry_night)",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_tiled.py --sizes {args.sizes} --tile "
    f"{args.tile} --steps {args.steps} --fast-sizes {args.fast_sizes} --fast-tile {args.fast_tile}`* on "
    f"{bench.machine()}. One process per measurement; *peak resident*: the whole process, weights and images "
    "included.",
    "",
    "**The tiled objective** (Adam, the default objective). *s per step*: median of the steps after the first "
    "(which compiles).",
    "",
    "| image (W x H) | tile | s per step | first step s (compile included) | peak resident GiB |",
    "|---|---|---|---|---|",
    *(
      f"| {r['size'][1]} x {r['size'][0]} | {r['tile']} | {r['s_per_step']:.1f} | {r['first_step_s']:.1f} | "
      f"{r['peak_rss_gib']:.2f} |"
      for r in rows
    ),
  ]
  if fast:
    lines += [
      "",
      "**Fast stylization** (Magenta's arbitrary network), the whole image against tiles with whole-image "
      "instance-norm statistics (`jaxstyle fast --tile`). *s*: the network's call, compile included; "
      "*difference*: the largest absolute difference from the whole image's result, in [0, 1] and in 8-bit levels.",
      "",
      "| image (W x H) | tile | s | peak resident GiB | difference | 8-bit levels |",
      "|---|---|---|---|---|---|",
    ]
    for f in fast:
      for r in f["runs"]:
        diff = f"{f['max_diff']:.2g} | {f['diff_8bit']}" if r["tile"] else "- | -"
        lines.append(
          f"| {r['size'][1]} x {r['size'][0]} | {r['tile'] or 'none'} | {r['s']:.1f} | {r['peak_rss_gib']:.2f} "
          f"| {diff} |"
        )
  results.write_section("bench_tiled", lines)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
