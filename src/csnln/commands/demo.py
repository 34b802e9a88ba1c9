"""Show what the bundled model does: Set5's "butterfly" made small, then upscaled back.

Writes butterfly_x<S>_lr.png (the small input), butterfly_x<S>_csnln.png (the result) and
butterfly_x<S>_compare.png (bicubic | model, with a zoomed detail) to OUT (default: the
current folder), and prints PSNR/SSIM of bicubic and of the model against the original
(Y channel, S pixels cropped at each border, as in the papers' tables).

Exit status: 0 on success; 1 when an output exists (pass --overwrite); 2 for bad arguments.

Python: from csnln.demo import demo; demo(scale=4, output_dir="out").
"""

from __future__ import annotations

import argparse
import sys

from ..allocator import keep_freed_memory
from ..demo import demo
from ..device import PRECISION_CHOICES
from ..models.official import CheckpointError
from . import exists_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale", type=int, choices=(2, 3, 4), default=4, help="upscaling factor (default: 4)"
    )
    parser.add_argument("-o", "--output", default=".", metavar="OUT", help="folder to write to")
    parser.add_argument(
        "--model",
        help="'bicubic', a bundled model name or a checkpoint (default: the bundled model)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="auto (default: bf16 where it is fast, else fp32), fp32, bf16 or fp16 (GPU)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    keep_freed_memory()  # as csnln upscale (csnln/allocator.py)
    try:
        result = demo(
            args.scale,
            args.output,
            model=args.model,
            precision=args.precision,
            device=args.device,
            overwrite=args.overwrite,
        )
    except FileExistsError as exc:
        print(exists_error(exc), file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, LookupError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = result.scale
    print(f"butterfly x{s} with {result.model} ({result.seconds:.1f} s):")
    print(f"  bicubic        {result.psnr_bicubic:.2f} dB / {result.ssim_bicubic:.4f}")
    print(f"  {result.model:<14} {result.psnr_model:.2f} dB / {result.ssim_model:.4f}")
    for path in result.files:
        print(f"wrote {path}")
    return 0
