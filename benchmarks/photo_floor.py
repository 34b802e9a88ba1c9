"""The least time any plan can take for a photo with the bundled weights on this CPU: their
FLOPs per LR pixel, once per pixel (no tile overlap), at this CPU's matmul peak.

``torch.utils.flop_counter`` counts one model call on one tile of each scale's measured plan
(a multiply-add is 2 FLOP), split into the convolutions (linear in the pixels: the same per
pixel for any tile or the whole image) and the attentions' matrix products (per pixel, they
grow with the tile or window; the plan's tile is counted). A kernel cannot run faster than
the 2048^2 matmul of ``benchmarks/common.py`` (measured here in fp32, and in bf16
where the CPU has AVX512-BF16 or AMX; the faster one is used), so ``FLOPs / peak`` is a floor
for the time, before any overlap, softmax, copy or blend. Fast-convolution algorithms
(Winograd, FFT) would do fewer multiplies than counted; PyTorch's CPU convolutions (oneDNN,
direct) do not use them for these layers.

    python benchmarks/photo_floor.py --out benchmarks/results/photo_floor_epyc_noamx.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_row, matmul_peak, report_head, scales_parser, write_report  # noqa: E402

from csnln.inference import MEASURED_PLANS  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

#: Issue 40's targets for a 1-Mpx photo on the 2-core machine (seconds), per scale.
TARGETS = {2: 10.0, 4: 30.0}


def flops_per_pixel(scale: int) -> tuple[int, float, float]:
    """(tile, convolution MFLOP, attention-matmul MFLOP) per LR pixel of the plan's tile."""
    from torch.utils.flop_counter import FlopCounterMode

    tile = MEASURED_PLANS["small"][scale].tile
    model = load_model("small", scale=scale).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(1, 3, tile, tile))
    counts = counter.get_flop_counts()["Global"]
    conv = sum(v for op, v in counts.items() if "convolution" in str(op))
    other = sum(counts.values()) - conv
    return tile, conv / tile**2 / 1e6, other / tile**2 / 1e6


def main() -> None:
    parser = scales_parser(__doc__)
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(1228, 816),
        metavar=("W", "H"),
        help="the photo's LR size (default: 1228 816, benchmarks/photo.py's 1-Mpx photo)",
    )
    args = parser.parse_args()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    # bf16 matmuls without these instructions are emulated, far below fp32 (and minutes long).
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    peaks = {p: matmul_peak(p) for p in (("fp32", "bf16") if native_bf16 else ("fp32",))}
    best = max(peaks, key=peaks.get)
    pixels = args.size[0] * args.size[1]
    lines = report_head(
        "The floor of a photo's time with the bundled weights",
        "2048² matmul peak: "
        + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peaks.items())
        + f" (the floor uses {best}); a {args.size[0]}x{args.size[1]} LR photo "
        f"({pixels / 1e6:.2f} Mpx), each pixel computed once.",
    ) + [
        "| scale | tile | convolutions MFLOP / LR px | attention matmuls MFLOP / LR px | "
        "photo GFLOP | floor s: convolutions alone | floor s: all | target s | "
        "target above the floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for scale in args.scales:
        tile, conv, attention = flops_per_pixel(scale)
        total = (conv + attention) * pixels / 1e3  # GFLOP
        floor_conv = conv * pixels / 1e3 / peaks[best]
        floor_all = total / peaks[best]
        target = TARGETS.get(scale)
        verdict = "-" if target is None else ("yes" if target > floor_all else "**no**")
        row = (
            f"| x{scale} | {tile} | {conv:.2f} | {attention:.2f} | {total:.0f} | "
            f"{floor_conv:.1f} | {floor_all:.1f} | {'-' if target is None else f'{target:.0f}'} "
            f"| {verdict} |"
        )
        add_row(lines, row)
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
