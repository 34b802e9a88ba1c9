"""A 3x3 convolution (64 -> 64 channels, the bundled model's) as oneDNN runs it against
Winograd F(4x4, 3x3) written in PyTorch ops (Lavin & Gray 2016): 4x fewer multiplies in the
matrix products, paid for by the tile transforms, which run as a strided convolution, a
permute and two small matmuls. The shapes are the feature maps of each scale's measured tile
plan (LR grid and the larger grids); one thread, the commands' allocator setting, median of
``--rounds`` after one warm-up. ``products alone`` is the Winograd batch matmul by itself:
what the method would take with free transforms.

    python benchmarks/winograd.py --out benchmarks/results/winograd_epyc_noamx.md
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_row, report_head, scales_parser, write_report  # noqa: E402

from csnln.allocator import keep_freed_memory  # noqa: E402
from csnln.inference import MEASURED_PLANS  # noqa: E402

# F(4, 3) at the points 0, +-1, +-2 and infinity.
B_T = torch.tensor(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=torch.float32,
)
G = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=torch.float32,
)
A_T = torch.tensor(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    dtype=torch.float32,
)
# The input transform B^T d B of every 6x6 tile as one stride-4 convolution with 36 kernels.
INPUT_KERNELS = torch.einsum("ai,bj->abij", B_T, B_T).reshape(36, 1, 6, 6).contiguous()


def filter_transform(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) -> (36, C, K): G w G^T per filter."""
    u = G @ weight @ G.T
    return u.permute(2, 3, 1, 0).reshape(36, weight.shape[1], weight.shape[0]).contiguous()


def input_transform(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """N, C, H, W -> (36, N th tw, C), tiles of 4x4 outputs (padding 1)."""
    n, c, h, w = x.shape
    th, tw = -(-h // 4), -(-w // 4)
    padded = F.pad(x, (1, tw * 4 + 1 - w, 1, th * 4 + 1 - h))
    v = F.conv2d(padded.reshape(n * c, 1, *padded.shape[2:]), INPUT_KERNELS, stride=4)
    return v.view(n, c, 36, th * tw).permute(2, 0, 3, 1).reshape(36, n * th * tw, c), (
        n,
        h,
        w,
        th,
        tw,
    )


def output_transform(m: torch.Tensor, shape: tuple[int, ...], bias: torch.Tensor) -> torch.Tensor:
    """(36, T, K) -> N, K, H, W: A^T m A per tile, as two matmuls and one permute."""
    n, h, w, th, tw = shape
    tiles, k = m.shape[1], m.shape[2]
    z = (A_T @ m.view(6, 6 * tiles * k)).view(4, 6, tiles * k)
    y = torch.matmul(A_T, z).view(4, 4, n, th, tw, k)
    y = y.permute(2, 5, 3, 0, 4, 1).reshape(n, k, th * 4, tw * 4)[:, :, :h, :w]
    return y + bias.view(1, -1, 1, 1)


def winograd_conv(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    v, shape = input_transform(x)
    return output_transform(torch.bmm(v, u), shape, bias)


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1e3


def main() -> None:
    args = scales_parser(__doc__, rounds=7).parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    lines = report_head(
        "A 3x3 convolution as Winograd F(4x4, 3x3) in PyTorch ops",
        f"one thread; fp32; 64 -> 64 channels; median of {args.rounds}.",
    ) + [
        "| scale | grid | feature map | oneDNN direct | Winograd | speed-up | "
        "products alone | max relative difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    torch.manual_seed(0)
    weight, bias = torch.randn(64, 64, 3, 3) * 0.05, torch.randn(64)
    u = filter_transform(weight)
    with torch.inference_mode():
        for scale in args.scales:
            plan = MEASURED_PLANS["small"][scale]
            grids = (1, 2, 4) if scale == 4 else (1, scale)
            for grid in grids:
                side = plan.tile * grid
                x = torch.randn(plan.batch, 64, side, side)
                direct = F.conv2d(x, weight, bias, padding=1)
                error = (winograd_conv(x, u, bias) - direct).abs().max() / direct.abs().max()
                v, _ = input_transform(x)
                direct_ms = median_ms(lambda x=x: F.conv2d(x, weight, bias, padding=1), args.rounds)
                winograd_ms = median_ms(lambda x=x: winograd_conv(x, u, bias), args.rounds)
                products_ms = median_ms(lambda v=v: torch.bmm(v, u), args.rounds)
                row = (
                    f"| x{scale} | {grid}x | {plan.batch} x 64 x {side} x {side} | "
                    f"{direct_ms:.1f} ms | {winograd_ms:.1f} ms | "
                    f"{direct_ms / winograd_ms:.2f}x | {products_ms:.1f} ms | {error:.1e} |"
                )
                add_row(lines, row)
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
