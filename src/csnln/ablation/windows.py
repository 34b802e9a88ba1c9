"""PSNR against the test window: every run of the attention studies scored at several tile
sizes and on the whole piece, to see whether the cell's gain grows with what its attention
sees (``csnln ablate window --report``). Scored on every image of Set14, every 2nd of
SunHays80 and every 4th of B100 (:data:`SWEEP_SETS`), and the validation split.

Whole benchmark images at every window and run would take days on a CPU (the attentions'
cost grows with the square of the piece), so each image is scored on its central crop of
``CROP`` LR pixels (the whole image when smaller; the issue that asked for this used 120);
"whole" is then the whole crop. Each run's scores are kept beside its ``result.json``
(``window_sweep_crop96.json``: one entry per set and window, written as each finishes), so a
stopped sweep continues where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch

from ..atomic import atomic_write
from .studies import SCALE, Budget, Variant

PathArg = str | PathLike[str]

#: LR side of the central crop every image is scored on.
CROP = 96
#: The test windows: LR tile sides, and 0 for the whole crop.
WINDOWS = (24, 32, 48, 64, 0)
#: Where the window sweep measures: the validation split chooses, the test sets report;
#: every k-th image of each (sorted by name), to fit a CPU session.
SWEEP_SETS = {"SunHays80": 2, "Set14": 1, "B100": 4}


@dataclass(frozen=True)
class SweepPoint:
    """One run at one window on one set: mean PSNR (Y) and CPU seconds per image."""

    psnr: float
    seconds: float
    images: int


def centre_crops(files: Sequence[str], scale: int = SCALE, crop: int = CROP):
    """(name, HR, LR) of each file's central ``crop`` LR pixels, uint8, by the benchmarks'
    protocol (HR cropped to a multiple of ``scale`` first, LR by MATLAB bicubic)."""
    from ..data.imresize import imresize
    from ..data.protocol import load_rgb, modcrop, to_uint8_matlab

    for path in files:
        hr = modcrop(load_rgb(path), scale)
        h, w = hr.shape[-2:]
        ch, cw = min(h, scale * crop), min(w, scale * crop)
        top, left = (h - ch) // (2 * scale) * scale, (w - cw) // (2 * scale) * scale
        hr = hr[:, top : top + ch, left : left + cw]
        lr = to_uint8_matlab(imresize(hr.to(torch.float64), 1 / scale))
        yield Path(path).name, hr, lr


def score_window(model: torch.nn.Module, crops: list, window: int) -> SweepPoint:
    """Mean PSNR of ``model`` on ``crops`` run in LR tiles of ``window`` (0: whole),
    overlapping by a quarter, float32; CPU seconds per image."""
    from ..data.protocol import quantize
    from ..inference import RunOptions, Upscaler
    from ..metrics import psnr

    options = RunOptions(
        precision="fp32",
        tile=window or None,
        tile_overlap=window // 4 if window else None,
        tile_batch=4 if window else None,
        tile_streams=1,
    )
    upscaler = Upscaler(model, options)
    total, began = 0.0, time.process_time()
    for _, hr, lr in crops:
        sr = upscaler(lr[None].float() / 255)[0]
        total += float(psnr(quantize(sr), hr, crop=SCALE))
    seconds = (time.process_time() - began) / max(1, len(crops))
    return SweepPoint(total / max(1, len(crops)), seconds, len(crops))


def sweep_run(
    folder: Path,
    sets: dict[str, list[str]],
    windows: Sequence[int] = WINDOWS,
    on_point: Callable[[str, str, int, SweepPoint], None] | None = None,
) -> dict[str, dict[int, SweepPoint]]:
    """Score one finished run (``folder/final.safetensors``) on ``sets`` (name -> files) at
    ``windows``, reusing and extending its sweep file."""
    from ..zoo import load_model

    path = folder / f"window_sweep_crop{CROP}.json"
    found: dict[str, dict[str, dict[str, float]]] = (
        json.loads(path.read_text()) if path.is_file() else {}
    )
    model = None
    for name, files in sets.items():
        crops = None
        for window in windows:
            if str(window) in found.get(name, {}):
                continue
            if model is None:
                model = load_model(folder / "final.safetensors").eval()
            crops = crops if crops is not None else list(centre_crops(files))
            point = score_window(model, crops, window)
            found.setdefault(name, {})[str(window)] = point.__dict__
            text = json.dumps(found, indent=1, sort_keys=True)
            atomic_write(path, lambda tmp, text=text: tmp.write_text(text))
            if on_point is not None:
                on_point(str(folder), name, window, point)
    return {
        name: {int(k): SweepPoint(**v) for k, v in by_window.items()}
        for name, by_window in found.items()
    }


def sweep_sets(benchmarks: PathArg, holdout: Sequence[str]) -> dict[str, list[str]]:
    """The sweep's sets: the validation split (``holdout``), then the test sets."""
    from ..data.datasets import find_dataset

    sets = {"holdout": list(holdout)} if holdout else {}
    for name, every in SWEEP_SETS.items():
        entries = find_dataset(Path(benchmarks) / name, SCALE)[::every]
        sets[name] = [str(e.hr_path) for e in entries]
    return sets


