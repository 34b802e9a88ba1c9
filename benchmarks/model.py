"""Speed and memory of the CSNLN forward pass: this implementation vs the unchunked reference.

Prints Markdown tables, side by side in one run (each measurement in a fresh subprocess so
that peak memory is the process's own):

1. seconds and peak memory for x2/x3/x4 at LR 48x48 and 64x64 (n_feats 128, depth 12,
   float32, batch 1, random weights), this package vs ``tests/reference.py`` (the authors'
   computation: per-image loop, full score matrices, all HR features kept for the tail);
2. whole-image x2 peak memory at LR 128, 192 and 256 (depth 1: memory does not grow with
   depth here since the steps run one after another);
3. the GFLOP/s reached (FLOPs counted by ``torch.utils.flop_counter``) against
   this machine's float32 matmul peak (measured here on a 2048x2048 matmul).

    python benchmarks/model.py            # everything (about 10 minutes on 2 cores)
    python benchmarks/model.py --quick    # x2 at 48x48 only
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import matmul_peak  # noqa: E402


def _build(impl: str, scale: int, depth: int, chunk: int | None):
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from reference import ReferenceCSNLN

    import csnln

    torch.manual_seed(0)
    reference = ReferenceCSNLN(scale, n_feats=128, depth=depth).eval()
    if impl == "reference":
        return reference
    model = csnln.load_official(reference.state_dict(), scale)
    if chunk is not None:
        model.set_chunk_size(chunk)
    return model


def measure(impl: str, scale: int, size: int, depth: int, repeat: int) -> dict:
    """Runs in the child process: time and peak RSS of one forward (best of `repeat`)."""
    import torch

    model = _build(impl, scale, depth, None)
    x = torch.rand(1, 3, size, size)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    times = []
    with torch.no_grad():
        for _ in range(repeat):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": min(times), "peak_gb": peak, "baseline_gb": rss_before}


def count_flops(scale: int, size: int, depth: int) -> float:
    """FLOPs of one forward (matmuls and convolutions, counted by torch's FlopCounterMode on
    this implementation, unchunked); depth extrapolated from depth 1 and 2."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, size, size)
    counts = []
    for d in (1, 2):
        model = _build("csnln", scale, d, None)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        counts.append(counter.get_total_flops())
    return counts[0] + (depth - 1) * (counts[1] - counts[0])


def child(impl: str, scale: int, size: int, depth: int, repeat: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        impl,
        str(scale),
        str(size),
        str(depth),
        str(repeat),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(result: dict, key: str, spec: str) -> str:
    if "error" in result:
        return "crashes" if "channels" in result["error"] else "—"
    return format(result[key], spec)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only x2 at 48x48")
    parser.add_argument(
        "--repeat", type=int, default=1, help="forward passes per measurement (best is kept)"
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, scale, size, depth, repeat = args.child
        print(json.dumps(measure(impl, int(scale), int(size), int(depth), int(repeat))))
        return

    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, batch 1, random weights\n"
    )
    peak = matmul_peak()
    print(f"float32 matmul peak here (2048^2): {peak:.0f} GFLOP/s\n")

    configs = [(2, 48)] if args.quick else [(2, 48), (2, 64), (3, 48), (3, 64), (4, 48), (4, 64)]
    print("## Forward pass, n_feats 128, depth 12\n")
    print(
        "| scale | LR | reference s | csnln s | speed-up | reference peak GB | csnln peak GB | csnln GFLOP/s | % of matmul peak |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for scale, size in configs:
        ref = child("reference", scale, size, 12, args.repeat)
        ours = child("csnln", scale, size, 12, args.repeat)
        flops = count_flops(scale, size, 12)
        speedup = (
            "—" if "error" in ref or "error" in ours else f"{ref['seconds'] / ours['seconds']:.2f}×"
        )
        rate = "—" if "error" in ours else f"{flops / ours['seconds'] / 1e9:.0f}"
        share = "—" if "error" in ours else f"{100 * flops / ours['seconds'] / 1e9 / peak:.0f}%"
        print(
            f"| ×{scale} | {size}² | {fmt(ref, 'seconds', '.2f')} | {fmt(ours, 'seconds', '.2f')} | {speedup} "
            f"| {fmt(ref, 'peak_gb', '.2f')} | {fmt(ours, 'peak_gb', '.2f')} | {rate} | {share} |",
            flush=True,
        )
    print('\n"crashes": like the released code, the reference needs LR sizes divisible by the')
    print("attention factor (3 at ×3); this implementation pads internally.")
    if args.quick:
        return

    print("\n## Whole-image ×2 memory, n_feats 128, depth 1 (steps run one after another,")
    print("so peak memory does not grow with depth; the reference keeps all D HR maps)\n")
    print(
        "| LR | reference peak GB | csnln peak GB | csnln s | reference in-scale score matrix alone |"
    )
    print("|---|---|---|---|---|")
    for size in (128, 192, 256):
        score_gb = (size * size) ** 2 * 4 / 1e9
        ref = child("reference", 2, size, 1, 1) if size <= 128 else {"error": "skipped"}
        ours = child("csnln", 2, size, 1, 1)
        ref_cell = (
            fmt(ref, "peak_gb", ".2f") if size <= 128 else f"not run (> {2 * score_gb:.0f} GB)"
        )
        print(
            f"| {size}² | {ref_cell} | {fmt(ours, 'peak_gb', '.2f')} | {fmt(ours, 'seconds', '.1f')} "
            f"| {score_gb:.1f} GB |",
            flush=True,
        )
    print("\nPeak GB is the peak resident memory of the whole process (Python, torch and the model")
    print(
        f"included; about {ours.get('baseline_gb', float('nan')):.2f} GB before the forward pass)."
    )


if __name__ == "__main__":
    main()
