"""One training step at the paper's setting: seconds and peak memory, this package vs the
released code, side by side in one run.

The step is the paper's x2 setting: batch 16, LR patch 48 (HR 96), n_feats 128, depth 12,
L1 loss, Adam; random weights and data. Rows: this package (``csnln.CSNLN``) in float32 and
bfloat16 autocast, each with activation checkpointing off (``none``), ``full`` (each SEM step
recomputed in the backward pass) and ``selective`` (convolution outputs kept, the rest
recomputed); and the unchunked reference implementation (``tests/reference.py``, the authors'
computation) in float32.
Then whether the paper's x4 setting (batch 16, LR patch 48, HR 192) fits in this machine's
memory with bf16 + checkpointing.

Every measurement runs in a fresh subprocess (peak memory = the peak resident set size of
that process, ``getrusage``, Python and torch included; the size before the step is shown
too) and times ONE step, first call included (oneDNN set-up, allocation, Adam state): a
paper-size step takes minutes on 2 cores, so there is no warm-up step. Rows whose estimated
memory exceeds what is available are not run. The reference (about 21 GB) runs last.

The x4 check measures depth 1 and depth 2 and extrapolates linearly to depth 12: with
activation checkpointing, each further SEM step only keeps its LR state and its tail term,
so live memory is linear in depth (``--x4-depth 12`` measures the real thing instead, which
takes about 20 minutes here). Its children run with ``MALLOC_MMAP_THRESHOLD_=131072``: with
glibc's default (a threshold that rises as big blocks are freed) the heap fragments and the
peak RSS keeps growing step after step although the live tensors do not (x4, batch 2,
bf16 + checkpointing: 2.36 / 2.30 / 2.68 / 3.35 GB at depths 1-4 by default, 1.99 / 2.01 /
2.02 GB at depths 1 / 2 / 4 with the fixed threshold), which would make the extrapolation
meaningless. The x2 rows use the default allocator, like the released code's 21 GB.

    python benchmarks/train_step.py                 # everything (an estimate is printed first)
    python benchmarks/train_step.py --only ckpt     # fp32/bf16 with checkpointing + x4 check
    python benchmarks/train_step.py --only reference   # the reference row alone (~21 GB)
    python benchmarks/train_step.py --batch 2       # a quick, smaller probe
    python benchmarks/train_step.py --small         # the small CPU configs: now vs b098e83

``--small``: one training step (model, L1, backward, Adam; random data) of each of
``configs/cpu_small_x{2,3,4}.yaml`` (their model, batch and patch as they are now), with the
package as it is and as it was at ``--baseline`` (a commit, extracted to a temporary folder), in
alternating fresh processes, each side in the precision of its own config (the baseline's:
``bf16``; now: ``auto``, the faster of fp32 and bf16 timed before the first step, as
``csnln train`` resolves it; the column shows both); the mean of ``--steps`` steps after two warm-up
steps, the best of ``--repeat`` processes, and the largest peak resident size of those processes
(the small configs keep freed memory in the process, ``train.keep_freed_memory``, which the
children apply as ``csnln train`` does where the package has the key). Per row also the step's
matrix work (convolutions and products, forward and backward, counted by
``torch.utils.flop_counter``), its rate now, its share of the 2048² matmul peak measured in the
same run, and the seconds it alone would take at that peak: a step cannot be faster than that
without doing less of it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RELEASED_SECONDS, RELEASED_GB = 148.0, 21.0  # numbers.md: the released code, this machine
TARGET_SPEEDUP, TARGET_GB = 2.5, 8.0
MMAP_THRESHOLD = 131072  # bytes; see the x4 check

#: Rough peak GB per batch element (paper x2, LR 48, depth 12) and a constant, from probes at
#: batch 2 here; used only to decide whether a row can run in the memory available.
MEMORY_GUESS = {
    ("csnln", "fp32", "none"): (1.3, 0.4),
    ("csnln", "fp32", "full"): (0.35, 0.4),
    ("csnln", "fp32", "selective"): (0.5, 0.4),
    ("csnln", "bf16", "none"): (1.05, 0.4),
    ("csnln", "bf16", "full"): (0.32, 0.4),
    ("csnln", "bf16", "selective"): (0.45, 0.4),
    ("reference", "fp32", "none"): (1.3, 0.4),
}
#: Rough seconds per batch element of one x2 step on a quiet machine here (for the up-front
#: time estimate; a loaded machine takes up to twice as long).
TIME_GUESS = {
    ("csnln", "fp32", "none"): 4.0,
    ("csnln", "fp32", "full"): 5.0,
    ("csnln", "fp32", "selective"): 4.5,
    ("csnln", "bf16", "none"): 1.8,
    ("csnln", "bf16", "full"): 2.1,
    ("csnln", "bf16", "selective"): 1.9,
    ("reference", "fp32", "none"): 9.25,
}


def available_gb() -> float:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def measure(
    impl: str, scale: int, precision: str, ckpt: str, batch: int, patch: int, depth: int
) -> dict:
    """In the child: one full training step (forward, L1, backward, Adam step)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    if impl == "reference":
        sys.path.insert(0, str(ROOT / "tests"))
        from reference import ReferenceCSNLN

        model = ReferenceCSNLN(scale, n_feats=128, depth=depth)
    else:
        from csnln import CSNLN

        model = CSNLN(scale, 128, depth)
        model.set_gradient_checkpointing(ckpt)
    model.train()
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.999), eps=1e-8
    )
    lr = torch.rand(batch, 3, patch, patch)
    hr = torch.rand(batch, 3, scale * patch, scale * patch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            sr = model(lr)
    else:
        sr = model(lr)
    loss = F.l1_loss(sr.float(), hr)
    forward = time.perf_counter() - start
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": seconds, "forward": forward, "peak_gb": peak, "before_gb": before}


def child(
    impl: str,
    scale: int,
    precision: str,
    ckpt: str,
    batch: int,
    patch: int,
    depth: int,
    *,
    env: dict[str, str] | None = None,
) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, str(scale), precision, ckpt]
    cmd += [str(batch), str(patch), str(depth)]
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=full_env)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        return {"error": tail if out.returncode > 0 else f"killed (signal {-out.returncode})"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def small_step(
    src: str, config_path: str, steps: str, variant: str = "", precision: str = ""
) -> dict:
    """Seconds per training step of a small config with the package in ``src``
    (``variant`` "PATCHxBATCH" overrides the config's patch and batch sizes, ``precision``
    the config's precision; ``auto`` is resolved as ``csnln train`` resolves it)."""
    sys.path.insert(0, src)
    import torch
    import yaml

    import csnln
    from csnln.inference import precision_context

    config = yaml.safe_load(Path(config_path).read_text())
    m, d = config["model"], config["data"]
    # As `csnln train` with this package: the allocator setting where the package has it
    # (b098e83 had not; its training ran with glibc's defaults).
    from csnln.training.config import TrainSection

    keeps = config["train"].get("keep_freed_memory", False)
    if keeps and "keep_freed_memory" in TrainSection.__dataclass_fields__:
        from csnln.allocator import keep_freed_memory

        keep_freed_memory()
    torch.manual_seed(0)
    model = csnln.CSNLN(m["scale"], n_feats=m["n_feats"], depth=m["depth"])
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    batch, patch, scale = d["batch_size"], d["patch_size"], m["scale"]
    if variant:
        patch, batch = (int(v) for v in variant.split("x"))
    lr = torch.rand(batch, 3, patch, patch)
    hr = torch.rand(batch, 3, scale * patch, scale * patch)
    cpu = torch.device("cpu")
    precision = precision or config["train"]["precision"]
    if precision == "auto":
        from csnln.training.precision import choose_precision

        choice = choose_precision(model, scale=scale, batch=batch, patch=patch, device=cpu)
        precision = choice.precision

    def step() -> None:
        with precision_context(precision, cpu):
            loss = (model(lr) - hr).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    step()
    start = time.perf_counter()
    for _ in range(int(steps)):
        step()
    seconds = (time.perf_counter() - start) / int(steps)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The matrix work of one step (convolutions and products, forward and backward), counted
    # after the timing so that the counter's overhead is not timed.
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "gflop": counter.get_total_flops() / 1e9,
        "precision": precision,
        "csnln": csnln.__file__,
    }


