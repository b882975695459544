"""Video through the fast networks (issue 20): flicker, style and speed, per frame against consistent.

Run: `.venv/bin/python bench/bench_video.py [--clips bigbuckbunny.mp4:640,carphone_pristine.mp4:352]
[--style starry_night.jpg] [--frames N]` from the checkout (needs ../shared/videos and ../shared/images, and
OpenCV: `pip install opencv-python-headless`). For each clip (at the given longest side) it stylizes the frames
twice with `jaxstyle.video.fast.stylize_clip`: each frame on its own (`consistency=False`) and consistent (the
defaults), timing each after its first batch (compile apart). Graded with OpenCV, not with the product's own
flow: DIS optical flow (medium preset) of the *input* frames both ways, Ruder et al.'s forward-backward check,
and the warping error of Lai et al. (2018) (mean over frame pairs of the reliable pixels' squared RGB
difference between output t and output t-1 warped by cv2.remap); the style distance (`metrics.style_distance`,
relu1_1..relu5_1) of every `--style-every`-th frame. Also times the flow alone against DIS, and its endpoint
error on pairs with known motion made from the shared photographs (translation, rotation, zoom, an occluding
patch moving over a moving background). Writes its section of bench/RESULTS.md, and with `--figures DIR` a
strip of frames and a plot of the warping error per frame.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # noqa: E402

import bench  # noqa: E402
from jaxstyle.fast import stylize as fast  # noqa: E402
from jaxstyle.io import images, magenta_weights, plot, video  # noqa: E402
from jaxstyle.io import vgg_weights as weights  # noqa: E402
from jaxstyle.objective import metrics  # noqa: E402
from jaxstyle.settings.video import VideoSettings  # noqa: E402
from jaxstyle.video import fast as vfast  # noqa: E402
from jaxstyle.video import flow  # noqa: E402
from jaxstyle.video import frames as vframes  # noqa: E402

SHARED = bench.SHARED.parent
CUBIC = 2  # cv2.INTER_CUBIC


def _cv2():
  try:
    import cv2
  except ImportError:
    sys.exit("bench_video: needs OpenCV (pip install opencv-python-headless)")
  return cv2


# ---------------------------------------------------------------- the independent grader (OpenCV)


def dis_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """OpenCV's DIS flow (medium preset) from ``a`` to ``b`` (RGB in [0, 1]): ``a(x) ~ b(x + w(x))``."""
  cv2 = _cv2()
  grey = lambda x: cv2.cvtColor(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)  # noqa: E731
  return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(grey(a), grey(b), None)


