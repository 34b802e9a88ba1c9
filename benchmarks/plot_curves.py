"""Validation curves of training runs as one PNG (Pillow only: no plotting library needed).

Reads the ``log.csv`` of each run folder given (``step`` and ``val_psnr`` columns, as
``csnln train`` writes them) and draws validation PSNR against steps, one line per run, with
horizontal reference lines (``--ref NAME=DB``).

    python benchmarks/plot_curves.py trained/small_x2 trained/small_x3 trained/small_x4 \\
        -o docs/training_curves.png
    python benchmarks/plot_curves.py runs/a runs/b --ref "FSRCNN x2=37.00" -o ab.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def read_curve(folder: Path) -> list[tuple[int, float]]:
    with (folder / "log.csv").open(newline="") as handle:
        return [
            (int(row["step"]), float(row["val_psnr"]))
            for row in csv.DictReader(handle)
            if row.get("val_psnr")
        ]


def plot(
    curves: dict[str, list[tuple[int, float]]],
    refs: dict[str, float],
    out: Path,
    *,
    title: str,
    size: tuple[int, int] = (900, 520),
) -> None:
    width, height = size
    left, right, top, bottom = 70, 220, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    points = [p for c in curves.values() for p in c]
    if not points:
        raise SystemExit("no validation rows in the logs")
    max_step = max(s for s, _ in points)
    values = [v for _, v in points] + list(refs.values())
    lo, hi = min(values) - 0.1, max(values) + 0.1

    def xy(step: float, value: float) -> tuple[float, float]:
        x = left + (width - left - right) * step / max(1, max_step)
        y = top + (height - top - bottom) * (hi - value) / (hi - lo)
        return x, y

    draw.rectangle([left, top, width - right, height - bottom], outline=(120, 120, 120))
    for k in range(6):  # axes ticks
        value = lo + (hi - lo) * k / 5
        _, y = xy(0, value)
        draw.line([left - 4, y, left, y], fill=(120, 120, 120))
        draw.text((8, y - 6), f"{value:.2f}", fill="black", font=font)
        step = max_step * k / 5
        x, _ = xy(step, lo)
        draw.line([x, height - bottom, x, height - bottom + 4], fill=(120, 120, 120))
        draw.text((x - 15, height - bottom + 8), f"{step:,.0f}", fill="black", font=font)
    draw.text((left, 12), title, fill="black", font=font)
    draw.text((width // 2 - 40, height - 18), "training step", fill="black", font=font)
    legend_y = top
    for name, value in refs.items():
        _, y = xy(0, value)
        draw.line([left, y, width - right, y], fill=(150, 150, 150), width=1)
        draw.text((width - right + 8, y - 6), f"{name} {value:.2f}", fill=(90, 90, 90), font=font)
    for i, (name, curve) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(s, v) for s, v in curve]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        last = curve[-1][1] if curve else float("nan")
        draw.text((width - right + 8, legend_y + 200), f"{name}: {last:.2f}", fill=colour, font=font)
        legend_y += 16
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders with a log.csv")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--ref", action="append", default=[], metavar="NAME=DB")
    parser.add_argument("--title", default="validation PSNR (dB, Set5, Y) against steps")
    args = parser.parse_args()
    curves = {folder.name: read_curve(folder) for folder in args.runs}
    refs = {}
    for text in args.ref:
        name, _, value = text.rpartition("=")
        refs[name] = float(value)
    plot(curves, refs, args.output, title=args.title)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
