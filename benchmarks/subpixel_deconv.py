"""The factor-2 and factor-3 transposed convolutions (kernel 3s, stride s, padding s) as one
3x3 convolution to ``C s^2`` channels and a pixel shuffle: the same values (each output
phase is a 3x3 correlation of the input), compared end to end on the bundled model, one
call of each scale's measured tile plan, interleaved in one process with the commands'
allocator setting, one thread (median of ``--rounds`` after one warm-up round). x4's 8x8
stride-4 layers are left as they are (as a 3x3 convolution 5/9 of its taps would be zeros).

    python benchmarks/subpixel_deconv.py --out benchmarks/results/subpixel_deconv_epyc_noamx.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import add_row, cpu_description, head_commit, write_report  # noqa: E402

from csnln.allocator import keep_freed_memory  # noqa: E402
from csnln.inference import MEASURED_PLANS  # noqa: E402
from csnln.models.layers import ConvPReLU  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

TRANSPOSED = ConvPReLU.forward


def subpixel_weight(weight: torch.Tensor, s: int, p: int) -> torch.Tensor:
    """A transposed conv's weight (C_in, C_out, K, K) as a 3x3 conv's (C_out s s, C_in, 3, 3):
    output ``s m + r`` reads input ``m + t`` through tap ``-s t + r + p``."""
    c_in, c_out, k, _ = weight.shape
    out = weight.new_zeros(c_out, s, s, c_in, 3, 3)
    taps = [(r, t, -s * t + r + p) for r in range(s) for t in (-1, 0, 1)]
    for ry, ty, ky in taps:
        for rx, tx, kx in taps:
            if 0 <= ky < k and 0 <= kx < k:
                out[:, ry, rx, :, ty + 1, tx + 1] = weight[:, :, ky, kx].T
    return out.reshape(c_out * s * s, c_in, 3, 3)


def subpixel_forward(self: ConvPReLU, x: torch.Tensor) -> torch.Tensor:
    conv = self.conv
    s = conv.stride[0]
    if not (
        isinstance(conv, torch.nn.ConvTranspose2d)
        and conv.kernel_size[0] == 3 * s
        and conv.padding[0] == s
    ):
        return TRANSPOSED(self, x)
    if not hasattr(conv, "subpixel"):  # converted once per layer
        conv.subpixel = (
            subpixel_weight(conv.weight.detach(), s, s),
            conv.bias.detach().repeat_interleave(s * s),
        )
    weight, bias = conv.subpixel
    return self.act(F.pixel_shuffle(F.conv2d(x, weight, bias, padding=1), s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(1)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = "python benchmarks/subpixel_deconv.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Transposed convolutions as convolution + pixel shuffle — `{command.strip()}`",
        "",
        f"commit {head_commit()}, {when}; {cpu_description()}; one thread; fp32; "
        f"median of {args.rounds} rounds.",
        "",
        "| scale | one call | transposed | 3x3 conv + shuffle | speed-up | max abs difference |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for scale in args.scales:
        plan = MEASURED_PLANS["small"][scale]
        model = load_model("small", scale=scale).eval()
        torch.manual_seed(0)
        x = torch.rand(plan.batch, 3, plan.tile, plan.tile)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        outputs: dict[bool, torch.Tensor] = {}
        with torch.inference_mode():
            for round_ in range(args.rounds + 1):
                for on in (False, True):
                    ConvPReLU.forward = subpixel_forward if on else TRANSPOSED
                    start = time.perf_counter()
                    outputs[on] = model(x)
                    if round_:
                        seconds[on].append(time.perf_counter() - start)
        ConvPReLU.forward = TRANSPOSED
        before, now = statistics.median(seconds[False]), statistics.median(seconds[True])
        diff = (outputs[True] - outputs[False]).abs().max().item()
        row = (
            f"| x{scale} | {plan.batch} tiles of {plan.tile} | {before * 1e3:.0f} ms | "
            f"{now * 1e3:.0f} ms | {before / now:.2f}x | {diff:.1e} |"
        )
        add_row(lines, row)
    write_report(lines, args.out)


if __name__ == "__main__":
    main()
