"""PSNR/SSIM of a model on benchmark datasets, by the protocol of the published tables.

Per image and scale s: HR (uint8 RGB, greyscale repeated) cropped to a multiple of s; LR is
the dataset's LR file when it has one (EDSR layout DIR/HR + DIR/LR_bicubic/X{s}/<name>x{s}.png),
else MATLAB-exact bicubic downscaling of HR rounded to uint8; the model's output is clamped
and rounded to uint8; PSNR and SSIM on the Y channel with s pixels cropped at each border.
Means per dataset and scale are printed as a Markdown table (rows: scales, columns: datasets,
cells "PSNR / SSIM (seconds per image)"), like the papers' tables.

Exit status: 0 on success; 1 when an image could not be read (it is named in a warning,
skipped and counted); 2 for bad arguments or input (missing/empty folders, LR/HR size
mismatch, unusable model).

The benchmark sets (Set5, Set14, B100, Urban100, Manga109) are not part of the package: they
are distributed with the EDSR/RCAN code bases and the papers' project pages; point --data at a
folder of HR images.

Examples:
  csnln eval --data Set5/                              # the bundled default, x2 x3 x4
  csnln eval --model bicubic --data Set5/ Set14/ --scale 2 3 4
  csnln eval --model small --scale 4 --data Set5/ --json set5.json
  csnln eval --model model_x2.pt --data Set5/ --chop  # an authors' checkpoint, their tiling
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..device import PRECISION_CHOICES
from ..evaluation import (
    UnreadableImageWarning,
    evaluate,
    format_table,
    write_csv,
    write_json,
)
from ..models.official import CheckpointError
from ..zoo import default_model_name, model_label
from . import add_tile_argument, add_tile_options, run_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``csnln eval``."""
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="'bicubic', a bundled model name, a project checkpoint (.safetensors) or an "
        "authors' checkpoint (model_x2.pt etc., recognised by its keys); default: the bundled "
        "default model, as `csnln upscale` uses it",
    )
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        type=Path,
        metavar="DIR",
        help="dataset folders: a folder of HR images, or the EDSR layout DIR/HR + "
        "DIR/LR_bicubic/X{s}/<name>x{s}.png (LR files used when present); the dataset is "
        "named after the folder",
    )
    parser.add_argument(
        "--scale",
        nargs="+",
        type=int,
        metavar="S",
        help="one or more scales, e.g. --scale 2 3 4 (default: the checkpoint's scale, or every "
        "scale of a bundled model; required for bicubic). A checkpoint serves only its own "
        "scale",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the results (with per-image ones) as JSON"
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write the results as CSV")
    parser.add_argument(
        "--save-images",
        type=Path,
        metavar="DIR",
        help="save each super-resolved image as DIR/<dataset>/x<s>/<name>.png",
    )
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average the outputs of the 8 flips/transposes of each image (x8 slower)",
    )
    tiling = parser.add_mutually_exclusive_group()
    add_tile_argument(tiling)
    tiling.add_argument(
        "--chop",
        action="store_true",
        help="the authors' recursive tiling (4 quarters, 10-pixel overlap, until under 3600 "
        "LR pixels), as behind the published numbers",
    )
    add_tile_options(parser)
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="fp32",
        help="arithmetic of the model: fp32 (default here, so that tables are the same on "
        "every machine), auto (bf16 where it is fast, as `csnln upscale` runs), bf16 "
        "(autocast) or fp16 (GPU only)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (default: CUDA if available), cpu or cuda[:N]"
    )
    parser.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget for choosing tile sizes, e.g. 4GB (default: half the free memory)",
    )
    parser.add_argument(
        "--table",
        choices=("grid", "rows"),
        default="grid",
        help="table layout: grid (scales x datasets, as in the papers; default) or rows (one "
        "row per dataset and scale, with image counts)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _default_model(scales: list[int] | None) -> str:
    """The bundled model ``csnln upscale`` uses (for the first scale asked, else x2)."""
    return default_model_name(scales[0] if scales else 2)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the requested files; returns the exit status."""
    if args.max_memory is None:  # (it raises peak memory: not when a budget is given)
        keep_freed_memory()  # no page-fault churn between model calls (csnln/allocator.py)
    try:
        model = args.model if args.model is not None else _default_model(args.scale)
        with warnings.catch_warnings():
            warnings.simplefilter("always", UnreadableImageWarning)
            warnings.showwarning = _show_warning
            results = evaluate(
                model,
                args.data,
                args.scale,
                run_options(args, chop=args.chop),
                save_images=args.save_images,
                progress=not args.no_progress,
            )
        label = model_label(model) + (" (the bundled default)" if args.model is None else "")
        print(format_table(results, layout=args.table, model=label), end="")
        extra = {"model": str(model)}
        if args.json is not None:
            write_json(results, args.json, extra=extra)
        if args.csv is not None:
            write_csv(results, args.csv)
    except (CheckpointError, ValueError, OSError, MemoryError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skipped = [(r, name) for r in results for name in r.skipped]
    if skipped:
        files = sorted({name for _, name in skipped})
        print(
            f"{len(files)} unreadable image(s) skipped ({len(skipped)} dataset/scale "
            f"evaluations): {', '.join(files)}",
            file=sys.stderr,
        )
        return 1
    return 0
