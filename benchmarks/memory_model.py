"""Measure the inference memory of CSNLN per LR pixel, to fit the model used by ``--max-memory``.

For each scale, runs one float32 forward pass (n_feats 128, depth 2, batch 1, random weights,
default chunking) at several LR sizes, each in a fresh subprocess, and records the growth of the
process's peak resident memory during the pass. Memory does not grow with depth (steps run one
after another), so depth 2 stands for 12. Fits the slope of ``bytes = a * pixels + b`` by least
squares, then raises ``b`` until the line bounds every measurement from above (a budget must
not be underestimated), and prints the coefficients that ``csnln.inference.MEMORY_MODEL`` holds.

    python benchmarks/memory_model.py
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SIZES = {2: (48, 96, 144, 192), 3: (48, 96, 144, 192), 4: (48, 72, 96, 120)}


def child(scale: int, size: int) -> None:
    import torch

    import csnln

    model = csnln.CSNLN(scale, depth=2).eval()
    x = torch.rand(1, 3, size, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with torch.no_grad():
        model(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": peak - before}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return
    import numpy as np

    print("| scale | LR | growth of peak RSS (MB) | fit (MB) |")
    print("|---|---|---|---|")
    coefficients = {}
    for scale, sizes in SIZES.items():
        rows = []
        for size in sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(scale), str(size)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append((size * size, json.loads(out.stdout)["growth"]))
        pixels, growth = np.array(rows, dtype=float).T
        a, _ = np.polyfit(pixels, growth, 1)
        b = float(np.max(growth - a * pixels))  # upper bound of the measurements
        coefficients[scale] = (round(a), round(max(b, 0.0)))
        for (p, g), size in zip(rows, sizes, strict=True):
            print(f"| ×{scale} | {size}² | {g / 2**20:.0f} | {(a * p + b) / 2**20:.0f} |")
    print("\nCSNLN_MEMORY = {  # scale: (bytes per LR pixel, bytes constant), float32, n_feats 128")
    for scale, (a, b) in coefficients.items():
        print(f"    {scale}: ({a}, {b}),")
    print("}")


if __name__ == "__main__":
    main()
