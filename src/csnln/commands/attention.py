"""Picture where the network borrows from for one pixel (or a rectangle) of an image: the
weights its in-scale and cross-scale attentions give every position in each SEM step, on a
log scale relative to the peak, the top matches outlined (for the cross-scale branch: the
patch of the downscaled image it matched and the larger patch it pastes), and each map's
entropy (2^H: how many equally weighted positions it amounts to). The top matches and the
entropies are also printed.

The image is the LR input (it is not downscaled). The network runs in float32 on a window of
--window pixels around the pixel or region (96 by default, as the web app; its cost grows with
the square of the window's pixel count, so a large photo takes seconds, not minutes); the
output says which window it saw. --window 0 runs the whole image (keep it small: about
128 x 128 takes seconds with the bundled model, minutes with the paper-size one).

  csnln attention photo.png --scale 2 --at 40,64 -o attention.png
  csnln attention photo.png --region 30,50,16,16 --top-k 3 --weights rank

Python: csnln.attention_maps.attention_maps() and attention_picture().
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ..attention_maps import attention_maps, attention_picture
from ..data.protocol import load_rgb
from ..imageio import write_picture
from ..models.network import CSNLN, MIN_INPUT_SIZE
from ..models.official import CheckpointError
from ..zoo import default_model_name, load_model
from . import exists_error

#: LR pixels of the window the attention sees by default (the web app's).
DEFAULT_WINDOW = 96


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
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help=f"the attention sees an N x N window of the image around the pixel or region "
        f"(default {DEFAULT_WINDOW}, as the web app; 0: the whole image, slow on a large photo)",
    )


def window_box(
    size: tuple[int, int], region: tuple[int, int, int, int], window: int
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the ``window`` x ``window`` crop of an image of ``size``
    (h, w) centred on ``region`` (top, left, height, width), moved inside the image; the whole
    image when ``window`` is 0 or the image is no larger."""
    h, w = size
    top, left, height, width = region
    if window == 0 or (h <= window and w <= window):
        return 0, 0, h, w
    if height > window or width > window:
        raise ValueError(
            f"the region ({width}x{height}) is larger than the {window}x{window} window: "
            "give a larger --window (or 0: the whole image)"
        )
    wh, ww = min(window, h), min(window, w)
    y = min(max(0, top + height // 2 - wh // 2), h - wh)
    x = min(max(0, left + width // 2 - ww // 2), w - ww)
    return y, x, wh, ww


def _where(box: tuple[float, float, float, float], offset: tuple[int, int]) -> str:
    """A match's box as the centre of its part inside the image, in the input's pixels."""
    top, left, bottom, right = box
    if bottom <= top or right <= left:
        return "in the padding beyond the image's edge"
    # The pixel holding the centre (floor: a centre on the far edge is its last pixel).
    x, y = math.floor((left + right) / 2), math.floor((top + bottom) / 2)
    return f"x={offset[1] + x},y={offset[0] + y}"


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
        if args.window < 0 or 0 < args.window < MIN_INPUT_SIZE:
            raise ValueError(f"--window must be 0 or at least {MIN_INPUT_SIZE}, got {args.window}")
        if args.at is not None:
            col, row = _numbers(args.at, 2, "--at")
            region = (row, col, 1, 1)
            said = f"pixel x={col}, y={row}"
        else:
            left, top, width, height = _numbers(args.region, 4, "--region")
            region = (top, left, height, width)
            said = f"region x={left}, y={top}, {width}x{height}"
        model = load_model(args.model or default_model_name(args.scale), args.scale).eval()
        if not isinstance(model, CSNLN):
            raise ValueError(f"{args.model!r} has no attention to show (it is not a CSNLN)")
        image = load_rgb(args.image).to(torch.float32).div(255)[None]
        h, w = image.shape[-2:]
        if not (0 <= region[0] < h and 0 <= region[1] < w):
            raise ValueError(f"{said} is outside the {w}x{h} image {args.image}")
        y, x, wh, ww = window_box((h, w), region, args.window)
        lr = image[..., y : y + wh, x : x + ww]
        where: dict = (
            {"at": (region[0] - y, region[1] - x)}
            if args.at is not None
            else {"region": (region[0] - y, region[1] - x, region[2], region[3])}
        )
        seen = (
            f"the whole {w}x{h} image"
            if (wh, ww) == (h, w)
            else f"the {ww}x{wh} window at x={x},y={y} of the {w}x{h} image (--window)"
        )
        print(f"attention of the {said}: the network sees {seen}", flush=True)
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
            f"#{t.rank} {t.weight:.3g} at {_where(t.pasted, (y, x))}"
            for t in m.top_k(min(3, args.top_k))
        )
        print(
            f"step {m.step + 1}{stage} {m.kind}: entropy {m.entropy_bits:.1f} bits "
            f"(~{2**m.entropy_bits:,.0f} of {m.positions:,} positions); top: {best}"
        )
    print(f"wrote {out} ({len(maps)} attention maps of {said})")
    return 0
