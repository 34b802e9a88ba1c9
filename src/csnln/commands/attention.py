"""Picture where the network borrows from for one pixel (or a rectangle) of an image: the
weights its in-scale and cross-scale attentions give every position in each SEM step, on a
log scale relative to the peak, the top matches outlined (for the cross-scale branch: the
patch of the downscaled image it matched and the larger patch it pastes), and each map's
entropy (2^H: how many equally weighted positions it amounts to). The top matches and the
entropies are also printed.

The image is the LR input (it is not downscaled); the whole image runs through the network in
float32, whose cost grows with the square of the pixel count: keep it small (a crop of about
128 x 128 takes seconds with the bundled model, minutes with the paper-size one).

  csnln attention photo.png --scale 2 --at 40,64 -o attention.png
  csnln attention photo.png --region 30,50,16,16 --top-k 3 --weights rank

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
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--at", metavar="X,Y", help="the pixel: column,row in the input image")
    where.add_argument(
        "--region",
        metavar="X,Y,W,H",
        help="a rectangle (left column, top row, width, height): the mean of its pixels' maps",
    )
    parser.add_argument(
        "--top-k", type=int, default=5, metavar="K", help="matches outlined per map (default 5)"
    )
    parser.add_argument(
        "--weights",
        choices=("log", "rank", "linear"),
        default="log",
        help="colour scale of the weights: log relative to the peak (default), rank, linear",
    )
    parser.add_argument("--model", help="a bundled model name or a checkpoint (default: bundled)")
    parser.add_argument(
        "-o", "--output", metavar="PNG", help="picture to write (default: <stem>_attention.png)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing picture")


def _numbers(text: str, count: int, option: str) -> list[int]:
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count:
        names = "X,Y" if count == 2 else "X,Y,W,H"
        raise ValueError(f"{option} must be {names} ({count} integers), got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    try:
        if args.top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
        if args.at is not None:
            col, row = _numbers(args.at, 2, "--at")
            where: dict = {"at": (row, col)}
            said = f"pixel x={col}, y={row}"
        else:
            left, top, width, height = _numbers(args.region, 4, "--region")
            where = {"region": (top, left, height, width)}
            said = f"region x={left}, y={top}, {width}x{height}"
        model = load_model(args.model or default_model_name(args.scale), args.scale).eval()
        if not isinstance(model, CSNLN):
            raise ValueError(f"{args.model!r} has no attention to show (it is not a CSNLN)")
        lr = load_rgb(args.image).to(torch.float32).div(255)[None]
        maps = attention_maps(model, lr, **where)
        picture = attention_picture(lr, maps, top_k=args.top_k, scale=args.weights)
        source = Path(args.image)
        out = Path(args.output or source.with_name(f"{source.stem}_attention.png"))
        write_picture(out, picture, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(exists_error(exc), file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, LookupError, CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for m in maps:
        stage = f" stage {m.stage + 1}" if m.stages > 1 else ""
        best = ", ".join(
            f"#{t.rank} {t.weight:.3g} at x={t.pasted[1]:.0f},y={t.pasted[0]:.0f}"
            for t in m.top_k(min(3, args.top_k))
        )
        print(
            f"step {m.step + 1}{stage} {m.kind}: entropy {m.entropy_bits:.1f} bits "
            f"(~{2**m.entropy_bits:,.0f} of {m.positions:,} positions); top: {best}"
        )
    print(f"wrote {out} ({len(maps)} attention maps of {said})")
    return 0
