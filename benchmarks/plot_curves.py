"""Validation curves of training runs as one PNG (:func:`csnln.plots.line_chart`).

Reads the ``log.csv`` of each run folder given (``step`` and ``val_psnr`` columns, as
``csnln train`` writes them) and draws validation PSNR against steps, one line per run, with
horizontal reference lines (``--ref NAME=DB``).

    python benchmarks/plot_curves.py trained/small_x2 trained/small_x3 trained/small_x4 \\
        -o docs/training_curves.png
    python benchmarks/plot_curves.py runs/a runs/b --ref "FSRCNN x2=37.00" -o ab.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from csnln.plots import line_chart
from csnln.training import validation_curve


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with a log.csv")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--ref", action="append", default=[], metavar="NAME=DB")
    parser.add_argument("--title", default="validation PSNR (dB, Set5, Y) against steps")
    args = parser.parse_args()
    curves = {folder.name: validation_curve(folder) for folder in args.runs}
    refs = {}
    for text in args.ref:
        name, _, value = text.rpartition("=")
        refs[name] = float(value)
    if not any(curves.values()):
        raise SystemExit("no validation rows in the logs")
    line_chart(curves, args.output, title=args.title, refs=refs)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
