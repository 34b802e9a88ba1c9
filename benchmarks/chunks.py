"""How big the attentions' "auto" chunks should be on this CPU: the bundled model, end to end,
with ``csnln.models.attention.CACHE_SCORE_ELEMENTS`` set to each candidate, interleaved in one
process (median of ``--rounds`` after one warm-up round).

Rows: inference on 8 tiles per call at each scale's tile plan (bf16, as ``csnln upscale``
runs them) and a training step (forward + backward, bf16 autocast, batch 8 of LR 24, as
``configs/cpu_small_x*.yaml``). 2^24 elements is the memory bound of ``AUTO_SCORE_ELEMENTS``,
i.e. the chunks as they were before the cache-sized ones.

The process's allocator matters here: ``csnln upscale`` and ``csnln eval`` call
``csnln.allocator.keep_freed_memory()`` (freed blocks stay in the process), the Python API and
training do not (glibc returns large freed blocks to the system, and the next chunk of that
size page-faults again); ``--keep-freed-memory`` measures the commands' setting.

    python benchmarks/chunks.py                       # the API's and training's setting
    python benchmarks/chunks.py --keep-freed-memory   # the commands' setting
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import csnln.models.attention as attention  # noqa: E402
from csnln.zoo import BUNDLED, load_model  # noqa: E402

CANDIDATES = (2**24, 2**22, 2**21, 2**20)


def job(scale: int, train: bool) -> tuple[str, Callable[[], None]]:
    model = load_model("small", scale=scale).train(train)
    if train:
        lr, hr = torch.rand(8, 3, 24, 24), torch.rand(8, 3, 24 * scale, 24 * scale)

        def step() -> None:
            with torch.autocast("cpu", torch.bfloat16):
                sr = model(lr)
            (sr.float() - hr).abs().mean().backward()
            model.zero_grad(set_to_none=True)

        return "training step, 8 x LR 24", step
    tile = BUNDLED["small"].tile_plans[scale].tile
    x = torch.rand(8, 3, tile, tile)

    def infer() -> None:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            model(x)

    return f"inference, 8 tiles of {tile}", infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-freed-memory", action="store_true")
    args = parser.parse_args()
    if args.keep_freed_memory:
        from csnln.allocator import keep_freed_memory

        keep_freed_memory()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    allocator = "keep_freed_memory()" if args.keep_freed_memory else "glibc's defaults"
    print(
        f"commit {commit}; {when}; {args.threads} threads; allocator: {allocator}; "
        f"median of {args.rounds} rounds\n"
    )
    heads = " | ".join(f"2^{c.bit_length() - 1}" for c in CANDIDATES)
    print(f"| scale | job | {heads} | best vs 2^24 |")
    print("|---|---|" + "---|" * len(CANDIDATES) + "---|")
    saved = attention.CACHE_SCORE_ELEMENTS
    for scale in (2, 3, 4):
        for train in (False, True):
            name, fn = job(scale, train)
            times: dict[int, list[float]] = {c: [] for c in CANDIDATES}
            for round_ in range(args.rounds + 1):
                for c in CANDIDATES:
                    attention.CACHE_SCORE_ELEMENTS = c
                    began = time.perf_counter()
                    fn()
                    if round_:
                        times[c].append(time.perf_counter() - began)
            attention.CACHE_SCORE_ELEMENTS = saved
            med = {c: statistics.median(t) for c, t in times.items()}
            cells = " | ".join(f"{m * 1e3:.0f} ms" for m in med.values())
            best = min(med.values())
            print(f"| x{scale} | {name} | {cells} | {med[CANDIDATES[0]] / best:.2f}x |", flush=True)
    print(f"\nnow: CACHE_SCORE_ELEMENTS = 2^{saved.bit_length() - 1}")


if __name__ == "__main__":
    main()
