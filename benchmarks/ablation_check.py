"""Check `csnln ablate`'s cost estimate, and that a committed run is reproducible, by training
one run again at today's budget.

Prints the estimate of one run (`csnln.ablation.estimate_cost`, CPU time), re-trains and
evaluates it into /tmp/abl_check (one thread; its process CPU time is measured), and compares
its scores with the committed `ablations/small/runs/<variant>/seed0/result.json`.

    python benchmarks/ablation_check.py        # the reference variant (depth 4), ~20 min
    python benchmarks/ablation_check.py 1      # the depth-1 variant
"""

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from csnln.ablation import (  # noqa: E402
    BUDGETS,
    REFERENCE,
    Variant,
    estimate_cost,
    run_one,
)

budget = BUDGETS["small"]
variant = (
    Variant(depth=int(sys.argv[1])).resolved(budget)
    if len(sys.argv) > 1
    else REFERENCE.resolved(budget)
)
TRAIN_DIRS = ["../shared/data/train/*"]
cost = estimate_cost([(variant, 0)], budget, benchmarks="../shared/data/benchmark", threads=1)
v = cost.variants[0]
print(
    f"estimate {variant.key}: step {v.step:.3f}s, {cost.summary()}, total {cost.total:.0f} CPU-s",
    flush=True,
)
t = time.perf_counter()
r = run_one(
    variant,
    0,
    budget,
    "/tmp/abl_check",
    train_dirs=TRAIN_DIRS,
    eval_sets=["../shared/data/benchmark/Set5", "../shared/data/benchmark/B100"],
    resume=False,
    threads=1,
    unroll=True,
)
assert r is not None and r.cpu_seconds is not None
print(
    f"measured: cpu {r.cpu_seconds:.0f} s, wall {time.perf_counter() - t:.0f} s; "
    f"ratio measured/estimate {r.cpu_seconds / cost.total:.3f}"
)
old = json.loads((ROOT / "ablations/small/runs" / variant.key / "seed0/result.json").read_text())
print("psnr now", r.psnr, "committed", old["psnr"])
print("unroll now", r.unroll, "committed", old["unroll"])
