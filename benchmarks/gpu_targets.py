"""Issue 1/5's GPU targets, before and after, side by side in one run (needs a CUDA GPU).

Rows, for the package as it is (``now``) and as it was at ``--baseline`` (``before``, extracted
from git to a temporary folder), each in a fresh process:

* whole-image inference of the paper-size network (n_feats 128, depth 12, random weights in
  the authors' format) at LR 256x192 (Urban100's size): x2 in fp32 (target <= 0.3 s on an
  H200) and x4 in bf16 (target <= 1 s); median of ``--repeat`` calls after a warm-up, with the
  peak GPU memory;
* one training step at the paper's x4 setting (batch 16, LR 48, Adam, L1) in bf16 without
  activation checkpointing: its peak GPU memory (target: under 24 GB) and seconds.

    python benchmarks/gpu_targets.py                  # both packages, every row
    python benchmarks/gpu_targets.py --only now       # this package only

A row that runs out of memory or past ``--row-timeout`` seconds is reported as such.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import baseline_src  # noqa: E402

ROWS = [
    ("infer", 2, "fp32"),
    ("infer", 4, "bf16"),
    ("train", 4, "bf16"),
]


def child(src: str, kind: str, scale: int, precision: str, repeat: int) -> dict:
    sys.path.insert(0, src)
    sys.path.insert(0, str(ROOT / "tests"))
    import torch
    from reference import ReferenceCSNLN

    import csnln
    from csnln.inference import precision_context

    assert csnln.__file__.startswith(src), csnln.__file__
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = csnln.load_official(ReferenceCSNLN(scale, 128, 12).state_dict(), scale).to(device)
    torch.cuda.reset_peak_memory_stats()
    if kind == "infer":
        model.eval()
        x = torch.rand(1, 3, 192, 256, device=device)
        times = []
        with torch.no_grad(), precision_context(precision, device):
            for i in range(repeat + 1):
                torch.cuda.synchronize()
                start = time.perf_counter()
                model(x)
                torch.cuda.synchronize()
                if i:
                    times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
    else:
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), 1e-4)
        lr = torch.rand(16, 3, 48, 48, device=device)
        hr = torch.rand(16, 3, 48 * scale, 48 * scale, device=device)
        times = []
        for _ in range(2):
            torch.cuda.synchronize()
            start = time.perf_counter()
            with precision_context(precision, device):
                loss = (model(lr).float() - hr).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds = times[-1]
    return {"seconds": seconds, "peak_gb": torch.cuda.max_memory_allocated() / 2**30}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="b098e83")
    parser.add_argument("--only", choices=["before", "now"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--row-timeout", type=float, default=240)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        src, kind, scale, precision, repeat = args.child
        print(json.dumps(child(src, kind, int(scale), precision, int(repeat))))
        return 0
    packages = {}
    if args.only != "now":
        packages["before"] = baseline_src(args.baseline)
    if args.only != "before":
        packages["now"] = str(ROOT / "src")
    print("| row | scale | precision | package | seconds | peak GPU GB |")
    print("|---|---|---|---|---|---|")
    for kind, scale, precision in ROWS:
        what = "whole image, LR 256x192" if kind == "infer" else "train step, batch 16 x LR 48"
        for name, src in packages.items():
            command = [sys.executable, __file__, "--child", src, kind, str(scale), precision]
            command.append(str(args.repeat))
            try:
                out = subprocess.run(
                    command, capture_output=True, text=True, timeout=args.row_timeout
                )
                if out.returncode:
                    tail = out.stderr.strip().splitlines()[-1:] or ["failed"]
                    cells = f"{'out of memory' if 'memory' in tail[0] else tail[0][:80]} | —"
                else:
                    got = json.loads(out.stdout.strip().splitlines()[-1])
                    cells = f"{got['seconds']:.3f} | {got['peak_gb']:.2f}"
            except subprocess.TimeoutExpired:
                cells = f"over {args.row_timeout:.0f} s | —"
            print(f"| {what} | x{scale} | {precision} | {name} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
