"""The attentions' CPU chunking: one image at a time in cache-sized chunks, against the whole
batch in chunks of the memory bound, end to end on the bundled model, interleaved in one
process (median of ``--rounds`` after one warm-up round).

Each row is one model call of each scale's measured tile plan (8 tiles per call), run as
``csnln upscale`` runs them on a CPU: ``--streams`` calls at once, each on its own thread with
one intra-op thread, and the commands' allocator setting (``keep_freed_memory``; without it,
``--glibc-defaults``, big freed buffers page-fault again and smaller chunks win for that
reason alone: ``benchmarks/results/chunks.md``). "before" runs every attention with
:func:`csnln.models.attention._cache_chunked` returning False, which is the chunking before
``CPU_SCORE_ELEMENTS``; the outputs of the two are compared too.

    python benchmarks/attention_chunks.py --out benchmarks/results/attention_chunks_epyc_noamx.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_description, head_commit  # noqa: E402

import csnln.models.attention as attention  # noqa: E402
from csnln.allocator import keep_freed_memory  # noqa: E402
from csnln.inference import MEASURED_PLANS  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

CACHE_CHUNKED = attention._cache_chunked


def timed_calls(model: torch.nn.Module, tiles: list[torch.Tensor], streams: int) -> float:
    """Seconds for ``streams`` calls at once (one per tile batch), one thread each."""

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    with ThreadPoolExecutor(streams, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        start = time.perf_counter()
        list(pool.map(call, tiles))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--glibc-defaults", action="store_true", help="no keep_freed_memory")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args()
    kept = False if args.glibc_defaults else keep_freed_memory()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    command = "python benchmarks/attention_chunks.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Attention chunks on the CPU — `{command.strip()}`",
        "",
        f"commit {head_commit()}, {when}; {cpu_description()}; {args.streams} calls at once, "
        f"one thread each; allocator: {'keep_freed_memory()' if kept else 'glibc defaults'}; "
        f"fp32; median of {args.rounds} rounds.",
        "",
        "| scale | one call | before: batch chunks of 2^24 | now: per image, 2^19 | "
        "speed-up | max abs difference |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for scale in args.scales:
        plan = MEASURED_PLANS["small"][scale]
        model = load_model("small", scale=scale).eval()
        torch.manual_seed(0)
        tiles = [torch.rand(plan.batch, 3, plan.tile, plan.tile) for _ in range(args.streams)]
        seconds: dict[bool, list[float]] = {False: [], True: []}
        outputs: dict[bool, torch.Tensor] = {}
        for round_ in range(args.rounds + 1):
            for now in (False, True):
                attention._cache_chunked = CACHE_CHUNKED if now else (lambda *_: False)
                t = timed_calls(model, tiles, args.streams)
                if round_:
                    seconds[now].append(t)
                with torch.inference_mode():
                    outputs[now] = model(tiles[0])
        attention._cache_chunked = CACHE_CHUNKED
        before, now = statistics.median(seconds[False]), statistics.median(seconds[True])
        diff = (outputs[True] - outputs[False]).abs().max().item()
        row = (
            f"| x{scale} | {plan.batch} tiles of {plan.tile} | {before * 1e3:.0f} ms | "
            f"{now * 1e3:.0f} ms | {before / now:.2f}x | {diff:.1e} |"
        )
        lines.append(row)
        print(row, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
