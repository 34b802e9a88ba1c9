"""Channels-last convolutions for the small models: an idea for issue 1/5, measured.

oneDNN's convolutions can run on NHWC ("channels last") tensors, and a convolution alone is
often faster that way on a CPU. This script asks whether it pays in the whole model: the
bundled ``small`` model's calls as ``csnln upscale`` makes them (8 tiles of its tile plan per
call, one intra-op thread, as each of the two CPU streams has), and one training step of each
``configs/cpu_small_x{2,3,4}.yaml`` (random data, two threads), each with the model and input
in PyTorch's default layout and in ``torch.channels_last``. Both sides run in one process,
alternating, after the allocator setting the commands use (csnln.allocator.keep_freed_memory);
the median of ``--rounds``. The result: ``benchmarks/results/channels_last.md``.

    python benchmarks/channels_last.py
"""

from __future__ import annotations

import argparse
import copy
import datetime
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from common import head_commit  # noqa: E402


def _median_ms(fns: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up (oneDNN primitives, allocator)
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="timed calls per side (median)")
    args = parser.parse_args()

    from csnln.allocator import keep_freed_memory

    keep_freed_memory()
    import torch

    from csnln import CSNLN
    from csnln.inference import MEASURED_PLANS
    from csnln.training import load_config
    from csnln.zoo import load_model

    torch.manual_seed(0)
    layouts = {"NCHW": torch.contiguous_format, "channels last": torch.channels_last}
    rows = []
    torch.set_num_threads(1)
    for scale, plan in sorted(MEASURED_PLANS["small"].items()):
        base = load_model("small", scale=scale).eval()
        tiles = torch.rand(plan.batch, 3, plan.tile, plan.tile)
        fns: dict[str, Callable[[], None]] = {}
        for name, layout in layouts.items():
            model = copy.deepcopy(base).to(memory_format=layout)
            x = tiles.contiguous(memory_format=layout)

            def call(model=model, x=x) -> None:
                with torch.inference_mode():
                    model(x)

            fns[name] = call
        ms = _median_ms(fns, args.rounds)
        job = f"inference, {plan.batch} tiles of {plan.tile}, 1 thread"
        rows.append((f"x{scale}", job, ms))

    torch.set_num_threads(2)
    for scale in (2, 3, 4):
        config = load_config(ROOT / "configs" / f"cpu_small_x{scale}.yaml")
        m, d = config.model, config.data
        fns: dict[str, Callable[[], None]] = {}
        for name, layout in layouts.items():
            torch.manual_seed(0)
            model = CSNLN(scale=scale, n_feats=m.n_feats, depth=m.depth).to(memory_format=layout)
            optimizer = torch.optim.Adam(model.parameters())
            p = d.patch_size
            x = torch.rand(d.batch_size, 3, p, p).contiguous(memory_format=layout)
            y = torch.rand(d.batch_size, 3, scale * p, scale * p)

            def step(model=model, optimizer=optimizer, x=x, y=y) -> None:
                loss = (model(x) - y).abs().mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            fns[name] = step
        ms = _median_ms(fns, args.rounds)
        job = f"training step, {d.batch_size} x LR {d.patch_size}, fp32, 2 threads"
        rows.append((f"x{scale}", job, ms))

    commit = head_commit()
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print("# Channels-last convolutions — `python benchmarks/channels_last.py`\n")
    print(f"commit {commit}; {when}; median of {args.rounds} calls per side, alternating\n")
    print("| scale | job | NCHW ms | channels last ms | speed-up |")
    print("|---|---|---|---|---|")
    for scale, job, ms in rows:
        nchw, last = ms["NCHW"], ms["channels last"]
        print(f"| {scale} | {job} | {nchw:.0f} | {last:.0f} | {nchw / last:.2f}x |")


if __name__ == "__main__":
    main()