def config_precision(rev: str, config: Path) -> str:
    """``train.precision`` of ``config`` as it was at commit ``rev``."""
    import yaml

    text = subprocess.run(
        ["git", "show", f"{rev}:configs/{config.name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return yaml.safe_load(text)["train"]["precision"]


def small_rows(baseline: str, steps: int, repeat: int, variants: list[str]) -> None:
    """The table of ``--small``: each config now and at ``baseline``, side by side."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import baseline_src, head_commit, matmul_peak

    old = Path(baseline_src(baseline)).parent
    commit = head_commit()
    peaks = {precision: matmul_peak(precision) for precision in ("fp32", "bf16")}
    print(
        f"One training step of the small CPU configs: {commit} (now) vs {baseline}; "
        f"mean of {steps} steps after 2, best of {repeat} fresh processes each. "
        f"2048² matmul peak here: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s. "
        "GFLOP: the step's convolutions and matrix products, forward and backward "
        "(`torch.utils.flop_counter`); `at peak`: the seconds they would take at that peak "
        "alone, with everything else free.\n"
    )
    print(
        "| config | model | batch x LR patch | precision | before s / step | now s / step "
        "| speed-up | GFLOP / step | now GFLOP/s | % of peak | at peak s / step "
        "| before peak MB | now peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for scale in (2, 3, 4):
        config = ROOT / "configs" / f"cpu_small_x{scale}.yaml"
        best = {"before": float("inf"), "now": float("inf")}
        peak = {"before": 0.0, "now": 0.0}  # the largest of the processes
        # The model and batch of today's config for both; the precision of each side's own
        # config (the baseline's had none of `auto`).
        precisions = {"before": config_precision(baseline, config), "now": ""}
        used = {}
        for _ in range(repeat):
            for name, src in (("before", old / "src"), ("now", ROOT / "src")):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--small-child",
                        str(src),
                        str(config),
                        str(steps),
                        "",
                        precisions[name],
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                got = json.loads(out.stdout.strip().splitlines()[-1])
                assert got["csnln"].startswith(str(src)), got
                best[name] = min(best[name], got["seconds"])
                peak[name] = max(peak[name], got["peak_mb"])
                used[name] = got["precision"]
                if name == "now":
                    gflop = got["gflop"]
        import yaml

        cfg = yaml.safe_load(config.read_text())
        shown = (
            used["now"] if used["before"] == used["now"] else f"{used['before']} -> {used['now']}"
        )
        if cfg["train"]["precision"] == "auto":
            shown += " (auto)"
        print(
            f"| {config.name} | n{cfg['model']['n_feats']} d{cfg['model']['depth']} "
            f"| {cfg['data']['batch_size']} x {cfg['data']['patch_size']} "
            f"| {shown} | {best['before']:.3f} | {best['now']:.3f} "
            f"| {best['before'] / best['now']:.2f}x | {gflop:.1f} | {gflop / best['now']:.0f} "
            f"| {gflop / best['now'] / peaks[used['now']]:.0%} | {gflop / peaks[used['now']]:.3f} "
            f"| {peak['before']:.0f} | {peak['now']:.0f} |",
            flush=True,
        )
    if variants:
        print("\nThe x2 config with other LR patch x batch sizes (same LR pixels per step), now:\n")
        print("| LR patch x batch | s / step | s / step relative to 24 x 8 |")
        print("|---|---|---|")
        config = ROOT / "configs" / "cpu_small_x2.yaml"
        times = {}
        for variant in ["24x8", *variants]:
            runs = []
            for _ in range(repeat):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--small-child",
                        str(ROOT / "src"),
                        str(config),
                        str(steps),
                        variant,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
            times[variant] = min(runs)
            print(
                f"| {variant.replace('x', ' x ')} | {times[variant]:.3f} "
                f"| {times[variant] / times['24x8']:.2f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        choices=["all", "ckpt", "x4", "reference"],
        default="all",
        help="all rows; only the checkpointing rows (fp32/bf16) and the x4 check; only x4; "
        "only the reference row",
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=48, help="LR patch size")
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference row")
    parser.add_argument("--no-x4", action="store_true", help="skip the x4 fit check")
    parser.add_argument(
        "--x4-depth",
        type=int,
        default=0,
        help="measure x4 at this depth instead of extrapolating from depths 1 and 2",
    )
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--small", action="store_true", help="the small CPU configs' step")
    parser.add_argument("--baseline", default="b098e83", help="with --small: the commit to beat")
    parser.add_argument("--steps", type=int, default=20, help="with --small: steps timed")
    parser.add_argument("--repeat", type=int, default=2, help="with --small: processes per cell")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="PATCHxBATCH",
        help="with --small: also time the x2 config at this LR patch and batch (e.g. 48x2)",
    )
    parser.add_argument("--small-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small_child:
        print(json.dumps(small_step(*args.small_child)))
        return
    if args.small:
        small_rows(args.baseline, args.steps, args.repeat, args.variant)
        return
    if args.child:
        impl, scale, precision, ckpt, batch, patch, depth = args.child
        result = measure(impl, int(scale), precision, ckpt, int(batch), int(patch), int(depth))
        print(json.dumps(result))
        return

    import torch

    rows = [
        ("csnln", precision, mode)
        for precision in ("fp32", "bf16")
        for mode in ("none", "full", "selective")
    ]
    if args.only == "ckpt":
        rows = [r for r in rows if r[2] != "none"]
    elif args.only in ("x4", "reference"):
        rows = []
    with_reference = not args.no_reference and args.only in ("all", "reference")
    if with_reference:
        rows.append(("reference", "fp32", "none"))
    b, p, d = args.batch, args.patch, args.depth
    work = b * (p / 48) ** 4 * d / 12  # attention cost grows with the square of the pixels
    estimate = sum(TIME_GUESS[r] * work for r in rows)
    if not args.no_x4:
        # A x4 step costs about 12 x2 steps at the same depth: depths 1 + 2 ~ 3 x2 steps.
        depths = args.x4_depth or 3
        estimate += 1.3 * depths * TIME_GUESS[("csnln", "bf16", "full")] * work * 12 / d
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, {available_gb():.1f} GB available, load average {load()}"
    )
    print(f"x2 training step: batch {b}, LR patch {p} (HR {2 * p}), n_feats 128, depth {d},")
    print("L1 + Adam, random weights and data; one step each, first call included.")
    print(f"Estimated total time: about {estimate / 60:.0f} minutes.\n")

    if rows:
        print(
            "| implementation | precision | activation checkpointing | s / step | peak GB "
            "| speed-up vs released (148 s) | memory vs released (21 GB) |"
        )
        print("|---|---|---|---|---|---|---|")
    results = {}
    for impl, precision, ckpt in rows:
        per, const = MEMORY_GUESS[(impl, precision, ckpt)]
        need = per * b * (p / 48) ** 2 * (1 if ckpt != "none" else d / 12) + const
        name = "csnln" if impl == "csnln" else "reference (released code)"
        cells = f"| {name} | {precision} | {ckpt} |"
        if need > available_gb() - 0.5:
            print(f"{cells} not run (needs ~{need:.0f} GB) | | | |", flush=True)
            continue
        r = child(impl, 2, precision, ckpt, b, p, d)
        results[(impl, precision, ckpt)] = r
        if "error" in r:
            print(f"{cells} failed: {r['error']} | | | |", flush=True)
            continue
        speed = RELEASED_SECONDS / r["seconds"]
        print(
            f"{cells} {r['seconds']:.1f} (forward {r['forward']:.1f}) | {r['peak_gb']:.2f} "
            f"| {speed:.2f}x | {r['peak_gb'] / RELEASED_GB:.2f}x |",
            flush=True,
        )
    if results:
        before = next(iter(results.values())).get("before_gb", 0.0)
        print(f"\n(peak includes about {before:.2f} GB of Python + torch + model before the step;")
        print(f"load average now {load()})")

    best = results.get(("csnln", "bf16", "full"), {})
    if "seconds" in best and b == 16 and p == 48 and d == 12:
        ok_speed = best["seconds"] <= RELEASED_SECONDS / TARGET_SPEEDUP
        ok_mem = best["peak_gb"] < TARGET_GB
        print(
            f"\nTargets, bf16 + full checkpointing: >= {TARGET_SPEEDUP}x faster than 148 s "
            f"(<= {RELEASED_SECONDS / TARGET_SPEEDUP:.0f} s): {'met' if ok_speed else 'NOT met'} "
            f"({best['seconds']:.1f} s); < {TARGET_GB:.0f} GB: "
            f"{'met' if ok_mem else 'NOT met'} ({best['peak_gb']:.2f} GB)"
        )
    ref = results.get(("reference", "fp32", "none"), {})
    if "seconds" in ref and "seconds" in best:
        print(
            f"Measured here in this run: reference {ref['seconds']:.1f} s / "
            f"{ref['peak_gb']:.2f} GB; bf16 + checkpointing is "
            f"{ref['seconds'] / best['seconds']:.2f}x faster and uses "
            f"{ref['peak_gb'] / best['peak_gb']:.1f}x less memory."
        )

    if args.no_x4 or args.only == "reference":
        return
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(
        f"\n## x4 at the paper's setting (batch {b}, LR patch {p}, HR {4 * p}), "
        "bf16 + checkpointing\n"
    )
    # glibc's default malloc keeps freed heap memory (its mmap threshold rises as big blocks are
    # freed), so the peak RSS of a long run grows with fragmentation, not with live tensors.
    # With a fixed threshold, freed memory goes back to the system and the peak RSS tracks the
    # live memory, which is linear in depth under checkpointing.
    env = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    if args.x4_depth:
        r = child("csnln", 4, "bf16", "full", b, p, args.x4_depth, env=env)
        if "error" in r:
            print(f"failed: {r['error']}")
            return
        peak, seconds, how = r["peak_gb"], r["seconds"], f"measured at depth {args.x4_depth}"
        print(f"depth {args.x4_depth}: {seconds:.1f} s, peak {peak:.2f} GB")
    else:
        one = child("csnln", 4, "bf16", "full", b, p, 1, env=env)
        two = child("csnln", 4, "bf16", "full", b, p, 2, env=env)
        if "error" in one or "error" in two:
            print(f"failed: {one.get('error') or two.get('error')}")
            return
        per_step = max(0.0, two["peak_gb"] - one["peak_gb"])
        peak = one["peak_gb"] + (d - 1) * per_step
        seconds = one["seconds"] + (d - 1) * max(0.0, two["seconds"] - one["seconds"])
        how = "extrapolated from depths 1 and 2"
        print("| depth | s / step | peak GB |")
        print("|---|---|---|")
        print(f"| 1 (measured) | {one['seconds']:.1f} | {one['peak_gb']:.2f} |")
        print(f"| 2 (measured) | {two['seconds']:.1f} | {two['peak_gb']:.2f} |")
        print(f"| {d} (extrapolated) | ~{seconds:.0f} | ~{peak:.2f} |")
    verdict = "fits" if peak < total else "does NOT fit"
    print(
        f"\nx4, batch {b}, LR patch {p}, depth {d}, bf16 + checkpointing: peak ~{peak:.1f} GB, "
        f"~{seconds:.0f} s per step ({how}; MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}): "
        f"{verdict} in this machine's {total:.0f} GB."
    )


if __name__ == "__main__":
    main()