def sweep_table(
    results: dict[tuple[str, Variant], list[dict[str, dict[int, SweepPoint]]]],
    set_name: str,
    reference: Variant,
    windows: Sequence[int] = WINDOWS,
) -> tuple[str, dict[str, list[tuple[float, float]]]]:
    """A markdown table of PSNR minus the reference's (same study) per window on
    ``set_name``, mean over seeds with the seed range, and the chart's series."""
    header = "| study | variant | seeds | " + " | ".join(_label(w) for w in windows) + " |"
    lines = [header, "|---|---|---|" + "---|" * len(windows)]
    series: dict[str, list[tuple[float, float]]] = {}
    for (study, variant), seeds in results.items():
        ref = results.get((study, reference), [])
        cells, points = [], []
        for window in windows:
            values = [s[set_name][window].psnr for s in seeds if window in s.get(set_name, {})]
            refs = [s[set_name][window].psnr for s in ref if window in s.get(set_name, {})]
            if not values or not refs:
                cells.append("")
                continue
            delta = sum(values) / len(values) - sum(refs) / len(refs)
            spread = (max(values) - min(values)) / 2
            absolute = sum(values) / len(values)
            cells.append(f"{absolute:.3f} ({delta:+.3f} ± {spread:.3f})")
            points.append((window or CROP, delta))
        lines.append(f"| {study} | {variant.key} | {len(seeds)} | " + " | ".join(cells) + " |")
        if points and variant != reference:
            series[f"{variant.key} ({study})"] = points
    return "\n".join(lines), series


def _label(window: int) -> str:
    return f"tile {window}" if window else f"whole ({CROP})"


def write_window_report(
    studies: dict[str, Budget],
    variants: Sequence[Variant],
    out: PathArg,
    *,
    benchmarks: PathArg,
    holdout: Sequence[str],
    command: str,
    report: Path,
    on_point: Callable[[str, str, int, SweepPoint], None] | None = None,
) -> Path:
    """Sweep every finished run of ``studies`` (name -> budget) for ``variants`` and write
    ``report`` (markdown) with one chart per set."""
    from ..plots import line_chart
    from .runs import run_dir

    sets = sweep_sets(benchmarks, holdout)
    results: dict[tuple[str, Variant], list[dict[str, dict[int, SweepPoint]]]] = {}
    seeds = sorted({seed for budget in studies.values() for seed in budget.seeds})
    for seed in seeds:  # every arm's first seed first: a sweep cut short has them all
        for study, budget in studies.items():
            for variant in variants:
                folder = run_dir(out, budget, variant, seed)
                if seed not in budget.seeds or not (folder / "result.json").is_file():
                    continue
                scores = sweep_run(folder, sets, on_point=on_point)
                results.setdefault((study, variant), []).append(scores)
    reference = variants[1] if len(variants) > 1 else variants[0]
    parts = [
        "# PSNR against the test window",
        "",
        f"`{command}`. Each run's final weights, float32, x2, on the central {CROP}x{CROP} LR "
        "crop of the images (Set14 all, SunHays80 every 2nd, B100 every 4th, and the validation "
        "split; `csnln.ablation.windows`), in LR tiles of 24-64 overlapping by "
        "a quarter, or the whole crop. Cells: mean PSNR (Y) over the seeds, then the "
        f"difference to `{reference.key}` of the same study ± half the seed range.",
    ]
    for name in sets:
        table, series = sweep_table(results, name, reference)
        parts += ["", f"## {name}", "", table]
        if series:
            chart = report.with_name(f"{report.stem}_{name}.png")
            line_chart(
                series,
                chart,
                title=f"PSNR minus {reference.key}'s against the window, {name}",
                x_label="LR window (tile side; whole crop = 120)",
                y_label="dB",
                refs={"0": 0.0},
            )
            parts += ["", f"![{name}]({chart.name})"]
    seconds = ["", "## CPU seconds per crop (1 thread, median of the sets)", ""]
    seconds.append("| study | variant | " + " | ".join(_label(w) for w in WINDOWS) + " |")
    seconds.append("|---|---|" + "---|" * len(WINDOWS))
    for (study, variant), seeds in results.items():
        cells = []
        for window in WINDOWS:
            values = sorted(s[n][window].seconds for s in seeds for n in s if window in s[n])
            cells.append(f"{values[len(values) // 2]:.2f}" if values else "")
        seconds.append(f"| {study} | {variant.key} | " + " | ".join(cells) + " |")
    text = "\n".join(parts + seconds) + "\n"
    atomic_write(report, lambda tmp: tmp.write_text(text))
    return report
