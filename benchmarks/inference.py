"""Speed, memory and bf16 accuracy of ``csnln upscale`` inference on this machine.

Prints Markdown tables, side by side in one run:

1. seconds and peak memory per image for x2 and x4 at LR 48x48 and 96x96: the whole image at
   once vs overlapping tiles (tile 48, overlap 8, blended), float32 vs bfloat16 (autocast);
   and x2 at 192x192 as ``csnln upscale`` runs it by default on a CPU (``tile="auto"``: tiles
   of 64 overlapping by 16), also with glibc's malloc defaults (every other row runs with
   ``csnln.allocator.keep_freed_memory()``, as ``csnln upscale`` does).
   Each configuration runs in a fresh subprocess: build the model, one small warm-up call,
   then the fastest of ``--repeat`` timed calls of :class:`csnln.inference.Upscaler` on a
   random image (tiling and blending included), wall-clock and CPU time; peak memory is the
   peak RSS (``getrusage``), Python, torch and the model included.
2. the PSNR change bfloat16 causes on Set5 x2: for each image, the HR centre crop 96x96,
   LR = MATLAB bicubic x1/2 of that crop rounded to uint8 (48x48, run whole: one model call),
   output quantised to uint8, PSNR on Y with 2 pixels cropped at each border, fp32 vs bf16;
   plus the PSNR of the bf16 output against the fp32 output.

Model: an authors'-format checkpoint of random weights (``tests/reference.py``
``ReferenceCSNLN(scale, 128, 12)`` after ``torch.manual_seed(0)``, loaded with
``csnln.load_official``) until trained weights exist; pass them with ``--weights-x2`` /
``--weights-x4`` (anything ``--model`` takes). With random weights the PSNR against HR is
meaningless as quality; the *change* bf16 causes is what is measured.

    python benchmarks/inference.py          # about 12-15 minutes on 2 cores
    python benchmarks/inference.py --full   # + x4 at 96x96 and x2 at 128x128 (much longer)
    python benchmarks/inference.py --quick  # x2 at 48x48 and one Set5 image (2-3 minutes)
    python benchmarks/inference.py --psnr-only --weights-x2 runs/x/best.safetensors
    python benchmarks/inference.py --sizes 2x192 --no-psnr   # one row of the speed table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SET5 = ROOT.parent / "shared" / "data" / "benchmark" / "Set5"
TILE, OVERLAP = 48, 8


def build_model(scale: int, weights: str | None, depth: int):
    """The model: given weights, or the authors' network with random weights (seed 0)."""
    import torch

    import csnln

    if weights:
        from csnln.zoo import load_model

        return load_model(weights, scale).eval()
    sys.path.insert(0, str(ROOT / "tests"))
    from reference import ReferenceCSNLN

    torch.manual_seed(0)
    reference = ReferenceCSNLN(scale, 128, depth)
    return csnln.load_official(reference.state_dict(), scale)


def warm_up(model, precision: str) -> None:
    """One cheap call (a single SEM step on 16x16) so one-time setup is not timed."""
    import torch

    from csnln.inference import precision_context

    depth = getattr(model, "depth", None)
    if depth is not None:
        model.depth = 1  # the forward loops over `depth` steps; one is enough to warm up
    try:
        with torch.no_grad(), precision_context(precision, torch.device("cpu")):
            model(torch.rand(1, 3, 16, 16))
    finally:
        if depth is not None:
            model.depth = depth


