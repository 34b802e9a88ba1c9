"""Bicubic baseline on Set5 / Set14 / B100: the full-table acceptance run of ``csnln.evaluation``.

Runs :func:`csnln.evaluation.evaluate` with the ``bicubic`` model (the evaluation protocol is
documented there) and prints the Markdown table (scales x datasets, ``PSNR / SSIM``), to be
compared with the Python-protocol table of ``../shared/reference/numbers.md``; it also
compares the numbers itself (±0.01 dB, ±0.001 SSIM) and says so on stderr; with ``--check``
a difference makes the exit status 1.

Usage::

    python benchmarks/bicubic_baseline.py [--root ../shared/data/benchmark]
        [--datasets Set5 Set14 B100] [--scales 2 3 4] [--check]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from csnln.evaluation import evaluate, format_table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / ".." / "shared" / "data" / "benchmark"

#: numbers.md, "the same protocol written in Python": (dataset, scale) -> (PSNR, SSIM).
EXPECTED: dict[tuple[str, int], tuple[float, float]] = {
    ("Set5", 2): (33.6818, 0.93052),
    ("Set14", 2): (30.3301, 0.87003),
    ("B100", 2): (29.5648, 0.84364),
    ("Set5", 3): (30.4047, 0.86897),
    ("Set14", 3): (27.6341, 0.77598),
    ("B100", 3): (27.2110, 0.73917),
    ("Set5", 4): (28.4314, 0.81127),
    ("Set14", 4): (26.0918, 0.70496),
    ("B100", 4): (25.9634, 0.66821),
}
PSNR_TOLERANCE = 0.01
SSIM_TOLERANCE = 0.001


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--datasets", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    parser.add_argument(
        "--check", action="store_true", help="compare with numbers.md; exit 1 on a difference"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    folders = []
    for name in args.datasets:
        folder = args.root / name
        if not folder.is_dir():
            print(f"skipping {name}: {folder} not found", file=sys.stderr)
            continue
        folders.append(folder)
    if not folders:
        print("error: no datasets found", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = evaluate("bicubic", folders, args.scales, device="cpu")
    print(f"{time.perf_counter() - t0:.1f} s in all", file=sys.stderr)
    print(format_table(results), end="")

    failures = []
    for r in results:
        expected = EXPECTED.get((r.dataset, r.scale))
        if expected is None:
            continue
        if abs(r.psnr - expected[0]) > PSNR_TOLERANCE or abs(r.ssim - expected[1]) > SSIM_TOLERANCE:
            failures.append(
                f"{r.dataset} x{r.scale}: {r.psnr:.4f} / {r.ssim:.5f}, "
                f"expected {expected[0]:.4f} / {expected[1]:.5f}"
            )
    for line in failures:
        print(f"MISMATCH {line}", file=sys.stderr)
    compared = sum((r.dataset, r.scale) in EXPECTED for r in results)
    verdict = "FAILED" if failures else "all match"
    print(f"numbers.md check ({compared} cells): {verdict}", file=sys.stderr)
    return 1 if failures and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
