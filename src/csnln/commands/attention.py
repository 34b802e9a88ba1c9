"""Picture where the network looks for one pixel of an image: the weights its in-scale and
cross-scale attentions give every position, in each SEM step.

The image is the LR input (it is not downscaled); the whole image runs through the network in
float32, whose cost grows with the square of the pixel count: keep it small (a crop of about
128 x 128 takes seconds with the bundled model, minutes with the paper-size one).

  csnln attention photo.png --scale 2 --at 40,64 -o attention.png

Python: csnln.attention_maps.attention_maps() and attention_picture().
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..attention_maps import attention_maps, attention_picture
from ..data.protocol import load_rgb
from ..imageio import write_picture
from ..models.network import CSNLN
from ..models.official import CheckpointError
from ..upscaling import default_model_name
from ..zoo import load_model
from . import exists_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the (small) input image")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="default: 2")
    parser.add_argument(
        "--at", required=True, metavar="X,Y", help="the pixel: column,row in the input image"
    )
    parser.add_argument("--model", help="a bundled model name or a checkpoint (default: bundled)")
    parser.add_argument(
        "-o", "--output", metavar="PNG", help="picture to write (default: <stem>_attention.png)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing picture")


def run(args: argparse.Namespace) -> int:
    try:
        x_text, _, y_text = args.at.partition(",")
        try:
            col, row = int(x_text), int(y_text)
        except ValueError:
            raise ValueError(f"--at must be X,Y (two integers), got {args.at!r}") from None
        model = load_model(args.model or default_model_name(args.scale), args.scale).eval()
        if not isinstance(model, CSNLN):
            raise ValueError(f"{args.model!r} has no attention to show (it is not a CSNLN)")
        lr = load_rgb(args.image).to(torch.float32).div(255)[None]
        maps = attention_maps(model, lr, (row, col))
        picture = attention_picture(lr, maps)
        source = Path(args.image)
        out = Path(args.output or source.with_name(f"{source.stem}_attention.png"))
        write_picture(out, picture, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(exists_error(exc), file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, LookupError, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(maps)} attention maps of pixel x={col}, y={row})")
    return 0