def measure_speed(config: dict) -> dict:
    """Child process: seconds and peak RSS of one Upscaler call."""
    import torch

    from csnln.allocator import keep_freed_memory

    if config["mode"] != "default, glibc malloc defaults":
        keep_freed_memory()  # as `csnln upscale` and `csnln eval` do
    from csnln.inference import Upscaler

    model = build_model(config["scale"], config["weights"], config["depth"])
    warm_up(model, config["precision"])
    if config["mode"].startswith("default"):
        upscaler = Upscaler(model, precision=config["precision"], device="cpu")
    else:
        tile = TILE if config["mode"] == "tiled" else None
        upscaler = Upscaler(
            model, tile=tile, tile_overlap=OVERLAP, precision=config["precision"], device="cpu"
        )
    torch.manual_seed(1)
    size = config["size"]
    x = torch.rand(1, 3, size, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = cpu = float("inf")
    for _ in range(config["repeat"]):  # the fastest call: the least disturbed by other jobs
        start, cpu_start = time.perf_counter(), time.process_time()
        out = upscaler(x)
        elapsed = time.perf_counter() - start
        if elapsed < seconds:
            seconds, cpu = elapsed, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert out.shape[-1] == config["scale"] * size
    return {
        "seconds": seconds,
        "cpu": cpu,
        "peak": peak,
        "before": before,
        "tiles": upscaler.tiles_per_image(size, size),
    }


def measure_psnr(config: dict) -> dict:
    """Child process: PSNR (Y, crop 2) of fp32 and bf16 outputs on Set5 centre crops."""
    import torch

    from csnln.data.imresize import imresize, modcrop
    from csnln.data.protocol import load_rgb, quantize, to_uint8_matlab
    from csnln.inference import Upscaler
    from csnln.metrics import psnr

    scale, crop = 2, 96
    model = build_model(scale, config["weights"], config["depth"])
    warm_up(model, "bf16")
    runs = {p: Upscaler(model, tile=None, precision=p, device="cpu") for p in ("fp32", "bf16")}
    rows = []
    images = sorted((SET5 / "HR").glob("*.png"))[: config["images"]]
    for path in images:
        hr = modcrop(load_rgb(path), scale)
        top, left = (hr.shape[1] - crop) // 2, (hr.shape[2] - crop) // 2
        hr = hr[:, top : top + crop, left : left + crop]
        lr = to_uint8_matlab(imresize(hr.to(torch.float64), 1 / scale))
        x = lr.to(torch.float32).div(255)[None]
        out = {p: quantize(run(x)[0]) for p, run in runs.items()}
        rows.append(
            {
                "name": path.stem,
                "fp32": psnr(out["fp32"], hr, crop=scale),
                "bf16": psnr(out["bf16"], hr, crop=scale),
                "between": psnr(out["bf16"], out["fp32"], crop=scale),
                "max_diff": int((out["bf16"].int() - out["fp32"].int()).abs().max()),
            }
        )
    return {"rows": rows}


def child(kind: str, config: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, json.dumps(config)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["failed"]
        return {"error": lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="x2 at 48x48 and one Set5 image")
    group.add_argument("--full", action="store_true", help="also x4 at 96x96 and x2 at 128x128")
    group.add_argument(
        "--psnr-only", action="store_true", help="only the bf16 PSNR change on Set5 x2"
    )
    parser.add_argument("--weights-x2", metavar="MODEL", help="x2 weights (default: random)")
    parser.add_argument("--weights-x4", metavar="MODEL", help="x4 weights (default: random)")
    parser.add_argument("--depth", type=int, default=12, help="SEM steps of the random model")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed calls per cell; the fastest is shown"
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        metavar="SxN",
        help="only these rows of the speed table, e.g. 2x192 2x96 (scale x LR size)",
    )
    parser.add_argument("--no-psnr", action="store_true", help="skip the bf16 PSNR table")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, config = args.child[0], json.loads(args.child[1])
        result = measure_speed(config) if kind == "speed" else measure_psnr(config)
        print(json.dumps(result))
        return

    import torch

    weights = {2: args.weights_x2, 4: args.weights_x4}
    source = {
        s: (weights[s] or f"random weights, authors' format, n_feats 128, depth {args.depth}")
        for s in (2, 4)
    }
    print(
        f"torch {torch.__version__} on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; batch 1"
    )
    print(f"x2 model: {source[2]}; x4 model: {source[4]}")
    print(f"load average at start (other jobs share these cores): {os.getloadavg()[0]:.1f}\n")

    sizes = [(2, 48)] if args.quick else [(2, 48), (2, 96), (4, 48), (2, 192)]
    if args.full:
        sizes += [(4, 96), (2, 128)]
    if args.sizes:
        sizes = [(int(a), int(b)) for a, b in (text.lower().split("x") for text in args.sizes)]
    started = time.perf_counter()
    if not args.psnr_only:
        speed_table(sizes, weights, args.depth, args.repeat)
    if not args.no_psnr:
        psnr_table(weights[2], args.depth, images=1 if args.quick else 5)
    print(
        f"\nTotal benchmark time: {(time.perf_counter() - started) / 60:.1f} min; "
        f"load average at the end: {os.getloadavg()[0]:.1f}"
    )


def speed_table(sizes: list[tuple[int, int]], weights: dict, depth: int, repeat: int) -> None:
    print("## Time and peak memory per image (CPU)\n")
    print(
        f"Whole image vs tiles of {TILE}x{TILE} LR pixels overlapping by {OVERLAP} (at 48x48 one"
        " tile covers the image, so tiled = whole); default = `csnln upscale`'s own choice on"
        f" a CPU (tiles of 64 overlapping by 16); after a warm-up, the fastest of {repeat} timed"
        " calls, in a fresh process per cell. s = wall-clock seconds; CPU s = CPU time of the"
        " process (all its"
        " threads), less sensitive to other jobs on a shared machine. Peak = the process's"
        " peak RSS (MB). Every row runs with `csnln.allocator.keep_freed_memory()` as the"
        " commands do, except `glibc malloc defaults`.\n"
    )
    print(
        "| scale | LR | mode | model calls | fp32 s | bf16 s | bf16 speed-up | fp32 CPU s "
        "| bf16 CPU s | speed-up in CPU time | fp32 peak MB | bf16 peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    baseline = None
    for scale, size in sizes:
        if size > 128:
            # (whole would take minutes on a CPU)
            modes: tuple[str, ...] = ("default", "default, glibc malloc defaults")
        else:
            modes = ("whole",) if size <= TILE else ("whole", "tiled")
        for mode in modes:
            cell = {}
            for precision in ("fp32", "bf16"):
                config = {
                    "scale": scale,
                    "size": size,
                    "mode": mode,
                    "precision": precision,
                    "weights": weights[scale],
                    "depth": depth,
                    "repeat": repeat,
                }
                cell[precision] = child("speed", config)
            a, b = cell["fp32"], cell["bf16"]
            if "error" in a or "error" in b:
                print(
                    f"| x{scale} | {size}² | {mode} | error: {a.get('error') or b.get('error')} |"
                )
                continue
            baseline = baseline or a["before"]
            print(
                f"| ×{scale} | {size}² | {mode} | {a['tiles']} | {a['seconds']:.1f} "
                f"| {b['seconds']:.1f} | {a['seconds'] / b['seconds']:.2f}× | {a['cpu']:.1f} "
                f"| {b['cpu']:.1f} | {a['cpu'] / b['cpu']:.2f}× | {mb(a['peak'])} | {mb(b['peak'])} |",
                flush=True,
            )
    if baseline:
        print(f"\n(The process holds about {mb(baseline)} MB before the timed call.)\n")


def psnr_table(weights: str | None, depth: int, images: int) -> None:
    print("## PSNR change caused by bf16, Set5 ×2\n")
    print(
        "HR centre crop 96×96 of each image, LR = MATLAB bicubic ×1/2 of it rounded to uint8 "
        "(48×48, run whole), outputs quantised to uint8; PSNR on Y, 2-pixel border crop.\n"
    )
    result = child("psnr", {"weights": weights, "depth": depth, "images": images})
    if "error" in result:
        print(f"error: {result['error']}")
    else:
        print(
            "| image | PSNR fp32 dB | PSNR bf16 dB | change dB | bf16 vs fp32 output dB "
            "| max pixel difference |"
        )
        print("|---|---|---|---|---|---|")
        rows = result["rows"]
        for r in rows:
            print(
                f"| {r['name']} | {r['fp32']:.3f} | {r['bf16']:.3f} | {r['bf16'] - r['fp32']:+.3f} "
                f"| {r['between']:.2f} | {r['max_diff']} |"
            )
        n = len(rows)
        mean = {k: sum(r[k] for r in rows) / n for k in ("fp32", "bf16", "between")}
        worst = max(abs(r["bf16"] - r["fp32"]) for r in rows)
        print(
            f"| **mean** | {mean['fp32']:.3f} | {mean['bf16']:.3f} "
            f"| {mean['bf16'] - mean['fp32']:+.3f} | {mean['between']:.2f} "
            f"| {max(r['max_diff'] for r in rows)} |"
        )
        print(f"\nLargest per-image PSNR change: {worst:.3f} dB (target ≤ 0.02 dB).")


if __name__ == "__main__":
    main()
