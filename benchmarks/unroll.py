"""The bundled small x2 model (trained with 4 SEM steps) run with other step counts at test
time, both tails of `CSNLN.unrolled` (resample / window): Set5 x2 PSNR, LR tiles of 32
overlapping by 8, float32. The same question as the depth ablation's test-time table
(`csnln ablate depth`), on weights trained for long.

    python benchmarks/unroll.py          # prints a Markdown table
"""

from __future__ import annotations

import argparse

from csnln import RunOptions
from csnln.evaluation import evaluate
from csnln.zoo import load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set5", default="../shared/data/benchmark/Set5")
    parser.add_argument("--depths", default="1,2,3,4,5,6,8,12")
    args = parser.parse_args()
    model = load_model("small", 2).eval()
    options = RunOptions(precision="fp32", tile=32, tile_overlap=8)
    print("| run with D' steps | resample | window |")
    print("|---:|---:|---:|")
    for depth in (int(d) for d in args.depths.split(",")):
        cells = []
        for tail in ("resample", "window"):
            if tail == "window" and depth < model.depth:
                cells.append("")
                continue
            net = model if depth == model.depth else model.unrolled(depth, tail=tail)
            result = evaluate(net, args.set5, 2, options, progress=False)[0]
            cells.append(f"{result.psnr:.3f}")
        bold = "**" if depth == model.depth else ""
        print(f"| {bold}{depth}{bold} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