def cv_warp(image: np.ndarray, w: np.ndarray) -> np.ndarray:
  cv2 = _cv2()
  h, wd = w.shape[:2]
  gx, gy = np.meshgrid(np.arange(wd, dtype=np.float32), np.arange(h, dtype=np.float32))
  return cv2.remap(image.astype(np.float32), gx + w[..., 0], gy + w[..., 1], cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


def cv_reliable(back: np.ndarray, fwd: np.ndarray) -> np.ndarray:
  """Ruder et al.'s forward-backward check of ``back`` (t to t-1) against ``fwd`` (t-1 to t), in NumPy."""
  f = cv_warp(fwd, back)
  s = back + f
  ok = (s**2).sum(-1) <= 0.01 * ((back**2).sum(-1) + (f**2).sum(-1)) + 0.5
  gy, gx = np.gradient(back[..., 0]), np.gradient(back[..., 1])
  grad2 = sum(g**2 for g in (*gy, *gx))
  return (ok & (grad2 <= 0.01 * (back**2).sum(-1) + 0.002)).astype(np.float32)


def grade_motion(frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
  """For t = 1..T-1: OpenCV's flow from input t back to t-1, and where it is reliable."""
  out = []
  for t in range(1, len(frames)):
    back, fwd = dis_flow(frames[t], frames[t - 1]), dis_flow(frames[t - 1], frames[t])
    out.append((back, cv_reliable(back, fwd)))
  return out


def warping_errors(outputs: np.ndarray, motion) -> np.ndarray:
  """Lai et al.'s warping error per pair, with OpenCV's warp."""
  errs = []
  for t, (back, rel) in enumerate(motion, 1):
    d2 = ((outputs[t] - cv_warp(outputs[t - 1], back)) ** 2).sum(-1)
    errs.append(float((rel * d2).sum() / max(rel.sum(), 1.0)))
  return np.asarray(errs)


# ---------------------------------------------------------------- flow against DIS on known motion


def _remap(image, mx, my):
  cv2 = _cv2()
  return cv2.remap(image.astype(np.float32), mx.astype(np.float32), my.astype(np.float32), CUBIC,
                   borderMode=cv2.BORDER_REFLECT)  # fmt: skip


def known_pair(photo: np.ndarray, patch: np.ndarray, kind: str, h: int = 180, w: int = 320):
  """Two frames with known motion from one photograph: ``a``, ``b``, the true flow, where it is defined."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
  cy, cx = h / 2, w / 2
  oy, ox = (photo.shape[0] - h) / 2, (photo.shape[1] - w) / 2
  a = photo[int(oy) : int(oy) + h, int(ox) : int(ox) + w]
  if kind == "rotation":
    th = np.deg2rad(3.0)
    rot = lambda x, y, t: (
      cx + np.cos(t) * (x - cx) - np.sin(t) * (y - cy),
      cy + np.sin(t) * (x - cx) + np.cos(t) * (y - cy),
    )  # noqa: E501, E731
    fwd, inv = (lambda x, y: rot(x, y, th)), (lambda x, y: rot(x, y, -th))
  elif kind == "zoom":
    z = 1.06
    fwd = lambda x, y: (cx + z * (x - cx), cy + z * (y - cy))  # noqa: E731
    inv = lambda x, y: (cx + (x - cx) / z, cy + (y - cy) / z)  # noqa: E731
  else:
    d = (4.3, -2.7) if kind == "translation" else (1.5, 0.5)
    fwd = lambda x, y: (x + d[0], y + d[1])  # noqa: E731
    inv = lambda x, y: (x - d[0], y - d[1])  # noqa: E731
  bx, by = inv(xx, yy)
  b = _remap(photo, bx + ox, by + oy)
  tx, ty = fwd(xx, yy)
  true = np.stack([tx - xx, ty - yy], -1)
  valid = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
  if kind == "patch":  # a painting's corner moving by (7, 3) over the background moving by (1.5, 0.5)
    ph, pw, py, px, dp = h // 3, w // 4, h // 3, w // 3, (7.0, 3.0)
    a, b = a.copy(), b.copy()
    a[py : py + ph, px : px + pw] = patch[:ph, :pw]
    sx, sy = xx - px - dp[0], yy - py - dp[1]
    inside = (sx >= 0) & (sx <= pw - 1) & (sy >= 0) & (sy <= ph - 1)
    b[inside] = _remap(patch[:ph, :pw], sx, sy)[inside]
    in_a = np.zeros((h, w), bool)
    in_a[py : py + ph, px : px + pw] = True
    true[in_a] = dp
    covered = (tx >= px + dp[0]) & (tx <= px + dp[0] + pw - 1) & (ty >= py + dp[1]) & (ty <= py + dp[1] + ph - 1)
    valid &= ~(covered & ~in_a)
  return np.clip(a, 0, 1).astype(np.float32), np.clip(b, 0, 1).astype(np.float32), true.astype(np.float32), valid


def bench_flow(lines: list[str]) -> None:
  photos = [n for n in ("tubingen.jpg", "golden_gate.jpg", "shipwreck.jpg") if (bench.SHARED / n).exists()]
  patch = images.load_image(bench.SHARED / "starry_night.jpg", size=400)
  ours = jax.jit(flow.optical_flow)
  rows, t_ours, t_dis = [], [], []
  for name in photos:
    photo = images.load_image(bench.SHARED / name, size=480)
    for kind in ("translation", "rotation", "zoom", "patch"):
      a, b, true, valid = known_pair(photo, patch, kind)
      ours(a, b).block_until_ready()
      t0 = time.perf_counter()
      w_ours = np.asarray(ours(a, b))
      t_ours.append(time.perf_counter() - t0)
      t0 = time.perf_counter()
      w_dis = dis_flow(a, b)
      t_dis.append(time.perf_counter() - t0)
      epe = lambda w: float(np.sqrt(((w - true) ** 2).sum(-1))[valid].mean())  # noqa: B023, E731
      rows.append((name, kind, epe(w_ours), epe(w_dis)))
      print(rows[-1], flush=True)
  lines += [
    "### Optical flow against OpenCV's DIS (medium) on known motion (320x180 crops of the shared photographs)",
    "",
    "*EPE*: mean endpoint error in px over the pixels whose true motion stays in the frame and is not occluded.",
    "",
    "| photo | motion | EPE jaxstyle (TV-L1) | EPE OpenCV DIS | ratio |",
    "|---|---|---|---|---|",
    *[f"| {n} | {k} | {a:.3f} | {b:.3f} | {a / b:.2f}x |" for n, k, a, b in rows],
    f"| all | mean | {np.mean([r[2] for r in rows]):.3f} | {np.mean([r[3] for r in rows]):.3f} | "
    f"{np.mean([r[2] for r in rows]) / np.mean([r[3] for r in rows]):.2f}x |",
    "",
    f"Time per pair (320x180, median): jaxstyle {1e3 * np.median(t_ours):.0f} ms, DIS {1e3 * np.median(t_dis):.0f} ms.",
    "",
  ]


# ---------------------------------------------------------------- clips


def run_clip(path: Path, size: int, count: int | None, styles, settings: VideoSettings, nets):
  frames = [f.pixels for f in video.read_frames(path, count=count)]
  t_first, outs = None, []
  t0 = time.perf_counter()
  for out, _ in vfast.stylize_clip(frames, styles, settings, nets):
    outs.append(out)
    if len(outs) == settings.batch:
      t_first = time.perf_counter()
  fps = (len(outs) - settings.batch) / (time.perf_counter() - t_first) if len(outs) > settings.batch else float("nan")
  return np.stack(outs), fps, t_first - t0


def bench_clip(args, path: Path, size: int, styles, nets, params, lines: list[str], figures: Path | None):
  inputs = np.stack([vframes.prepare_frame(f.pixels, size) for f in video.read_frames(path, count=args.frames)])
  motion = grade_motion(inputs)
  style = styles[0]
  row = {}
  runs = {}
  for name, consistency in (("per frame", False), ("consistent", True)):
    s = VideoSettings(size=size, consistency=consistency)
    outs, fps, first = run_clip(path, size, args.frames, styles, s, nets)
    errs = warping_errors(outs, motion)
    picked = outs[:: args.style_every]
    dist = np.concatenate([np.asarray(metrics.style_distance(params, picked[i : i + 4], style[None]))
                           for i in range(0, len(picked), 4)])  # fmt: skip
    row[name] = dict(error=errs.mean(), style=dist.mean(), fps=fps, first=first, errs=errs)
    runs[name] = outs
    print(path.name, name, {k: v for k, v in row[name].items() if k != "errs"}, flush=True)
  pf, cs = row["per frame"], row["consistent"]
  h, w = inputs.shape[1:3]
  lines.append(
    f"| {path.name} | {w}x{h} | {len(inputs)} | {pf['error']:.5f} | {cs['error']:.5f} | "
    f"{cs['error'] / pf['error']:.2f}x | {pf['style']:.4f} | {cs['style']:.4f} | {cs['style'] / pf['style']:.3f}x | "
    f"{pf['fps']:.2f} | {cs['fps']:.2f} | {cs['first']:.1f} |"
  )
  if figures is not None:
    figures.mkdir(parents=True, exist_ok=True)
    picks = np.linspace(0, len(inputs) - 1, 4).round().astype(int)
    strip = [np.concatenate([inputs[i], runs["per frame"][i], runs["consistent"][i]], 0) for i in picks]
    images.save_image(figures / f"{path.stem}_strip.jpg", np.concatenate(strip, 1))
    chart = plot.lines(
      {"per frame": pf["errs"], "consistent": cs["errs"]},
      xlabel="frame",
      ylabel="warping error (OpenCV flow)",
      title=f"{path.name}, {w}x{h}",
    )
    images.save_image(figures / f"{path.stem}_warping_error.png", chart)
  return row


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--clips", default="bigbuckbunny.mp4:640,carphone_pristine.mp4:352")
  ap.add_argument("--style", default="starry_night.jpg")
  ap.add_argument("--frames", type=int, default=None, help="frames per clip (default all)")
  ap.add_argument("--style-every", type=int, default=8)
  ap.add_argument("--figures", type=Path, default=None)
  ap.add_argument("--no-flow", action="store_true", help="skip the flow's endpoint-error table")
  args = ap.parse_args(argv)
  _cv2()
  params = weights.load_vgg19()
  predictor, transformer = magenta_weights.load_arbitrary()
  nets = fast.Networks(predictor, transformer)
  styles = [images.load_image(bench.SHARED / args.style)]
  import cv2

  lines = [
    "## Video through the fast networks: per frame against consistent",
    "",
    f"*Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_video.py --clips {args.clips} --style "
    f"{args.style}{f' --frames {args.frames}' if args.frames else ''}`* on {bench.machine()}, OpenCV "
    f"{cv2.__version__} (the grader). Style {args.style}, the arbitrary network, `jaxstyle video` defaults. "
    "*warping error*: Lai et al. (2018) with OpenCV's DIS flow of the input frames and a forward-backward check "
    "(squared RGB in [0, 1], mean over frame pairs); *style*: mean relative Gram distance of every "
    f"{args.style_every}th frame; *fps*: frames per second after the first batch (stylization only, no file "
    "I/O); *first s*: the first batch, compile included.",
    "",
    "| clip | size | frames | warping error per frame | consistent | ratio | style per frame | consistent | ratio "
    "| fps per frame | fps consistent | first s |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  rows = {}
  for item in args.clips.split(","):
    name, _, size = item.partition(":")
    path = SHARED / "videos" / name
    rows[name] = bench_clip(args, path, int(size), styles, nets, params, lines, args.figures)
  lines += ["", "Targets of issue 20 (`--method fast`):", ""]
  for name, r in rows.items():
    ratio = r["consistent"]["error"] / r["per frame"]["error"]
    sratio = r["consistent"]["style"] / r["per frame"]["style"]
    fps = r["consistent"]["fps"]
    verdict = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    lines.append(
      f"- {name}: warping error <= 0.5x {verdict(ratio <= 0.5)} ({ratio:.2f}x); style within 1.1x "
      f"{verdict(sratio <= 1.1)} ({sratio:.3f}x); >= 5 fps {verdict(fps >= 5)} ({fps:.2f} fps)"
    )
  lines.append("")
  if not args.no_flow:
    bench_flow(lines)
  results.write_section("bench_video", lines)
  print("\n".join(lines))
  return 0


if __name__ == "__main__":
  sys.exit(main())
