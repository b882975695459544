"""Quality: the default recipe against the `neural-style` preset on Gatys et al.'s Fig. 2 pairs.

Run: `.venv/bin/python bench/bench_quality.py [--recipes jaxstyle,neural-style] [--out-dir DIR]` from the
checkout (needs ../shared/images). Each recipe stylizes tubingen.jpg with starry_night, the_scream,
shipwreck and seated-nude at the recipe's size (512 px for both), then `jaxstyle.objective.metrics.score` measures
the result against the content resized to that size. Each run's image and record go to DIR
(`RECIPE_STYLE.png`, `.json`); a record already there is reused, so an interrupted run resumes. Writes
its section of bench/RESULTS.md (targets of issue 13) and `DIR/figure2.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402

import bench  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.objective import metrics  # noqa: E402
from jaxstyle.optim.stylize import stylize  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402

SHARED = bench.SHARED
STYLES = ("starry_night", "the_scream", "shipwreck", "seated-nude")
SHOWN = ("style_gram", "style_swd", "content", "border", "periodic_4", "periodic_8", "peak_2")


def run_one(params, recipe: str, style: str, out_dir: Path) -> dict:
  record = out_dir / f"{recipe}_{style}.json"
  if record.exists():
    return json.loads(record.read_text())
  config = presets.get(recipe)
  content = images.load_image(SHARED / "tubingen.jpg")
  painting = images.load_image(SHARED / f"{style}.jpg")
  load = os.getloadavg()[0]
  t0 = time.perf_counter()
  report = lambda p: print(f"  {recipe} {style}: step {p.step}, loss {p.losses['total']:.5g}", flush=True)
  result = stylize(content, painting, config, params=params, callback=report)
  wall = time.perf_counter() - t0
  image = np.asarray(result.image)
  images.save_image(out_dir / f"{recipe}_{style}.png", image)
  ref = images.resize(content, config.images.output_size)
  scores = metrics.score(params, ref, painting, [image])
  out = {
    "recipe": recipe,
    "style": style,
    "wall_s": wall,
    "compile_s": result.timings["compile_s"],
    "steps": result.steps_done,
    "load_at_start": load,
    "scores": {k: float(v[0]) for k, v in scores.items()},
  }
  record.write_text(json.dumps(out, indent=2))
  print(json.dumps(out), flush=True)
  return out


def table(runs: dict[tuple[str, str], dict], recipes: list[str], styles=STYLES) -> list[str]:
  lines = [
    "| recipe | style | wall s | steps | " + " | ".join(SHOWN) + " |",
    "|---|---|---|---|" + "---|" * len(SHOWN),
  ]
  for style in styles:
    for recipe in recipes:
      if (recipe, style) not in runs:
        continue
      r = runs[(recipe, style)]
      vals = " | ".join(f"{r['scores'][k]:.4g}" for k in SHOWN)
      lines.append(f"| {recipe} | {style} | {r['wall_s']:.0f} | {r['steps']} | {vals} |")
  return lines


def verdicts(runs: dict[tuple[str, str], dict], ours: str, theirs: str) -> list[str]:
  """Issue 13's targets, per pair: ours against theirs."""
  out = []
  for style in STYLES:
    a, b = runs[(ours, style)], runs[(theirs, style)]
    sa, sb = a["scores"], b["scores"]
    checks = [
      ("style distance", sa["style_gram"] <= sb["style_gram"], f"{sa['style_gram']:.4g} vs {sb['style_gram']:.4g}"),
      ("content <= 1.05x", sa["content"] <= 1.05 * sb["content"], f"{sa['content'] / sb['content']:.3f}x"),
      ("less wall time", a["wall_s"] < b["wall_s"], f"{a['wall_s']:.0f} s vs {b['wall_s']:.0f} s"),
      ("border <= 1.0", sa["border"] <= 1.0, f"{sa['border']:.3f}"),
      ("periodic 4 <= 2x", sa["periodic_4"] <= 2 * sb["periodic_4"], f"{sa['periodic_4'] / sb['periodic_4']:.2f}x"),
      ("periodic 8 <= 2x", sa["periodic_8"] <= 2 * sb["periodic_8"], f"{sa['periodic_8'] / sb['periodic_8']:.2f}x"),
      ("period-2 peak <= 3x", sa["peak_2"] <= 3.0, f"{sa['peak_2']:.2f}x"),
    ]
    cells = "; ".join(f"{name} **{'met' if ok else 'NOT met'}** ({fig})" for name, ok, fig in checks)
    out.append(f"- {style}: {cells}")
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--recipes", default="jaxstyle,neural-style", help="presets to compare, ours first")
  ap.add_argument("--styles", default=",".join(STYLES))
  ap.add_argument("--out-dir", default="quality", help="images and per-run records (default: quality/)")
  ap.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
  args = ap.parse_args(argv)
  if not (SHARED / "tubingen.jpg").exists():
    print(f"bench_quality: {SHARED} not found")
    return 1
  recipes = args.recipes.split(",")
  styles = args.styles.split(",")
  out_dir = Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  params = weights.load_vgg19()
  runs = {(r, s): run_one(params, r, s, out_dir) for s in styles for r in recipes}
  if args.no_write or tuple(styles) != STYLES:
    return 0
  # Gatys et al. Fig. 2's layout: the content, then per recipe a row of results; the paintings on top.
  content = images.load_image(SHARED / "tubingen.jpg")
  blank = np.ones_like(images.resize(content, 64))
  sheet = [content, *(images.load_image(SHARED / f"{s}.jpg") for s in STYLES)]
  labels = ["content: tubingen", *STYLES]
  for r in recipes:
    sheet += [blank, *(images.load_image(out_dir / f"{r}_{s}.png") for s in STYLES)]
    labels += [f"{r} preset:", *(f"{r}, {s}" for s in STYLES)]
  images.save_image(out_dir / "figure2.png", images.contact_sheet(sheet, labels, columns=len(STYLES) + 1, height=192))
  # Runs of other recipes left in DIR (e.g. `--recipes gatys --styles the_scream --no-write`), shown apart.
  others = [json.loads(f.read_text()) for f in sorted(out_dir.glob("*.json"))]
  others = {(r["recipe"], r["style"]): r for r in others if "recipe" in r and r["recipe"] not in recipes}
  loads = sorted({round(r["load_at_start"], 1) for r in runs.values() if r["load_at_start"] is not None})
  lines = [
    "## Default recipe against neural-style (Gatys et al. Fig. 2 pairs, tubingen.jpg, 512 px)",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_quality.py --recipes {args.recipes}`* on "
    f"{bench.machine()}; load averages "
    f"at the starts of the runs: {', '.join(map(str, loads))}. *wall s*: the whole `stylize` call (weights "
    "prepared, targets, compile, every scale). Measures from `jaxstyle score` (`jaxstyle.objective.metrics`) "
    "against the content at 512 px: lower is better for all.",
    "",
    *table(runs, recipes),
    "",
    f"Targets of issue 13 (`{recipes[0]}` against `{recipes[1]}`):",
    "",
    *verdicts(runs, recipes[0], recipes[1]),
    "",
  ]
  if others:
    styles_of = sorted({s for _, s in others}, key=STYLES.index)
    lines += [
      "Other recipes on the same pairs, for reference (their wall time was taken while other jobs ran: not a timing):",
      "",
      *table(others, sorted({r for r, _ in others}), styles_of),
      "",
    ]
  results.write_section("bench_quality", lines)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
