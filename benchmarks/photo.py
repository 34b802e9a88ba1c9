"""The user's job, end to end: `csnln upscale` on photographs with the bundled model, today's
plan against the one before, side by side in one run.

Every row runs ``csnln.upscaling.upscale_file`` (what ``csnln upscale`` calls per file: read,
plan, tiles, blend, write) in a fresh process, so that peak memory is that of one job. Plans:

* ``before``: ``csnln upscale`` as it was at ``--baseline`` (default b098e83, before this
  work: the package of that commit, extracted to a temporary folder, with its default plan:
  LR tiles of 64 overlapping by 16, one per model call);
* ``now``: the package as it is, with its default plan: the tile plan measured for the model
  (``csnln.inference.MEASURED_PLANS[model]``, chosen by ``benchmarks/tile_plan.py``), with its
  calls running two at once on a CPU of two or more threads (``csnln.inference.CPU_STREAMS``);
* ``now, 1 stream``: the same plan one call at a time (``--tile-streams 1``), to show what the
  concurrent calls add (the result is the same);
* ``windowed``: ``now`` with the attentions confined to windows of ``--window`` LR pixels
  inside each tile (``--attention-window``; at x3 the multiple of 3 below it): the faster path
  that is not the authors' computation, with its PSNR next to today's;
* ``onnx``: the model exported by ``csnln export`` (its tile plan, dynamic batch), run by
  onnxruntime's CPU provider through the same tiler (``csnln.export.OnnxModel``), fp32 only;
  exported once per scale before the timings (``--plans before now onnx``).

Both in fp32 and bf16; the default precision of ``csnln upscale`` was fp32 before and is
``auto`` (bf16 on this CPU) now, so the headline ratio is ``before fp32`` / ``now bf16``. A ``before`` row that
would take longer than ``--budget`` seconds is timed on its first tiles (all tiles of a plan
have one size, hence one cost) and extrapolated to all of them: such rows say so, and they
leave out writing the result, so they understate the time before (the speed-ups they give are
conservative).

Per row: seconds, seconds per output megapixel, model calls, GFLOP (``torch.utils.flop_counter``
on one call, times the calls), GFLOP/s and its share of this machine's matmul peak (a 2048^2
matmul in the same precision, measured in this run), peak resident memory. Then PSNR/SSIM of
the same plans on Set5, Set14, B100 (every ``--b100-every``-th image) and SunHays80 (every
``--sun-every``-th), as ``csnln eval`` measures.

    python benchmarks/photo.py                    # Kodak 1, a 1-Mpx photo; x2 x3 x4
    python benchmarks/photo.py --scales 2 --kodak 24 --budget 1e9
    python benchmarks/photo.py --scales 3 4 --plans before now   # without the 1-stream rows
    python benchmarks/photo.py --baseline 51bdec9 --plans before now windowed --precisions fp32
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import baseline_src, cpu_description, head_commit, matmul_peak  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
KODAK = SHARED / "train" / "Kodak24"
#: A 1-Mpx photograph (1228 x 816) of the training folder Wiki49.
PHOTO = SHARED / "train" / "Wiki49" / "005.webp"
SET5 = SHARED / "benchmark" / "Set5" / "HR"
B100 = SHARED / "benchmark" / "B100" / "HR"
SET14 = SHARED / "benchmark" / "Set14" / "HR"
SUNHAYS = SHARED / "benchmark" / "SunHays80" / "HR"


PLANS = ("before", "one-stream", "now", "windowed", "onnx")
SETS = ("Set5", "Set14", "B100", "SunHays80")


def window_at(window: int, scale: int) -> int:
    """``--window`` as the scale takes it: a multiple of 3 at x3, of 2 otherwise."""
    m = 3 if scale == 3 else 2
    return window // m * m


class _Stop(Exception):
    pass


def _cell(spec: dict) -> dict:
    """One row, in this (fresh) process."""
    if spec["plan"] == "before":  # the package as it was
        sys.path.insert(0, spec["baseline_src"])
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import csnln
    from csnln.allocator import keep_freed_memory
    from csnln.inference import precision_context
    from csnln.upscaling import upscale_file
    from csnln.zoo import load_model

    if spec["plan"] == "before":
        assert csnln.__file__.startswith(spec["baseline_src"]), csnln.__file__
    keep_freed_memory()  # as csnln upscale does
    model = load_model(spec["model"], spec["scale"])
    counted = model  # whose FLOPs are counted (onnxruntime's are the same graph's)
    if spec["plan"] == "onnx":
        from csnln.export import OnnxModel

        model = OnnxModel(spec["onnx"])
    window = {}
    used_window = None
    if spec["plan"] == "windowed":
        window = {"attention_window": spec["window"]}
        counted.set_attention_window(spec["window"])  # this process's own copy
        used_window = spec["window"]
    elif spec["plan"] != "before":
        # the run's default: the window the weights were trained in (None: whole tiles)
        from csnln.inference.profiles import attention_window_for

        used_window = attention_window_for(counted.descriptor, None)
        counted.set_attention_window(used_window)
    seen: dict = {}
    ticks = [0]
    limit = spec.get("max_tiles")

    def on_tile() -> None:
        ticks[0] += 1
        if ticks[0] == 1:
            seen["first"] = time.perf_counter()
        if limit is not None and ticks[0] >= limit:
            raise _Stop

    out = Path(tempfile.mkdtemp()) / "out.png"
    start = time.perf_counter()
    import inspect

    if "on_plan" not in inspect.signature(upscale_file).parameters:  # an old package's API
        hooks = {"on_start": lambda calls: seen.update(calls=calls)}
    else:
        hooks = {"on_plan": lambda plan: seen.update(plan=plan, calls=plan.calls)}
    try:
        upscale_file(
            spec["image"],
            out,
            spec["scale"],
            model,
            precision=spec["precision"],
            device="cpu",
            on_tile=on_tile,
            **hooks,
            **({"tile_streams": 1} if spec["plan"] == "one-stream" else {}),
            **window,
        )
        seconds = time.perf_counter() - start
        extrapolated = False
    except _Stop:
        elapsed = time.perf_counter() - start
        seconds = elapsed / ticks[0] * seen["calls"]
        extrapolated = True
    # the before plan: tiles of 64 overlapping by 16, one per call (whole up to 96x96 LR)
    plan = seen.get("plan") or SimpleNamespace(
        calls=seen["calls"],
        tile=64 if seen["calls"] > 1 else None,
        overlap=16,
        batch=1,
        streams=1,
        precision=spec["precision"],
    )
    # FLOPs of one model call of the plan's shape, times the calls.
    from PIL import Image

    with Image.open(spec["image"]) as img:
        w, h = img.size
    tile_h = min(plan.tile or h, h)
    tile_w = min(plan.tile or w, w)
    calls = -(-plan.calls // plan.batch)
    piece = torch.rand(plan.batch, 3, tile_h, tile_w)
    with (
        torch.no_grad(),
        precision_context(plan.precision, torch.device("cpu")),
        FlopCounterMode(display=False) as counter,
    ):
        counted(piece)
    flops = counter.get_total_flops() * calls
    if plan.calls % plan.batch:  # the last call holds fewer tiles
        flops = counter.get_total_flops() * (plan.calls / plan.batch)
    return {
        **spec,
        "seconds": seconds,
        "used_window": used_window,
        "extrapolated_from": ticks[0] if extrapolated else None,
        "tiles": plan.calls,
        "calls": calls,
        "tile": plan.tile,
        "overlap": plan.overlap,
        "batch": plan.batch,
        "streams": plan.streams,
        "gflop": flops / 1e9,
        "out_mpx": spec["scale"] ** 2 * w * h / 1e6,
        "size": f"{w}x{h}",
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _quality(spec: dict) -> dict:
    """PSNR/SSIM of one plan on the sets (the subsets of B100 and SunHays80), here."""
    if spec["plan"] == "before":
        sys.path.insert(0, spec["baseline_src"])
    from csnln.allocator import keep_freed_memory
    from csnln.evaluation import evaluate
    from csnln.zoo import load_model

    keep_freed_memory()
    model = load_model(spec["model"], spec["scale"])
    if spec["plan"] == "onnx":
        from csnln.export import OnnxModel

        model = OnnxModel(spec["onnx"])
    window = {"attention_window": spec["window"]} if spec["plan"] == "windowed" else {}
    out = {}
    for name, folder in spec["sets"].items():
        start = time.perf_counter()
        (result,) = evaluate(
            model,
            folder,
            spec["scale"],
            precision=spec["precision"],
            device="cpu",
            progress=False,
            **window,
        )
        out[name] = (result.psnr, result.ssim, time.perf_counter() - start)
    return {**spec, **out}


def _spawn(mode: str, spec: dict) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, mode, json.dumps(spec)], capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] in ("--cell", "--quality", "--peak"):
        spec = json.loads(sys.argv[2])
        if sys.argv[1] == "--cell":
            print(json.dumps(_cell(spec)))
        elif sys.argv[1] == "--quality":
            print(json.dumps(_quality(spec)))
        else:
            print(json.dumps({p: matmul_peak(p) for p in spec["precisions"]}))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + __doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", default="small", help="the bundled model name to time (default: small)"
    )
    parser.add_argument(
        "--scales", type=int, nargs="+", default=[2, 3, 4], help="scales to run (default: 2 3 4)"
    )
    parser.add_argument("--kodak", type=int, default=1, help="first N Kodak images (default 1)")
    parser.add_argument(
        "--no-photo", action="store_true", help="leave out the 1-Mpx photo (Wiki49/005.webp)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=300,
        help="seconds a row may take before it is timed on its first tiles and multiplied out "
        "(default 300)",
    )
    parser.add_argument(
        "--b100-every",
        type=int,
        default=10,
        help="quality on every N-th B100 image (default 10)",
    )
    parser.add_argument(
        "--sun-every",
        type=int,
        default=10,
        help="quality on every N-th SunHays80 image (default 10)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=16,
        help="the windowed plan's attention window in LR pixels (default 16; at x3 the "
        "multiple of 3 below it)",
    )
    parser.add_argument(
        "--no-quality", action="store_true", help="time only: leave out the PSNR/SSIM tables"
    )
    parser.add_argument(
        "--baseline", default="b098e83", help="the commit of the before rows (default b098e83)"
    )
    parser.add_argument(
        "--plans",
        nargs="+",
        choices=PLANS,
        default=["before", "one-stream", "now"],
        help="which plans to time (default: before one-stream now; onnx needs the onnx extra; "
        "`before` is the ratios' reference)",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=("fp32", "bf16"),
        default=["fp32", "bf16"],
        help="which precisions to time (default: both; fp32 is the ratios' reference)",
    )
    args = parser.parse_args()
    if "before" not in args.plans:
        parser.error("--plans needs `before`: the speed-ups are against it")
    if "fp32" not in args.precisions:
        parser.error("--precisions needs fp32: the speed-ups are against before's fp32")
    args.precisions = [p for p in ("fp32", "bf16") if p in args.precisions]  # fp32 first
    args.plans = [plan for plan in PLANS if plan in args.plans]  # before first
    if not KODAK.is_dir():
        print(f"{KODAK} not found: this benchmark needs ../shared", file=sys.stderr)
        return 2
    images = sorted(KODAK.glob("*.png"))[: args.kodak] + ([] if args.no_photo else [PHOTO])
    commit = head_commit()
    baseline = baseline_src(args.baseline)
    # only the precisions timed: a bf16 product without AVX512-BF16 takes minutes
    peak = _spawn("--peak", {"precisions": args.precisions})
    print(
        f"# `csnln upscale` on photographs — `python benchmarks/photo.py "
        f"{' '.join(sys.argv[1:])}`".rstrip()
        + f"\n\ncommit {commit} (before: {args.baseline}), {time.strftime('%Y-%m-%d %H:%M')}; "
        f"model `{args.model}`; CPU: {cpu_description()}; "
        "2048² matmul peak here: "
        + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peak.items())
        + ".\n",
        flush=True,
    )
    print(
        "| image | scale | plan | precision | tiles (calls) | s | s / out Mpx | GFLOP | GFLOP/s "
        "| % of peak | peak MB | speed-up vs before fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    exported: dict[int, str] = {}
    if "onnx" in args.plans:
        from csnln.export import export_onnx

        folder = Path(tempfile.mkdtemp(prefix="onnx_"))
        for scale in args.scales:
            path = folder / f"{args.model}_x{scale}.onnx"
            exported[scale] = str(export_onnx(args.model, path, scale=scale).path)
    for image in images:
        for scale in args.scales:
            rows = []
            for plan in args.plans:
                for precision in args.precisions:
                    if plan == "onnx" and precision != "fp32":
                        continue
                    spec = {
                        "model": args.model,
                        "scale": scale,
                        "image": str(image),
                        "plan": plan,
                        "precision": precision,
                        "baseline_src": baseline,
                        "onnx": exported.get(scale),
                        "window": window_at(args.window, scale),
                    }
                    if plan == "before":
                        # Time a few tiles first; extrapolate when the whole would be long.
                        probe = _spawn("--cell", {**spec, "max_tiles": 4})
                        if probe["seconds"] > args.budget:
                            spec["max_tiles"] = max(4, min(16, probe["tiles"] // 8))
                    rows.append(_spawn("--cell", spec))
            base = rows[0]["seconds"]
            for r in rows:
                note = (
                    f" (timed on {r['extrapolated_from']} tiles)" if r["extrapolated_from"] else ""
                )
                gflops = r["gflop"] / r["seconds"]
                name = {
                    "one-stream": "now, 1 stream",
                    "onnx": "onnxruntime",
                    "windowed": f"windowed {r['window']}",
                }.get(r["plan"], r["plan"])
                at_once = f", {r['streams']} at once" if r["streams"] > 1 else ""
                if r["plan"] != "windowed" and r.get("used_window"):
                    at_once += f", attention window {r['used_window']}"  # the weights' own
                print(
                    f"| {Path(r['image']).name} {r['size']} | x{scale} | {name} "
                    f"(tile {r['tile']}/{r['overlap']}, {r['batch']}/call{at_once}) "
                    f"| {r['precision']} "
                    f"| {r['tiles']} ({r['calls']}) | {r['seconds']:.1f}{note} "
                    f"| {r['seconds'] / r['out_mpx']:.2f} | {r['gflop']:.0f} | {gflops:.0f} "
                    f"| {100 * gflops / peak[r['precision']]:.0f}% | {r['peak_mb']:.0f} "
                    f"| {base / r['seconds']:.2f}x |",
                    flush=True,
                )
    if args.no_quality:
        return 0
    sets = {"Set5": str(SET5), "Set14": str(SET14)}
    subsets = {"B100": (B100, args.b100_every), "SunHays80": (SUNHAYS, args.sun_every)}
    for name, (folder, every) in subsets.items():
        subset = Path(tempfile.mkdtemp(prefix=f"{name}_"))
        for path in sorted(folder.glob("*"))[::every]:
            (subset / path.name).symlink_to(path)
        sets[name] = str(subset)
    print(
        f"\nQuality of the same plans (`csnln eval`'s protocol; B100: every {args.b100_every}th "
        f"image, SunHays80: every {args.sun_every}th), PSNR dB / SSIM on Y:\n"
    )
    print("| scale | plan | precision | " + " | ".join(SETS) + " | s |")
    print("|---|---|---|" + "---|" * len(SETS) + "---|")
    for scale in args.scales:
        runs = [("before", "fp32")] + [("now", p) for p in args.precisions]
        runs += [("windowed", "fp32")] if "windowed" in args.plans else []
        runs += [("onnx", "fp32")] if "onnx" in args.plans else []
        for plan, precision in runs:
            q = _spawn(
                "--quality",
                {
                    "model": args.model,
                    "scale": scale,
                    "plan": plan,
                    "precision": precision,
                    "sets": sets,
                    "baseline_src": baseline,
                    "onnx": exported.get(scale),
                    "window": window_at(args.window, scale),
                },
            )
            name = f"windowed {window_at(args.window, scale)}" if plan == "windowed" else plan
            cells = " | ".join(f"{q[s][0]:.3f} / {q[s][1]:.4f}" for s in SETS)
            seconds = sum(q[s][2] for s in SETS)
            print(f"| x{scale} | {name} | {precision} | {cells} | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
