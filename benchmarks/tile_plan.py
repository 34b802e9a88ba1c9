"""Choose a bundled model's CPU tile plan from measurements: PSNR and seconds on B100 and Set5.

For each scale, every candidate plan (LR tile, overlap; ``--batch`` tiles per model call, which
changes speed, never the result) runs ``csnln eval``'s code on B100 (every ``--every``-th image,
in file-name order; its seconds per image are the speed) and on Set5, in the default precision
of ``csnln upscale`` here. So does the plan every scale had before issue 1/5 (tiles of 64,
overlap 16, float32: :data:`REFERENCE`), with the same weights. The chosen plan is the fastest
whose mean PSNR on B100 and on Set5 alike is within ``--tolerance`` dB of the best candidate's
and no more than ``--tolerance`` dB under the reference's (issue 1/5's bound); small images
such as Set5's suffer most from small tiles. ``--rule best`` keeps only the first condition
(the rule of runs 1-7 of the results), ``--rule bound`` only the second (run 8's);
``--from-output FILE`` re-applies a rule to the tables of an earlier run without measuring.
The plan goes into ``csnln.inference.MEASURED_PLANS`` by hand, with this
script's output kept in ``benchmarks/results/tile_plan.md``.

    python benchmarks/tile_plan.py                       # small, x2 x3 x4, B100 every 4th
    python benchmarks/tile_plan.py --scales 4 --every 1  # all of B100 at x4
    python benchmarks/tile_plan.py --from-output run.md --rule best   # re-choose, no timing
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
from common import head_commit  # noqa: E402

from csnln.allocator import keep_freed_memory  # noqa: E402
from csnln.evaluation import evaluate  # noqa: E402
from csnln.inference import RunOptions, fast_bf16, resolve_precision  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

B100 = ROOT.parent / "shared" / "data" / "benchmark" / "B100" / "HR"
SET5 = ROOT.parent / "shared" / "data" / "benchmark" / "Set5" / "HR"
#: (tile, overlap, margin) candidates per scale; tiles are multiples of the attention factor
#: (3 at x3); the margin is the outer part of each overlap left to the neighbour in the blend.
CANDIDATES = {
    2: [
        (24, 4, 0),
        (24, 6, 2),
        (32, 4, 0),
        (32, 8, 0),
        (32, 8, 2),
        (32, 8, 3),
        (40, 8, 3),
        (48, 8, 0),
        (48, 8, 3),
        (64, 16, 0),
    ],
    3: [
        (18, 3, 0),
        (24, 3, 0),
        (24, 6, 2),
        (27, 6, 0),
        (30, 6, 0),
        (30, 6, 2),
        (36, 6, 0),
        (36, 6, 2),
        (48, 12, 0),
    ],
    4: [
        (16, 2, 0),
        (16, 4, 0),
        (20, 4, 0),
        (24, 4, 0),
        (24, 6, 0),
        (28, 4, 0),
        (28, 6, 0),
        (32, 4, 0),
        (32, 8, 0),
    ],
}


#: The plan of every scale before issue 1/5: (tile, overlap, margin), in float32.
REFERENCE = (64, 16, 0)


def subset(every: int, folder: Path) -> Path:
    """A temporary folder of links to every ``every``-th image of ``folder``."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")[::every]
    out = Path(tempfile.mkdtemp(prefix="b100_"))
    for path in files:
        (out / path.name).symlink_to(path)
    return out


Row = tuple[int, int, int, float, float, float, float]  # tile overlap margin B100 SSIM s Set5
RULES = {
    "both": "within {tol:.2f} dB of the best candidate's PSNR and no more than {tol:.2f} dB "
    "under the 64/16 fp32 plan's, on B100 and Set5",
    "bound": "no more than {tol:.2f} dB under the 64/16 fp32 plan's PSNR on B100 and Set5",
    "best": "within {tol:.2f} dB of the best candidate's PSNR on B100 and Set5",
}


def choose(rows: list[Row], reference: Row | None, rule: str, tolerance: float) -> Row:
    """The fastest candidate that keeps the rule's quality (B100 and Set5 PSNR)."""
    floors = []
    if rule in ("both", "best"):
        floors.append((max(r[3] for r in rows), max(r[6] for r in rows)))
    if rule in ("both", "bound"):
        if reference is None:
            raise SystemExit(f"--rule {rule} needs the 64/16 fp32 reference row")
        floors.append((reference[3], reference[6]))

    def keeps(psnr: float, floor: float) -> bool:  # to the printed 4 decimals: ties pass
        return round(psnr - floor + tolerance, 4) >= 0

    good = [r for r in rows if all(keeps(r[3], b) and keeps(r[6], s) for b, s in floors)]
    return min(good, key=lambda r: r[5])


