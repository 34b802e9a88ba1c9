"""The ``3s`` x ``3s`` stride-``s`` padding-``s`` layers (x2's and x4's factor-2 layers, x3's
factor-3 ones) as they are against lowered: a transposed one as a 3x3 convolution to
``C s^2`` channels and a pixel shuffle, a strided one as a pixel unshuffle and a 3x3
convolution from ``C s^2`` channels (the same sums; each output phase is a 3x3 correlation of
the blocks around it). On the bundled model, one call of each scale's measured tile plan, the
four variants interleaved in one process with the commands' allocator setting, one thread,
median of ``--rounds`` after one warm-up round. x4's 8x8 stride-4 layers are not candidates
(as 3x3 convolutions 5/9 of their taps would be zeros).

    python benchmarks/strided_lowering.py --out benchmarks/results/strided_lowering_epyc_noamx.md
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
from csnln.models.layers import ConvPReLU  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

AS_IT_IS = ConvPReLU.forward
VARIANTS = ("as they are", "transposed lowered", "strided lowered", "both lowered")


def lowered_transposed_weight(weight: torch.Tensor, s: int) -> torch.Tensor:
    """(C_in, C_out, 3s, 3s) -> (C_out s s, C_in, 3, 3): output ``s m + r`` reads input
    ``m + t`` (t in -1, 0, 1) through tap ``s (1 - t) + r``."""
    c_in, c_out, _, _ = weight.shape
    w = weight.view(c_in, c_out, 3, s, 3, s).flip(2, 4)
    return w.permute(1, 3, 5, 0, 2, 4).reshape(c_out * s * s, c_in, 3, 3)


def lowered_weight(weight: torch.Tensor, s: int) -> torch.Tensor:
    """(C_out, C_in, 3s, 3s) -> (C_out, C_in s s, 3, 3): output ``m`` reads block ``m + t``
    (t in -1, 0, 1) through tap ``s (t + 1) + r``."""
    c_out, c_in, _, _ = weight.shape
    w = weight.view(c_out, c_in, 3, s, 3, s)
    return w.permute(0, 1, 3, 5, 2, 4).reshape(c_out, c_in * s * s, 3, 3)


def lowerable(layer: ConvPReLU) -> bool:
    (k, _), (s, _), (p, _) = layer.conv.kernel_size, layer.conv.stride, layer.conv.padding
    return s > 1 and k == 3 * s and p == s


def forward_for(variant: str) -> Callable[[ConvPReLU, torch.Tensor], torch.Tensor]:
    """ConvPReLU.forward with the variant's layers lowered (weights converted once)."""
    transposed = variant in ("transposed lowered", "both lowered")
    strided = variant in ("strided lowered", "both lowered")

    def forward(self: ConvPReLU, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        is_transposed = isinstance(conv, torch.nn.ConvTranspose2d)
        if not lowerable(self) or not (transposed if is_transposed else strided):
            return AS_IT_IS(self, x)
        s = conv.stride[0]
        if not hasattr(conv, "lowered"):
            if is_transposed:
                conv.lowered = (
                    lowered_transposed_weight(conv.weight.detach(), s).contiguous(),
                    conv.bias.detach().repeat_interleave(s * s),
                )
            else:
                conv.lowered = (lowered_weight(conv.weight.detach(), s).contiguous(), conv.bias)
        weight, bias = conv.lowered
        if is_transposed:
            return self.act(F.pixel_shuffle(F.conv2d(x, weight, bias, padding=1), s))
        return self.act(F.conv2d(F.pixel_unshuffle(x, s), weight, bias, padding=1))

    return forward


def main() -> None:
    args = scales_parser(__doc__, rounds=9).parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    lines = report_head(
        "Strided layers lowered to 3x3 convolutions and pixel shuffles",
        f"one thread; fp32; median of {args.rounds} interleaved rounds "
        "(spread: the lowest and highest round).",
    ) + [
        "| scale | one call | "
        + " | ".join(VARIANTS)
        + " | best lowered vs as they are | max abs difference |",
        "|---|---|" + "---|" * len(VARIANTS) + "---|---|",
    ]
    print("\n".join(lines), flush=True)
    forwards = {variant: forward_for(variant) for variant in VARIANTS}
    for scale in args.scales:
        plan = MEASURED_PLANS["small"][scale]
        model = load_model("small", scale=scale).eval()
        torch.manual_seed(0)
        x = torch.rand(plan.batch, 3, plan.tile, plan.tile)
        seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        outputs: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for round_ in range(args.rounds + 1):
                for variant in VARIANTS:
                    ConvPReLU.forward = forwards[variant]  # type: ignore[method-assign]
                    start = time.perf_counter()
                    outputs[variant] = model(x)
                    if round_:
                        seconds[variant].append(time.perf_counter() - start)
        ConvPReLU.forward = AS_IT_IS  # type: ignore[method-assign]
        median = {variant: statistics.median(seconds[variant]) for variant in VARIANTS}
        cells = [
            f"{median[v] * 1e3:.0f} ms ({min(seconds[v]) * 1e3:.0f}–{max(seconds[v]) * 1e3:.0f})"
            for v in VARIANTS
        ]
        best = min(VARIANTS[1:], key=median.__getitem__)
        diff = max((outputs[v] - outputs[VARIANTS[0]]).abs().max().item() for v in VARIANTS)
        row = (
            f"| x{scale} | {plan.batch} tiles of {plan.tile} | "
            + " | ".join(cells)
            + f" | {median[VARIANTS[0]] / median[best]:.2f}x ({best}) | {diff:.1e} |"
        )
        add_row(lines, row)
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
