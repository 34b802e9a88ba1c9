"""Helpers the benchmark scripts share: the matmul peak they compare against, and the package
as it was at an earlier commit (for side-by-side before/after rows)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
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


def cpu_description() -> str:
    """This CPU in a few words: its model name, threads, and whether it has AMX and
    AVX512-BF16 (what decides bf16's speed), from /proc/cpuinfo."""
    import os

    name, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == "unknown CPU":
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    amx = "yes" if {"amx_bf16", "amx_tile"} & flags else "no"
    bf16 = "yes" if "avx512_bf16" in flags else "no"
    return f"{name}, {os.cpu_count()} threads; AMX: {amx}, AVX512-BF16: {bf16}"


def add_row(lines: list[str], row: str) -> None:
    """Append a table row to a benchmark's report and print it as it comes."""
    lines.append(row)
    print(row, flush=True)


def write_report(lines: list[str], out: Path | None) -> None:
    """Write the report's lines to ``out`` (a Markdown file), when one was given."""
    if out:
        out.write_text("\n".join(lines) + "\n")


def scales_parser(doc: str, *, rounds: int | None = None) -> argparse.ArgumentParser:
    """A benchmark's parser with the usual ``--scales`` and ``--out`` (and ``--rounds``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    if rounds is not None:
        parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    return parser


def report_head(title: str, details: str) -> list[str]:
    """A report's first lines: its title with the command that printed it, then the commit,
    the time, this CPU and ``details``."""
    command = f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    return [
        f"# {title} — `{command.strip()}`",
        "",
        f"commit {head_commit()}, {when}; {cpu_description()}; {details}",
        "",
    ]
