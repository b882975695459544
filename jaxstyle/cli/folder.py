"""``jaxstyle stylize PHOTOS/ STYLE -o OUT/``: every photo of a folder, each written with a record whose command
reproduces that photo alone.

Pairing: one style image (or several, blended) serves every photo; a style *folder* pairs each photo with the
style of the same file stem (``PHOTOS/tubingen.jpg`` with ``STYLES/tubingen.png``). Each photo is written to
``OUT/<stem>.png`` (the suffix of ``--folder-format``) with ``OUT/<stem>.json``. ``--checkpoint DIR`` keeps
``DIR/<stem>/checkpoint.npz`` for the photos running; ``--resume DIR`` skips the photos whose record says they
were completed with these settings and continues the ones checkpointed there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from jaxstyle.cli import common
from jaxstyle.cli.common import CliError
from jaxstyle.io import images
from jaxstyle.io.files import sidecar_path, write_json
from jaxstyle.optim import problem
from jaxstyle.optim import stylize as optim_stylize
from jaxstyle.optim.stylize import Photo, Result, scale_plan
from jaxstyle.settings.style import StyleConfig


class Job:
  """One photo of the folder: its files, its images, where it goes."""

  def __init__(self, content: Path, styles: list[Path], out: Path, cache: dict):
    self.content, self.styles, self.out = content, styles, out
    self.stem = content.stem
    self.image = images.load_image(content)
    self.style_images = [cache.setdefault(p, images.load_image(p)) for p in styles]

  def reproduce(self, config: StyleConfig, weights: str | None) -> str:
    paths = [str(p.resolve()) for p in self.styles]
    return common.stylize_command(str(self.content.resolve()), paths, str(self.out.resolve()), config, weights)


def run_folder(args: argparse.Namespace, config: StyleConfig) -> int:
  """The stylize command for a folder of photos; returns the exit code."""
  _refuse_what_a_folder_cannot_take(args, config)
  jobs = _jobs(args)
  for job in jobs:
    problem.check_inputs(job.image, job.style_images, config)
  done = _done_before(jobs, config, args) if args.resume else set()
  resumes = _resumes(jobs, config, args.resume) if args.resume else {}
  todo = [j for j in jobs if j.stem not in done]
  params, winfo = common.load_params(args.weights)
  printer = common.ProgressPrinter(args.quiet)
  printer.steps = sum(steps for _, steps in scale_plan(config))
  photos = [Photo(j.image, j.style_images, resume=resumes.get(j.stem)) for j in todo]
  ckpt_dir = args.checkpoint or args.resume
  if done and not args.quiet:
    print(f"{len(done)} of {len(jobs)} photos done before, with these settings; {len(todo)} to go", file=sys.stderr)
  written, bad = 0, 0
  t0 = time.perf_counter()
  with common.Signals() as signals:
    runs = optim_stylize.stylize_folder(
      photos, config, params=params, callback=_on_progress(printer, todo, ckpt_dir, config, len(jobs), len(done)),
      stop=signals.stop,
    )  # fmt: skip
    for group, results in runs:
      wall = time.perf_counter() - t0
      for i, result in zip(group, results, strict=True):
        _write(todo[i], result, args, winfo, wall, signals)
        written += 1
        bad += result.status == "non-finite"
      t0 = time.perf_counter()
  return _report(written, len(done), len(jobs), bad, args.output, signals)


def _refuse_what_a_folder_cannot_take(args: argparse.Namespace, config: StyleConfig) -> None:
  if args.sheet:
    raise CliError("--sheet takes one content image, not a folder")
  im = config.images
  if im.mask or im.style_regions or im.init_is_image:
    raise CliError("--mask, --style-regions and an --init image are in one content's coordinates: not with a folder")
  if os.path.exists(args.output) and not os.path.isdir(args.output):
    raise CliError(f"{args.output}: CONTENT is a folder, so OUT must be a folder")
  if args.folder_format not in images.SAVE_FORMATS:
    raise CliError(f"--folder-format {args.folder_format}: use one of {', '.join(images.SAVE_FORMATS)}")


def _jobs(args: argparse.Namespace) -> list[Job]:
  """Every photo with its style(s) and output, every input read once."""
  contents = images.list_images(args.content)
  stems = [p.stem for p in contents]
  twice = sorted({s for s in stems if stems.count(s) > 1})
  if twice:
    raise CliError(f"{args.content}: photos share the name {twice[0]} (their outputs would too)")
  pairing = len(args.style) == 1 and os.path.isdir(args.style[0])
  by_stem = {p.stem: p for p in images.list_images(args.style[0])} if pairing else {}
  out = Path(args.output)
  out.mkdir(parents=True, exist_ok=True)
  cache: dict = {}
  jobs = []
  for p in contents:
    if pairing and p.stem not in by_stem:
      raise CliError(f"{p}: no style named {p.stem}.* in {args.style[0]} (a style folder pairs by file name)")
    styles = [by_stem[p.stem]] if pairing else [Path(s) for s in args.style]
    job = Job(p, styles, out / f"{p.stem}{args.folder_format}", cache)
    common.check_output(str(job.out), [str(p), *map(str, styles)])
    jobs.append(job)
  return jobs


def _done_before(jobs: list[Job], config: StyleConfig, args) -> set[str]:
  """The photos whose output and record exist, completed by the command this run would record."""
  done = set()
  for job in jobs:
    side = Path(sidecar_path(job.out))
    try:
      record = json.loads(side.read_text())
    except (OSError, ValueError):
      continue
    if record.get("status") == "completed" and record.get("reproduce") == job.reproduce(config, args.weights):
      if job.out.is_file():
        done.add(job.stem)
  return done


def _resumes(jobs: list[Job], config: StyleConfig, directory: str) -> dict:
  """The checkpoints kept in ``directory/<stem>/``, checked against these settings and each photo's size."""
  out = {}
  for job in jobs:
    where = Path(directory) / job.stem
    if (where / optim_stylize.CHECKPOINT).is_file():
      out[job.stem] = optim_stylize.load_checkpoint(where, config, content_shape=job.image.shape)
  return out


