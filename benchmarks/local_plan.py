"""What a photo costs with the attention study's networks, each at its automatic plan: the
bundled cell (LIC, seed 0) on the CPU tile plan a model without a measured plan gets, and
local only at the cell's cost (L n_feats 86, seed 0), which has no attention and so runs whole
images when they fit (``ModelDescriptor.quadratic_cost``), against the same network on the
tiles it got before. One SunHays80 photo at x2, the automatic precision, best of ``--repeat``
runs after one untimed run, one model after the other in one process: run it with the machine
to itself.

    python benchmarks/local_plan.py            # -> benchmarks/results/local_plan.md

Needs ../shared and the runs' final weights (ablations/bundled/runs/...).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from csnln.ablation import BUDGETS, REFERENCE, Variant, run_dir  # noqa: E402
from csnln.ablation.studies import matched_local_width  # noqa: E402
from csnln.data.protocol import prepare_pair  # noqa: E402
from csnln.inference import GENERIC_CPU_PLAN, Upscaler  # noqa: E402
from csnln.metrics import psnr  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

PHOTO = ROOT.parent / "shared" / "data" / "benchmark" / "SunHays80" / "HR"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per row (best kept)")
    parser.add_argument("--image", default=None, help="HR photo (default: SunHays80's first)")
    args = parser.parse_args()
    budget = BUDGETS["bundled"]
    runs = ROOT / "ablations"
    weights = {
        "LIC (the bundled cell)": run_dir(runs, budget, REFERENCE.resolved(budget), 0),
        f"L n_feats {matched_local_width(budget)} (the cell's cost)": run_dir(
            runs,
            budget,
            Variant(branches=("local",), n_feats=matched_local_width(budget)).resolved(budget),
            0,
        ),
    }
    image = Path(args.image) if args.image else sorted(PHOTO.iterdir())[0]
    hr, lr = prepare_pair(image, 2)
    x = lr.float().div(255)[None]
    generic = {
        "tile": GENERIC_CPU_PLAN.tile,
        "tile_overlap": GENERIC_CPU_PLAN.overlap,
        "tile_batch": GENERIC_CPU_PLAN.batch,
    }
    rows = []
    for name, folder in weights.items():
        model = load_model(folder / "final.safetensors")
        plans = {"auto": {}}
        if not model.descriptor.quadratic_cost:
            plans["the tiles it got before"] = generic
        for plan_name, options in plans.items():
            upscaler = Upscaler(model, **options)
            plan = upscaler.plan(*x.shape[-2:])
            with torch.inference_mode():
                out = upscaler(x)  # untimed: allocator and kernels warm
                best = float("inf")
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    out = upscaler(x)
                    best = min(best, time.perf_counter() - began)
            quality = psnr(out[0].clamp(0, 1), hr, crop=2)
            where = "whole" if plan.tile is None else f"tiles {plan.tile}/{plan.overlap}"
            rows.append((name, plan_name, where, best, float(quality)))
            print(f"{name}, {plan_name} ({where}): {best:.2f} s, {quality:.3f} dB", flush=True)
    base = rows[0][3]
    lines = [
        "# A photo through the attention study's networks, each at its plan",
        "",
        f"`python benchmarks/local_plan.py` on {image.name} ({lr.shape[-1]}x{lr.shape[-2]} LR,"
        f" x2), torch {torch.__version__}, {torch.get_num_threads()} threads, automatic"
        f" precision; best of {args.repeat} after one untimed run. PSNR: Y, 2 pixels cropped.",
        "",
        "| network | plan | how it ran | seconds | × the cell | PSNR |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {n} | {p} | {w} | {s:.2f} | {s / base:.2f} | {q:.3f} |" for n, p, w, s, q in rows]
    out_path = ROOT / "benchmarks" / "results" / "local_plan.md"
    out_path.write_text("\n".join(lines) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
