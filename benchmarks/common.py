"""Helpers the benchmark scripts share: the matmul peak they compare against, and the package
as it was at an earlier commit (for side-by-side before/after rows)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def matmul_peak(dtype: str = "fp32") -> float:
    """GFLOP/s of a 2048^2 matmul in ``dtype`` ("fp32" or "bf16"), the best of 5 after one."""
    import torch

    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(2048, 2048, dtype=kind), torch.randn(2048, 2048, dtype=kind)
    a @ b
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def head_commit() -> str:
    """The short hash of the commit the benchmark runs at (its results name it)."""
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def baseline_src(rev: str) -> str:
    """The ``src`` folder of the package at commit ``rev``, extracted to a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="csnln_baseline_"))
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return str(folder / "src")
