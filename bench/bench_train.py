"""Training target: 15 minutes of `jaxstyle train` at 256 px vs the zero-shot network (Starry Night).

Run: `.venv/bin/python bench/bench_train.py [--budget-s 900]` from the checkout (needs ../shared/images).
Trains Magenta's transformer (CIN layers and the style vector, lr 1e-3, batch 4, 256 px crops) on
../shared/images/train/ for a wall-clock budget, then compares the gatys objective, averaged over
tubingen.jpg and golden_gate.jpg at 256 px, of the trained network and of the zero-shot one (the
pretrained transformer with the style's predicted vector). Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402

import bench  # noqa: E402
from jaxstyle.fast import data  # noqa: E402
from jaxstyle.fast import train as tr  # noqa: E402
from jaxstyle.io import images, magenta_weights  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.settings.train import TrainSettings  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "images"


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--budget-s", type=float, default=15 * 60)
  args = ap.parse_args(argv)
  load = os.popen("uptime").read().strip()
  vgg = weights.load_vgg19()
  pred, trans = magenta_weights.load_arbitrary()
  style = images.load_image(SHARED / "starry_night.jpg")
  photos = data.load_images(SHARED / "train", min_side=256)
  held = [images.load_image(SHARED / "tubingen.jpg"), images.load_image(SHARED / "golden_gate.jpg")]
  s = TrainSettings(steps=2000, batch=4, lr=1e-3, train="cin", eval_every=50, report_every=10)
  zs = tr.zero_shot_loss(vgg, pred, trans, style, held, s)
  t0 = time.perf_counter()
  r = tr.train(
    style, photos, s, vgg_params=vgg, predictor_params=pred, transformer_params=trans, eval_images=held,
    callback=lambda p: print(f"step {p.step} loss {p.loss:.4g} {p.steps_per_second:.3f} it/s", flush=True),
    stop=lambda: time.perf_counter() - t0 > args.budget_s,
  )  # fmt: skip
  final = r.evals[-1]
  ratio = final["total"] / zs["total"]
  lines = [
    "## Training a fast network (`jaxstyle train`, Starry Night, 256 px)",
    "",
    f"Measured by `python bench/bench_train.py` on {bench.machine()}. Load at the start: `{load}`.",
    "",
    f"{r.steps_done} steps in a {args.budget_s / 60:.0f} min budget ({r.timings['steps_per_second']:.3f} it/s, "
    f"batch 4, CIN layers and vector, lr 1e-3). The gatys objective, mean over tubingen and golden_gate at 256 px:",
    "",
    "| network | content | style | total |",
    "|---|---|---|---|",
    f"| zero-shot (predicted vector) | {zs['content']:.4g} | {zs['style']:.4g} | {zs['total']:.4g} |",
    f"| trained | {final['content']:.4g} | {final['style']:.4g} | {final['total']:.4g} |",
    "",
    f"Trained / zero-shot: **{ratio:.3f}** ({100 * (1 - ratio):.1f}% lower; target: at least 30% lower).",
  ]
  results.write_section("bench_train", lines)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