def _on_progress(printer, todo: list[Job], ckpt_dir: str | None, config: StyleConfig, total: int, before: int):
  """Progress lines over the whole folder (the photo, and once one is done the folder's ETA at the mean time per
  photo), and each running photo's checkpoint at every report."""
  seen: dict[str, float] = {}  # photo -> when it started
  t0 = time.perf_counter()

  def on_progress(p) -> None:
    job = todo[p.member]
    if p.lead:
      seen.setdefault(job.stem, time.perf_counter())
      finished = len(seen) - 1  # the photos before the one reporting (a group's run side by side)
      eta = ""
      if finished:
        per_photo = (seen[job.stem] - t0) / finished
        eta = f", folder ETA {common.fmt_time(p.eta + per_photo * (len(todo) - len(seen)))}"
      printer.prefix = f"photo {before + len(seen)}/{total} {job.stem}{eta}: "
    printer(p)
    if ckpt_dir and p.report:
      optim_stylize.save_checkpoint(Path(ckpt_dir) / job.stem, p, config)

  return on_progress


def _write(job: Job, result: Result, args, winfo: dict, wall: float, signals: common.Signals) -> None:
  image = np.asarray(result.image)
  images.save_image(job.out, image, bit_depth=args.bit_depth, icc_profile=images.read_icc_profile(job.content))
  record = {
    "output": str(job.out.resolve()),
    "status": "interrupted" if result.status == "stopped" else result.status,
    "steps_done": result.steps_done,
    "command": common.command_line(),
    "reproduce": job.reproduce(result.config, args.weights),
    "content": str(job.content.resolve()),
    "style": [str(p.resolve()) for p in job.styles],
    "size": [int(image.shape[1]), int(image.shape[0])],
    "scales": result.scales,
    **common.run_record(result.config.to_dict(), result.losses, {**result.timings, "wall_s": wall}, winfo),
  }
  if signals.received is not None:
    record["signal"] = signals.name
  write_json(sidecar_path(job.out), record)
  if not args.quiet:
    print(f"wrote {job.out} ({image.shape[1]}x{image.shape[0]}); loss {result.losses['total']:.4g}", file=sys.stderr)


def _report(written: int, before: int, total: int, bad: int, out: str, signals: common.Signals) -> int:
  if signals.received is not None:
    print(
      f"jaxstyle: {signals.name}; {before + written} of {total} photos in {out} (the last ones so far)", file=sys.stderr
    )
    return signals.exit_code
  if bad:
    print(
      f"jaxstyle: error: the loss became NaN or infinite in {bad} photo(s); kept their last finite images",
      file=sys.stderr,
    )
    return common.EXIT_USAGE
  print(f"wrote {written} photos to {out} ({before} done before), each with its record")
  return 0