def table(rows: list[Row], reference: Row | None, chosen: Row) -> str:
    lines = [
        "| tile | overlap | margin | B100 PSNR dB | B100 SSIM | B100 s / image "
        "| Set5 PSNR dB | chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    marked = [(reference, "the bound (the plan before issue 1/5, fp32)")] if reference else []
    marked += [(r, "**yes**" if r[:3] == chosen[:3] else "") for r in rows]
    for (tile, overlap, margin, psnr, ssim, sec, psnr5), mark in marked:
        lines.append(
            f"| {tile} | {overlap} | {margin} | {psnr:.4f} | {ssim:.5f} | {sec:.2f} "
            f"| {psnr5:.4f} | {mark} |"
        )
    return "\n".join(lines)


def read_output(path: Path) -> dict[int, tuple[list[Row], Row | None]]:
    """The rows of a previous run's output (this script's tables), per scale."""
    runs: dict[int, tuple[list[Row], Row | None]] = {}
    scale = None
    for line in path.read_text().splitlines():
        if line.startswith("## x"):
            scale = int(line[4:].split()[0])
            if scale in runs:
                raise SystemExit(f"{path}: more than one run's x{scale} table (give one run's)")
            runs[scale] = ([], None)
        elif scale and line.startswith("| ") and line[2].isdigit():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) != 8:
                raise SystemExit(f"{path}: not this script's table format: {line}")
            row: Row = (
                int(cells[0]),
                int(cells[1]),
                int(cells[2]),
                float(cells[3]),
                float(cells[4]),
                float(cells[5]),
                float(cells[6]),
            )
            rows, reference = runs[scale]
            if cells[7].startswith("the bound"):
                runs[scale] = (rows, row)
            else:
                rows.append(row)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small", help="a bundled model name (default small)")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--every", type=int, default=4, help="every k-th B100 image (default 4)")
    parser.add_argument("--batch", type=int, default=8, help="tiles per model call (default 8)")
    parser.add_argument("--precision", default="auto", help="default: auto, as csnln upscale")
    parser.add_argument("--tolerance", type=float, default=0.01, help="dB (default 0.01)")
    parser.add_argument(
        "--rule",
        choices=list(RULES),
        default="both",
        help="both (default): within the tolerance of the best candidate and of the old "
        "64/16 fp32 plan; bound: of the old plan only; best: of the best candidate only",
    )
    parser.add_argument(
        "--from-output",
        type=Path,
        metavar="FILE",
        help="measure nothing: apply --rule to the tables of one previous run's output",
    )
    args = parser.parse_args()
    if args.from_output:
        if not args.from_output.is_file():
            print(f"--from-output {args.from_output}: no such file", file=sys.stderr)
            return 2
        measured = read_output(args.from_output)
        if not any(rows for rows, _ in measured.values()):
            print(
                f"--from-output {args.from_output}: no tables of this script in it",
                file=sys.stderr,
            )
            return 2
        print(f"Re-chosen from the tables of {args.from_output} (nothing measured):\n")
    else:
        measured = measure(args)
        if measured is None:
            return 2
    chosen = {}
    for scale, (rows, reference) in measured.items():
        chosen[scale] = choose(rows, reference, args.rule, args.tolerance)
        print(f"## x{scale}\n\n{table(rows, reference, chosen[scale])}\n", flush=True)
    print(f"Chosen (the fastest {RULES[args.rule].format(tol=args.tolerance)}):")
    for scale, (tile, overlap, margin, psnr, _, sec, psnr5) in chosen.items():
        print(
            f"- x{scale}: TilePlan(tile={tile}, overlap={overlap}, batch={args.batch}, "
            f"margin={margin}) (B100 {psnr:.4f} dB, Set5 {psnr5:.4f} dB, {sec:.2f} s/image)"
        )
    return 0


def measure(args: argparse.Namespace) -> dict[int, tuple[list[Row], Row | None]] | None:
    """Every candidate (and the reference) on the B100 subset and Set5, per scale."""
    if not B100.is_dir():
        print(f"B100 not found at {B100}: this benchmark needs ../shared", file=sys.stderr)
        return None
    keep_freed_memory()
    cpu = torch.device("cpu")
    precision = resolve_precision(args.precision, cpu)
    commit = head_commit()
    data = subset(args.every, B100)
    count = len(list(data.iterdir()))
    print(
        f"# Tile plans for `{args.model}` — `python benchmarks/tile_plan.py "
        f"{' '.join(sys.argv[1:])}`".rstrip()
        + f"\n\ncommit {commit}; {time.strftime('%Y-%m-%d')}; {torch.get_num_threads()} threads; "
        f"precision {precision} (fast bf16 here: {fast_bf16(cpu)}); B100, {count} images "
        f"(every {args.every}th), {args.batch} tiles per call; PSNR/SSIM on Y as csnln eval.\n",
        flush=True,
    )
    measured = {}
    for scale in args.scales:
        model = load_model(args.model, scale)
        rows: list[Row] = []
        plans = [(*plan, precision) for plan in CANDIDATES[scale]]
        if args.rule != "best":
            plans.insert(0, (*REFERENCE, "fp32"))
        for tile, overlap, margin, plan_precision in plans:
            options = RunOptions(
                tile=tile,
                tile_overlap=overlap,
                tile_batch=args.batch,
                tile_margin=margin,
                precision=plan_precision,
                device="cpu",
            )
            start = time.perf_counter()
            (result,) = evaluate(model, data, scale, options, progress=False)
            seconds = time.perf_counter() - start
            (set5,) = evaluate(model, SET5, scale, options, progress=False)
            rows.append(  # PSNR as printed (4 decimals), so that a re-choice agrees
                (
                    tile,
                    overlap,
                    margin,
                    round(result.psnr, 4),
                    result.ssim,
                    seconds / count,
                    round(set5.psnr, 4),
                )
            )
            print(
                f"  x{scale} tile {tile} overlap {overlap} margin {margin} {plan_precision}: "
                f"B100 {result.psnr:.4f} dB, Set5 {set5.psnr:.4f} dB, "
                f"{seconds / count:.2f} s/image",
                file=sys.stderr,
                flush=True,
            )
        reference = rows.pop(0) if args.rule != "best" else None
        measured[scale] = (rows, reference)
    return measured


if __name__ == "__main__":
    raise SystemExit(main())
