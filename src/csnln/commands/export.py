"""Export a model for other runners: ONNX (the one format so far), for chaiNNer,
onnxruntime, TensorRT, OpenCV dnn or C++.

  csnln export MODEL --scale S [--format onnx] [-o OUT.onnx] [--tile N] [--overwrite]

MODEL is a bundled model name (small), a .safetensors of this package, or the authors'
model_x{2,3,4}.pt. The graph takes LR tiles of N x N pixels (default: the model's own tile
plan: 32 at x2, 27 at x3, 24 at x4 for small) with any batch, float32 RGB in [0, 1], and
gives N x 3 x sN x sN (opset 18). Sizes other than the tile are not exported: graphs with a
dynamic height and width came out fixed or wrong at odd sizes, silently; cut images into
overlapping tiles instead (the overlap and blend margin are in the file's metadata, with the
scale and the csnln version), as chaiNNer, ComfyUI and csnln's own tiler do.

Before the file is written, onnxruntime runs it at batch 1, 3 and 8 against PyTorch; a graph
that differs by more than 1e-4 is not written (exit 1). Exporting takes about a minute.

Examples:
  csnln export small --scale 2                  # small_x2.onnx here
  csnln export small --scale 2 --format onnx    # the same: onnx is the default
  csnln export small --scale 4 -o small_x4.onnx --tile 48
  csnln export model_x2.pt -o csnln_paper_x2.onnx --tile 48   # the authors' weights

Exit status: 0 written; 1 the check failed or OUT exists (--overwrite); 2 bad arguments or
the onnx extra missing (pip install "csnln[onnx]").

Python: csnln.export.export("small", "small_x2.onnx", format="onnx", scale=2) (or
csnln.export.export_onnx); run a file with
csnln.Upscaler(csnln.export.OnnxModel("small_x2.onnx")).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..models.official import CheckpointError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..export import FORMATS

    parser.add_argument("model", help="a bundled model name, a .safetensors or an authors' .pt")
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default="onnx",
        help="the file format (default: onnx, the one so far)",
    )
    parser.add_argument(
        "--scale",
        type=int,
        choices=(2, 3, 4),
        help="the scale (needed for a bundled name; a checkpoint has its own)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="the file to write (default: <model>_x<scale> with the format's suffix, .onnx)",
    )
    parser.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="LR tile size of the graph (default: the model's tile plan, else 64)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def run(args: argparse.Namespace) -> int:
    from ..export import FORMATS, ExportError, export
    from ..zoo import BUNDLED

    if args.model in BUNDLED and args.scale is None:
        print(f"error: --scale is needed for the bundled model {args.model}", file=sys.stderr)
        return 2
    suffix = FORMATS[args.format][0]
    out = args.output or f"{Path(args.model).stem}_x{args.scale or 'model'}{suffix}"
    if not out.endswith(suffix):
        print(f"error: -o {out}: an {args.format} file must end in {suffix}", file=sys.stderr)
        return 2
    print(f"exporting {args.model} as {args.format} and checking it ...", file=sys.stderr)
    try:
        report = export(
            args.model,
            out,
            format=args.format,
            scale=args.scale,
            tile=args.tile,
            overwrite=args.overwrite,
        )
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (CheckpointError, ValueError, LookupError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report.summary()}")
    return 0
