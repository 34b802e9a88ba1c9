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
import math
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
        tile=window,
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
) -> tuple[str, dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float, float]]]]:
    """A markdown table of PSNR minus the reference's (same study) per window on
    ``set_name``, mean over seeds with the seed range; the chart's series (x, mean
    difference) and bands (x, lowest and highest seed's difference)."""
    header = "| study | variant | seeds | " + " | ".join(_label(w) for w in windows) + " |"
    lines = [header, "|---|---|---|" + "---|" * len(windows)]
    series: dict[str, list[tuple[float, float]]] = {}
    bands: dict[str, list[tuple[float, float, float]]] = {}
    for (study, variant), seeds in results.items():
        ref = results.get((study, reference), [])
        cells, points, band = [], [], []
        for window in windows:
            values = [s[set_name][window].psnr for s in seeds if window in s.get(set_name, {})]
            refs = [s[set_name][window].psnr for s in ref if window in s.get(set_name, {})]
            if not values or not refs:
                cells.append("")
                continue
            ref_mean = sum(refs) / len(refs)
            delta = sum(values) / len(values) - ref_mean
            spread = (max(values) - min(values)) / 2
            absolute = sum(values) / len(values)
            cells.append(f"{absolute:.3f} ({delta:+.3f} ± {spread:.3f})")
            points.append((window or CROP, delta))
            band.append((window or CROP, min(values) - ref_mean, max(values) - ref_mean))
        lines.append(f"| {study} | {variant.key} | {len(seeds)} | " + " | ".join(cells) + " |")
        if points and variant != reference:
            series[f"{variant.key} ({study})"] = points
            bands[f"{variant.key} ({study})"] = band
    return "\n".join(lines), series, bands


def mean_psnr(seeds: list[dict[str, dict[int, SweepPoint]]], set_name: str, window: int) -> float:
    """Mean PSNR over the seeds that scored ``window`` on ``set_name`` (nan: none did)."""
    values = [s[set_name][window].psnr for s in seeds if window in s.get(set_name, {})]
    return sum(values) / len(values) if values else math.nan


def chosen_windows(
    results: dict[tuple[str, Variant], list[dict[str, dict[int, SweepPoint]]]],
    test_sets: Sequence[str],
    windows: Sequence[int] = WINDOWS,
) -> list[str]:
    """The report's first table: each run's window chosen on the validation split (its
    best mean PSNR there), and its PSNR on the test sets at that window."""
    lines = [
        "## The window chosen on the validation split",
        "",
        "Each variant's window with the best mean PSNR on the held-out split; the test sets "
        "at that window (mean over seeds).",
        "",
        "| study | variant | window | holdout | " + " | ".join(test_sets) + " |",
        "|---|---|---|---|" + "---|" * len(test_sets),
    ]
    for (study, variant), seeds in results.items():
        scored = [(mean_psnr(seeds, "holdout", w), w) for w in windows]
        scored = [(p, w) for p, w in scored if math.isfinite(p)]
        if not scored:
            continue
        best, window = max(scored)
        cells = [f"{mean_psnr(seeds, name, window):.3f}" for name in test_sets]
        row = f"| {study} | {variant.key} | {_label(window)} | {best:.3f} | "
        lines.append(row + " | ".join(cells) + " |")
    return lines


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
    poll_seconds: float = 20.0,
) -> Path:
    """Sweep every finished run of ``studies`` (name -> budget) for ``variants`` and write
    ``report`` (markdown) with one chart per set. Two processes share the runs (each run's
    ``.sweep.lock``); each waits for the other's and writes the whole report."""
    from ..plots import line_chart
    from .runs import claim, run_dir

    sets = sweep_sets(benchmarks, holdout)
    runs = [
        (study, variant, run_dir(out, budget, variant, seed))
        for seed in sorted({seed for budget in studies.values() for seed in budget.seeds})
        for study, budget in studies.items()  # every arm's first seed first: a sweep cut
        for variant in variants  # short has them all
        if seed in budget.seeds
    ]
    runs = [run for run in runs if (run[2] / "result.json").is_file()]
    scored: dict[Path, dict[str, dict[int, SweepPoint]]] = {}
    while len(scored) < len(runs):  # a run another process is sweeping: the next pass
        for _, _, folder in runs:
            if folder in scored:
                continue
            with claim(folder, ".sweep.lock") as mine:
                if mine:
                    scored[folder] = sweep_run(folder, sets, on_point=on_point)
        if len(scored) < len(runs):
            time.sleep(poll_seconds)
    results: dict[tuple[str, Variant], list[dict[str, dict[int, SweepPoint]]]] = {}
    for study, variant, folder in sorted(
        runs, key=lambda r: (list(studies).index(r[0]), list(variants).index(r[1]))
    ):
        results.setdefault((study, variant), []).append(scored[folder])
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
    if "holdout" in sets:
        parts += ["", *chosen_windows(results, [n for n in sets if n != "holdout"])]
    for name in sets:
        table, series, bands = sweep_table(results, name, reference)
        parts += ["", f"## {name}", "", table]
        if series:
            chart = report.with_name(f"{report.stem}_{name}.png")
            line_chart(
                series,
                chart,
                title=f"PSNR minus {reference.key}'s against the window, {name}",
                x_label=f"LR window (tile side; whole crop = {CROP})",
                y_label="dB",
                refs={"0": 0.0},
                bands=bands,
                value_format="+.3f",
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
