"""Checkpoints compared on the validation split (ten training images, csnln.data.splits) and,
apart, on the test sets, as `csnln eval` runs the bundled model (its tile plan, float32).

    python benchmarks/model_selection.py trained/campaign3_wide_x2/best.safetensors \
        trained/campaign3_wide_x2/final.safetensors
    python benchmarks/model_selection.py CKPT ... --sets Set5      # a quicker look
    python benchmarks/model_selection.py small trained/window24_x2/best.safetensors \
        trained/window24_x2/best.safetensors@0 --scale 2 --plan-of small

A model is a checkpoint file or a bundled name (with ``--scale``); ``MODEL@W`` runs it with
attention windows of W LR pixels (0: each tile whole), else in the window its weights were
trained in. ``--plan-of NAME`` runs every model in the tile plan measured for the bundled
``NAME`` (what ``csnln eval`` runs the bundled model in) instead of each one's own.

The choice is made on the split (mean PSNR over its ten images, Y, the scale's pixels
cropped); the test sets are printed beside it only to report what the choice changes. The
checkpoints run as `csnln eval` runs a checkpoint file (float32, the generic CPU tile plan: a
file has no measured plan), all in the same plan. Needs
../shared. Writes benchmarks/results/model_selection_x<scale>.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import head_commit  # noqa: E402

from csnln.data.splits import validation_files  # noqa: E402
from csnln.evaluation import evaluate  # noqa: E402
from csnln.inference import MEASURED_PLANS, RunOptions  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoints", nargs="+", help=".safetensors files or bundled names of one scale [@W]"
    )
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), help="for bundled names")
    parser.add_argument("--plan-of", metavar="NAME", help="run all in NAME's measured plan")
    parser.add_argument("--sets", nargs="*", default=["Set5", "Set14", "B100"])
    parser.add_argument("--out", help="default: benchmarks/results/model_selection_x<s>.md")
    args = parser.parse_args()
    split = validation_files(SHARED / "train")
    if not all(Path(f).is_file() for f in split):
        print("model_selection.py: needs ../shared/data/train", file=sys.stderr)
        return 2
    rows, scores, scale = [], {}, args.scale
    for entry in args.checkpoints:
        path, _, window = entry.partition("@")
        model = load_model(path, args.scale).eval()
        scale = model.descriptor.scale
        options = RunOptions(precision="fp32", attention_window=int(window) if window else None)
        if args.plan_of:
            plan = MEASURED_PLANS[args.plan_of][scale]
            options = options.replace(
                tile=plan.tile,
                tile_overlap=plan.overlap,
                tile_batch=plan.batch,
                tile_margin=plan.margin,
            )
        path = entry
        on_split = evaluate(model, split, scale, options, progress=False)
        split_psnr = statistics.fmean(r.psnr for r in on_split)
        tests = evaluate(model, [str(SHARED / "benchmark" / s) for s in args.sets], scale, options)
        scores[path] = split_psnr
        cells = " | ".join(f"{r.psnr:.4f}" for r in tests)
        used = options.attention_window
        used = model.descriptor.trained_attention_window if used is None else used
        rows.append(f"| `{path}` | {used or 'whole tile'} | {split_psnr:.4f} | {cells} |")
        print(rows[-1], flush=True)
    chosen = max(scores, key=lambda p: scores[p])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            f"# Checkpoint selection at x{scale}: the validation split, not a test set",
            "",
            f"`python benchmarks/model_selection.py {' '.join(sys.argv[1:])}`, {stamp}, "
            f"at {head_commit()}. PSNR (dB, Y, {scale} pixels cropped), "
            + (
                f"float32, all in the tile plan measured for `{args.plan_of}` "
                f"({MEASURED_PLANS[args.plan_of][scale]})"
                if args.plan_of
                else "`csnln eval`'s options for a checkpoint file (float32, the generic CPU plan)"
            )
            + ". Chosen on the split: "
            f"`{chosen}`.",
            "",
            "| checkpoint | attention window | validation split (10 training images) | "
            + " | ".join(args.sets)
            + " |",
            "|---|---|---|" + "---|" * len(args.sets),
            *rows,
            "",
        ]
    )
    out = Path(args.out or ROOT / f"benchmarks/results/model_selection_x{scale}.md")
    out.write_text(text)
    print(f"chosen on the split: {chosen}\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
