"""Where the default's one-pixel checkerboard comes from (issue 22, item 7): the period-2 peak over a run.

Run: `.venv/bin/python bench/bench_checker.py [--size 256] [--steps 400] [--variants default,avgpool,tv3]`
from the checkout (needs ../shared/images). Each variant is the `jaxstyle` preset at one scale (tubingen.jpg x
starry_night.jpg, from the mean pixel) with one setting changed. Every `--every` steps it records
`metrics.periodic_peak` of the float image (the strongest period-2 bin of the whole picture over its
neighbourhood) and the image's coherent checkerboard amplitude (its projection on ``(-1)^(i+j)``, in 8-bit
grey levels); at the end the peak of the 8-bit picture and `metrics.score`'s style and content distances.
Then, at the default's result, each term's gradient along the unit checkerboard direction and the curvature
of each term along it (a finite difference of gradients), which say what the objective's optimum wants there.
Writes its section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402

import bench  # noqa: E402
from jaxstyle.io import images  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.nets import vgg  # noqa: E402
from jaxstyle.objective import loss, metrics  # noqa: E402
from jaxstyle.optim.problem import setup_problem  # noqa: E402
from jaxstyle.optim.stylize import stylize  # noqa: E402
from jaxstyle.settings import presets  # noqa: E402

SHARED = bench.SHARED
VARIANTS = {
  "default": {},
  "avgpool": dict(pooling="avg", native_pooling="avg"),
  "tv3": dict(tv_weight=3 * presets.jaxstyle().loss.tv_weight),
  "adam": dict(kind="adam"),
}


def checkerboard(h: int, w: int) -> np.ndarray:
  """The unit-norm ``(-1)^(i+j)`` pattern on all three channels, ``(h, w, 3)``."""
  c = ((np.add.outer(np.arange(h), np.arange(w)) % 2) * 2 - 1)[..., None] * np.ones(3, np.float32)
  return (c / np.linalg.norm(c)).astype(np.float32)


def amplitude(x: np.ndarray) -> float:
  """Coherent checkerboard amplitude per pixel, in 8-bit grey levels."""
  return float(np.vdot(x, checkerboard(*x.shape[:2]))) / np.sqrt(x.size) * 255


def run_variant(params, name: str, size: int, steps: int, every: int):
  one_scale = dict(size=size, scales=None, coarse_steps=None, steps=steps, report_every=every)
  config = presets.jaxstyle(**one_scale, **VARIANTS[name])
  content = images.load_image(SHARED / "tubingen.jpg")
  painting = images.load_image(SHARED / "starry_night.jpg")
  trace = {}

  def record(p):
    if p.report:
      x = np.asarray(p.image)
      trace[p.step] = (float(metrics.periodic_peak(x[None])[0, 0]), amplitude(x))

  t0 = time.perf_counter()
  result = stylize(content, painting, config, params=params, callback=record)
  wall = time.perf_counter() - t0
  x = np.asarray(result.image)
  q = np.round(np.clip(x, 0, 1) * 255) / 255  # what save_image writes at 8 bits
  s = metrics.score(params, images.resize(content, x.shape[:2]), painting, [x])
  row = dict(
    variant=name, wall=wall, trace=trace, peak_8bit=float(metrics.periodic_peak(q[None].astype(np.float32))[0, 0]),
    style=float(s["style_gram"][0]), content=float(s["content"][0]),
  )  # fmt: skip
  print(row, flush=True)
  return row, x, config, content, painting


def along_checkerboard(params, x: np.ndarray, config, content, painting) -> list[tuple[str, float, float]]:
  """Each term's gradient along the unit checkerboard direction and its curvature there; the style term
  also with average pooling (the same image and weights), to tell max pooling's share."""
  avg = config.replace(network=config.network.replace(pooling="avg", native_pooling="avg"))
  w = config.loss.weights()
  terms = {
    "style": (config, w._replace(content=0.0, tv=0.0)),
    "content": (config, w._replace(style=0.0, tv=0.0)),
    "tv": (config, w._replace(content=0.0, style=0.0)),
    "all": (config, w),
    "style, average pooling": (avg, w._replace(content=0.0, tv=0.0)),
  }
  d = jnp.asarray(checkerboard(*x.shape[:2]))
  h = 1e-3
  out = []
  for name, (cfg, wt) in terms.items():
    network = vgg.prepare(params, cfg.network.conv, layers=cfg.layers)
    problem = setup_problem(network, content, painting, cfg)
    f = jax.jit(loss.value_and_grad_fn(network, problem.targets, wt, form=cfg.form()))
    _, g0 = f(jnp.asarray(x))
    _, g1 = f(jnp.asarray(x) + h * d)
    out.append((name, float(jnp.vdot(g0, d)), float(jnp.vdot(g1 - g0, d)) / h))
  return out


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--size", type=int, default=256)
  ap.add_argument("--steps", type=int, default=400)
  ap.add_argument("--every", type=int, default=50)
  ap.add_argument("--variants", default="default,avgpool,tv3")
  ap.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
  args = ap.parse_args(argv)
  if not (SHARED / "tubingen.jpg").exists():
    print(f"bench_checker: {SHARED} not found")
    return 1
  names = args.variants.split(",")
  if unknown := [n for n in names if n not in VARIANTS]:
    print(f"bench_checker: unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    return 1
  params = weights.load_vgg19()
  rows, first = [], None
  for n in names:
    row, x, config, content, painting = run_variant(params, n, args.size, args.steps, args.every)
    rows.append(row)
    first = first or (x, config, content, painting)
  forces = along_checkerboard(params, *first)
  for name, g, c in forces:
    print(f"{name}: gradient {g:+.4g}, curvature {c:.4g}", flush=True)
  if args.no_write:
    return 0
  marks = sorted(rows[0]["trace"])
  lines = [
    f"## Period-2 checkerboard ({args.size} px, one scale, tubingen x starry_night, {args.steps} steps)",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_checker.py --size {args.size} --steps "
    f"{args.steps} --variants {args.variants}`* on {bench.machine()}. *peak at step k*: "
    "`metrics.periodic_peak` of the float image (the strongest period-2 bin over its neighbourhood; a clean "
    "picture is about 1); *amp*: the coherent checkerboard's amplitude per pixel in 8-bit grey levels "
    "(signed); *8-bit peak*: of the quantized result; style and content distances from `metrics.score`.",
    "",
    "| variant | " + " | ".join(f"peak (amp) at {k}" for k in marks) + " | 8-bit peak | style | content | wall s |",
    "|---|" + "---|" * (len(marks) + 4),
  ]
  for r in rows:
    cells = " | ".join(f"{r['trace'][k][0]:.1f} ({r['trace'][k][1]:+.3f})" if k in r["trace"] else "-" for k in marks)
    lines.append(
      f"| {r['variant']} | {cells} | {r['peak_8bit']:.1f} | {r['style']:.4f} | {r['content']:.4f} | {r['wall']:.0f} |"
    )
  lines += [
    "",
    f"At the `{names[0]}` result, along the unit checkerboard direction *d* (`(-1)^(i+j)` on all channels): "
    "each term's gradient *g.d* and curvature *d.H.d*. The optimum along *d* lies at "
    "*-g.d / d.H.d* from the image (divide by the square root of the pixel count for a per-pixel amplitude).",
    "",
    "| term | g.d | d.H.d |",
    "|---|---|---|",
    *(f"| {n} | {g:+.4g} | {c:.4g} |" for n, g, c in forces),
  ]
  print(f"wrote {results.write_section('bench_checker', lines)}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
