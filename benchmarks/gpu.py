"""Speed, memory and precision of csnln on a CUDA GPU (needs one: ``python benchmarks/gpu.py``).

Prints Markdown tables, side by side in one run:

1. **Whole-image inference**, the paper-size network (n_feats 128, depth 12; the authors'
   format with random weights, ``tests/reference.py`` after ``torch.manual_seed(0)``), batch
   1, at x2/x3/x4 and LR sizes up to 384x256 (a 768x512 photo at x2): median seconds of
   ``--repeat`` calls after one warm-up call (CUDA synchronised), and the peak CUDA memory
   the call allocated beyond the model (``torch.cuda.max_memory_allocated``), next to what
   ``csnln.inference.estimate_memory`` (the memory model ``--max-memory`` plans with) says.
   fp32 is plain float32 (TF32 off, as ``csnln`` runs it); bf16 and fp16 are autocast.
2. **Set5 x2, whole images, the papers' protocol** (Y channel, ``csnln eval``): PSNR in
   fp32 and the change bf16 / fp16 cause, for the bundled ``small`` model and for the
   random paper-size model (with random weights only the *change* means anything).
3. **One training step** at the paper's x2 setting (batch 16, LR patch 48, HR 96, L1, Adam)
   and the x4 setting (HR 192): median seconds of 3 steps after one warm-up step, peak CUDA
   memory, for fp32 (PyTorch's default TF32 convolutions), bf16 and fp16 (GradScaler)
   autocast, with activation checkpointing off and ``full``.

Sections stop starting new rows once ``--budget`` seconds have passed (rows not run are
listed). ``--json PATH`` also writes every figure as JSON.

    python benchmarks/gpu.py                  # about 3 minutes on an H200
    python benchmarks/gpu.py --only inference --repeat 5
    python benchmarks/gpu.py --only inference --scales 3 4 --repeat 1
    python benchmarks/gpu.py --only profile   # where one SEM step's GPU time goes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
SET5 = ROOT.parent / "shared" / "data" / "benchmark" / "Set5"

import csnln  # noqa: E402
from csnln.inference import estimate_memory, precision_context  # noqa: E402

CUDA = torch.device("cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
#: (scale, LR height, LR width) of the inference table.
SIZES = [
    (2, 64, 64),
    (2, 128, 128),
    (2, 192, 256),  # a 512x384 image at x2
    (2, 256, 256),  # Set5 "baby" at x2
    (2, 256, 384),  # a 768x512 photo (Kodak) at x2
    (3, 128, 128),
    (3, 170, 256),  # a 768x512 photo at x3
    (4, 128, 128),
    (4, 128, 192),  # a 768x512 photo at x4
]


def paper_model(scale: int, depth: int = 12) -> csnln.CSNLN:
    from reference import ReferenceCSNLN

    torch.manual_seed(0)
    return csnln.load_official(ReferenceCSNLN(scale, 128, depth).state_dict(), scale)


def timed(fn, repeat: int) -> tuple[float, int]:
    """Median seconds of ``repeat`` calls after one warm-up; peak bytes allocated above start."""
    fn()
    torch.cuda.synchronize()
    times = []
    torch.cuda.reset_peak_memory_stats()
    start_bytes = torch.cuda.memory_allocated()
    for _ in range(repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), torch.cuda.max_memory_allocated() - start_bytes


def inference_table(args, deadline: float, results: dict) -> None:
    print("\n## Whole-image inference, paper-size model (F 128, D 12), batch 1\n")
    print("| scale | LR | HR | precision | seconds | peak GB | memory model GB | vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    rows, skipped = [], []
    models: dict[int, csnln.CSNLN] = {}
    for scale, h, w in SIZES:
        if scale not in args.scales:
            continue
        if scale not in models:
            models[scale] = paper_model(scale).to(CUDA).eval()
        model = models[scale]
        lr = torch.rand(1, 3, h, w, device=CUDA)
        base = None
        for precision in PRECISIONS:
            label = f"x{scale} {h}x{w} {precision}"
            if time.monotonic() > deadline:
                skipped.append(label)
                continue

            def call(model=model, lr=lr, precision=precision):
                with torch.no_grad(), precision_context(precision, CUDA):
                    return model(lr)

            try:
                seconds, peak = timed(call, args.repeat)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                rows.append(dict(scale=scale, h=h, w=w, precision=precision, seconds=None))
                print(f"| x{scale} | {w}x{h} | | {precision} | out of memory | | | |")
                continue
            base = seconds if precision == "fp32" else base
            estimate = estimate_memory(model, h, w) / 1e9
            ratio = f"{base / seconds:.2f}x" if base else ""
            print(
                f"| x{scale} | {w}x{h} | {scale * w}x{scale * h} | {precision} | {seconds:.3f} "
                f"| {peak / 1e9:.2f} | {estimate:.2f} | {ratio} |",
                flush=True,
            )
            rows.append(
                dict(scale=scale, h=h, w=w, precision=precision, seconds=seconds, peak=peak)
            )
        del lr
    results["inference"] = {"rows": rows, "skipped": skipped}
    if skipped:
        print(f"\nnot run (over --budget): {', '.join(skipped)}")


def psnr_table(args, deadline: float, results: dict) -> None:
    from csnln.evaluation import evaluate
    from csnln.zoo import bundled_models

    if not SET5.is_dir():
        print(f"\n(Set5 not found at {SET5}: PSNR table skipped)")
        return
    print("\n## Set5 x2, whole images (PSNR dB on Y, the papers' protocol)\n")
    print("| model | fp32 | bf16 | change | fp16 | change | seconds/image fp32 / bf16 / fp16 |")
    print("|---|---|---|---|---|---|---|")
    models = {"random paper-size (F 128, D 12)": paper_model(2)}
    if 2 in bundled_models().get("small", {}):
        models = {"bundled small": "small", **models}
    rows = []
    for name, model in models.items():
        if time.monotonic() > deadline:
            print(f"| {name} | not run (over --budget) |")
            continue
        got = {}
        for precision in PRECISIONS:
            (result,) = evaluate(
                model, SET5, 2, tile=None, precision=precision, device="cuda", progress=False
            )
            got[precision] = result
        fp32 = got["fp32"].psnr
        times = " / ".join(f"{got[p].seconds_per_image:.2f}" for p in PRECISIONS)
        print(
            f"| {name} | {fp32:.4f} | {got['bf16'].psnr:.4f} | {got['bf16'].psnr - fp32:+.4f} "
            f"| {got['fp16'].psnr:.4f} | {got['fp16'].psnr - fp32:+.4f} | {times} |",
            flush=True,
        )
        rows.append({"model": name, **{p: got[p].psnr for p in PRECISIONS}})
    results["psnr"] = rows


def train_table(args, deadline: float, results: dict) -> None:
    import torch.nn.functional as F

    print("\n## One training step (batch 16, LR patch 48, L1, Adam), median of 3 after 1\n")
    print("| setting | precision | checkpointing | seconds/step | peak GB |")
    print("|---|---|---|---|---|")
    rows, skipped = [], []
    for scale in [s for s in (2, 4) if s in args.scales]:
        for precision in PRECISIONS:
            for ckpt in ("none", "full"):
                label = f"x{scale} {precision} {ckpt}"
                if time.monotonic() > deadline:
                    skipped.append(label)
                    continue
                model = paper_model(scale).to(CUDA).train()
                model.set_gradient_checkpointing(ckpt)
                params = [p for p in model.parameters() if p.requires_grad]
                optimizer = torch.optim.Adam(params, lr=1e-4)
                scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
                lr = torch.rand(16, 3, 48, 48, device=CUDA)
                hr = torch.rand(16, 3, 48 * scale, 48 * scale, device=CUDA)

                def step(model=model, optimizer=optimizer, scaler=scaler, lr=lr, hr=hr,
                         precision=precision):  # fmt: skip
                    if precision == "fp32":
                        sr = model(lr)
                    else:
                        with precision_context(precision, CUDA):
                            sr = model(lr)
                    loss = F.l1_loss(sr.float(), hr)
                    if scaler is None:
                        loss.backward()
                        optimizer.step()
                    else:
                        scaler.scale(loss).backward()
                        scaler.step(optimizer)
                        scaler.update()
                    optimizer.zero_grad(set_to_none=True)

                try:
                    seconds, peak = timed(step, 3)
                    peak += torch.cuda.memory_allocated()  # weights, Adam state included
                except torch.OutOfMemoryError:
                    seconds, peak = float("nan"), -1
                name = f"x{scale} paper (HR {48 * scale})"
                shown = f"{seconds:.3f}" if peak >= 0 else "out of memory"
                print(f"| {name} | {precision} | {ckpt} | {shown} | {peak / 1e9:.2f} |", flush=True)
                rows.append(
                    dict(scale=scale, precision=precision, ckpt=ckpt, seconds=seconds, peak=peak)
                )
                del model, optimizer, scaler, lr, hr, step
                torch.cuda.empty_cache()
    results["train"] = {"rows": rows, "skipped": skipped}
    if skipped:
        print(f"\nnot run (over --budget): {', '.join(skipped)}")


def profile_table(args, deadline: float, results: dict) -> None:
    """Where the time of one SEM step goes: x2, LR 256x192, depth 1, by self CUDA time."""
    from torch.profiler import ProfilerActivity, profile

    model = paper_model(2, depth=1).to(CUDA).eval()
    lr = torch.rand(1, 3, 192, 256, device=CUDA)
    for precision in ("fp32", "bf16"):
        if time.monotonic() > deadline:
            print(f"\n(profile {precision}: not run, over --budget)")
            continue

        def call(precision=precision):
            with torch.no_grad(), precision_context(precision, CUDA):
                return model(lr)

        call()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
        averages = prof.key_averages()
        print(f"\n## Profile: x2, LR 256x192, one SEM step (depth 1), {precision}\n")
        for key in ("self_device_time_total", "self_cuda_time_total"):
            try:
                print(averages.table(sort_by=key, row_limit=14, max_name_column_width=50))
                break
            except (AttributeError, KeyError, ValueError):
                continue
        results.setdefault("profile", {})[precision] = str(averages)[:20000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        choices=["psnr", "inference", "train", "profile"],
        action="append",
        help="run only these sections (repeatable; default: psnr, inference, train)",
    )
    parser.add_argument(
        "--scales",
        type=int,
        nargs="+",
        default=[2, 3, 4],
        help="scales of the inference and training tables (default: 2 3 4)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed inference calls (median)")
    parser.add_argument("--budget", type=float, default=600, help="seconds; then stop starting")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA GPU; PyTorch sees none here")
    start = time.monotonic()
    deadline = start + args.budget
    props = torch.cuda.get_device_properties(0)
    print(
        f"# csnln on {props.name} ({props.total_memory / 2**30:.0f} GiB), torch "
        f"{torch.__version__}, CUDA {torch.version.cuda}"
    )
    results: dict = {"device": props.name, "torch": torch.__version__}
    tables = {"psnr": psnr_table, "inference": inference_table, "train": train_table,
              "profile": profile_table}  # fmt: skip
    chosen = [name for name in tables if name in (args.only or ["psnr", "inference", "train"])]
    for i, name in enumerate(chosen):
        # Each section gets its share of the time left, so one cannot starve the next.
        share = (deadline - time.monotonic()) / (len(chosen) - i)
        tables[name](args, time.monotonic() + share, results)
    print(f"\n{time.monotonic() - start:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
