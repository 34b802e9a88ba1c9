"""The report of the attention study at the bundled budget ("does the attention pay at the size
we ship?"): ``<out>/bundled/attention.md`` with its plots, from the finished runs.

Tables: every variant's parameters, forward MFLOP per LR pixel, seconds per image and PSNR/SSIM
on each evaluation set (mean and range of its seeds); each variant against the bundled cell at
equal steps and at equal training CPU time (validation curves on the held-out split, put on a
CPU-time axis by each variant's step cost measured here); per-image PSNR of the bundled cell
minus local only, sorted, on SunHays80 and B100. Plots: the validation curves on the CPU-time
axis, PSNR against MFLOP per pixel, the sorted per-image differences.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import torch

from ..atomic import atomic_write
from .cost import clock_for, seconds_per_image, step_costs
from .orchestration import load_results
from .report import curve_at, mean_curve
from .runs import RunResult, refuse_to_replace
from .studies import REFERENCE, Budget, Variant, mflop_per_pixel

PathArg = str | PathLike[str]

__all__ = ["LOCAL", "per_image_gains", "write_attention_report"]

LOCAL = Variant(branches=("local",))


def _name(variant: Variant, budget: Budget) -> str:
    short = {"local": "L", "in_scale": "I", "cross_scale": "C"}
    branches = "+".join(short[b] for b in variant.branches)
    if variant.n_feats:
        return f"{branches}, n_feats {variant.n_feats} (matched cost)"
    return branches + (" (bundled cell)" if variant == REFERENCE.resolved(budget) else "")


def per_image_gains(
    a: Sequence[RunResult], b: Sequence[RunResult], dataset: str
) -> list[tuple[str, float]]:
    """Per image of ``dataset``: mean PSNR of runs ``a`` minus mean of runs ``b`` (the seeds
    both have), sorted from the largest gain to the largest loss."""
    seeds = sorted({r.seed for r in a} & {r.seed for r in b})
    if not seeds:
        return []
    mine = [r for r in a if r.seed in seeds]
    theirs = [r for r in b if r.seed in seeds]
    names = sorted(mine[0].per_image.get(dataset, {}))
    gains = [
        (
            name,
            statistics.fmean(r.per_image[dataset][name] for r in mine)
            - statistics.fmean(r.per_image[dataset][name] for r in theirs),
        )
        for name in names
    ]
    return sorted(gains, key=lambda item: -item[1])


def _cell(runs: Sequence[RunResult], dataset: str) -> str:
    values = [r.psnr[dataset] for r in runs if dataset in r.psnr]
    if not values:
        return "not run yet"
    ssim = statistics.fmean(r.ssim[dataset] for r in runs if dataset in r.ssim)
    spread = f" ± {(max(values) - min(values)) / 2:.3f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.3f}{spread} / {ssim:.4f}"


def write_attention_report(
    study: str,
    budget: Budget,
    out: PathArg = "ablations",
    *,
    benchmarks: PathArg | None = None,
    command: str = "",
    timing: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write ``out/<budget>/attention.md`` and its plots (see the module doc). Seconds per
    image and the step costs are measured here (``timing=False``: not measured, and no
    equal-time comparison). Refuses to replace an existing report without ``overwrite``.
    ``study`` is "attention" (the signature of :func:`write_report`)."""
    if study != "attention":
        raise ValueError(f"this report is the attention study's, not {study!r}'s")
    from ..plots import line_chart, scatter_chart

    folder = Path(out) / budget.name
    target = folder / "attention.md"
    refuse_to_replace(target, overwrite)
    found = load_results(out, budget, "attention")
    sets = list(budget.eval_sets)
    lines = [
        f"# Does the attention pay at the size we ship? (`{budget.name}` budget)",
        "",
        f"Every variant: x2, {budget.describe()}; trained from scratch by `csnln train` on the",
        "training set less its validation split (`csnln.data.splits`), validated on that split,",
        "evaluated with its final weights (LR tiles of "
        f"{budget.eval_tile} overlapping by {budget.eval_overlap}, float32): PSNR dB ± half the",
        "seeds' range / SSIM, on Y, 2 pixels cropped. MFLOP: forward, per LR pixel, on a "
        f"{budget.eval_tile}x{budget.eval_tile} input (torch's counter).",
        "",
        f"`{command or 'csnln ablate attention --budget bundled --report'}`",
        "",
        "| variant | parameters | MFLOP / px | s / image (Set5) | seeds | "
        + " | ".join(sets)
        + " |",
        "|---|---:|---:|---:|---:|" + "---|" * len(sets),
    ]
    points: dict[str, dict[str, tuple[float, float, float]]] = {s: {} for s in sets}
    costs: dict[Variant, float] = {}
    target_device = torch.device("cpu")
    clock = clock_for(target_device)
    set5 = str(Path(benchmarks) / "Set5") if benchmarks is not None else ""
    if timing:
        costs = step_costs([v for v, runs in found.items() if runs], budget, target_device, clock)
    for variant, runs in found.items():
        network = variant.network(budget).eval()
        mflop = mflop_per_pixel(network, budget.eval_tile)
        params = sum(p.numel() for p in network.parameters())
        seconds = ""
        if runs and timing and set5 and Path(set5).is_dir():
            from ..zoo import load_model

            weights = folder / "runs" / variant.key / f"seed{runs[0].seed}" / "final.safetensors"
            model = load_model(weights)
            seconds = f"{seconds_per_image(model, set5, budget):.2f}"
        cells = [_cell(runs, s) for s in sets]
        lines.append(
            f"| {_name(variant, budget)} | {params:,} | {mflop:.2f} | {seconds} | {len(runs)} | "
            + " | ".join(cells)
            + " |"
        )
        for s in sets:
            values = [r.psnr[s] for r in runs if s in r.psnr]
            if values:
                points[s][_name(variant, budget)] = (
                    mflop,
                    statistics.fmean(values),
                    max(values) - min(values),
                )
    lines += _comparisons(found, budget, costs)
    plots = []
    for s in ("SunHays80", "B100"):
        if points.get(s):
            scatter_chart(
                points[s],
                folder / f"attention_cost_{s}.png",
                title=f"{s} x2: PSNR against forward cost ({budget.name} budget)",
                x_label=f"forward MFLOP per LR pixel ({budget.eval_tile}² input)",
            )
            plots.append(f"![PSNR against MFLOP per pixel, {s}](attention_cost_{s}.png)")
    curves = {
        _name(v, budget): [(step * costs[v] / 3600, p) for step, p in mean_curve(runs)]
        for v, runs in found.items()
        if runs and v in costs
    }
    if curves:
        line_chart(
            curves,
            folder / "attention_curves.png",
            title="validation PSNR (held-out split, Y) against training CPU time",
            x_label="training CPU-hours (steps x the step cost measured here)",
        )
        plots.append("![validation curves on a CPU-time axis](attention_curves.png)")
    gains_lines, gain_series = _gains(found, budget)
    lines += gains_lines
    if gain_series:
        line_chart(
            gain_series,
            folder / "attention_per_image.png",
            title="PSNR of the bundled cell minus local only, per image, sorted",
            x_label="image rank (largest gain first)",
            y_label="PSNR difference (dB)",
            refs={"no difference": 0.0},
        )
        plots.append("![per-image gain, sorted](attention_per_image.png)")
    text = "\n".join(lines + [""] + plots) + "\n"
    return atomic_write(target, lambda tmp: tmp.write_text(text))


def _comparisons(
    found: dict[Variant, list[RunResult]], budget: Budget, costs: dict[Variant, float]
) -> list[str]:
    """Each variant against the bundled cell: at equal steps (final PSNR, each set) and at
    equal training CPU time (the validation curves read where the cheaper run ended)."""
    reference = REFERENCE.resolved(budget)
    mine = found.get(reference) or []
    if not mine:
        return ["", "The bundled cell has not finished yet: no comparison."]
    sets = list(budget.eval_sets)
    lines = [
        "",
        "## The bundled cell against each variant",
        "",
        "Δ = bundled cell minus variant (dB; positive: the attention helps). At equal steps: the",
        "final PSNR of each set. At equal CPU time: both validation curves (held-out split) read",
        "where the cheaper of the two finished; a curve read before its end is not annealed, so",
        "this favours the cheaper run. Spread: half the larger seed range of the two.",
        "",
        "| variant | " + " | ".join(f"Δ {s}" for s in sets) + " | Δ at equal CPU time (split) |",
        "|---|" + "---:|" * (len(sets) + 1),
    ]
    ref_curve = (
        [(step * costs[reference], p) for step, p in mean_curve(mine)] if reference in costs else []
    )
    for variant, runs in found.items():
        if variant == reference or not runs:
            continue
        cells = []
        for s in sets:
            a = [r.psnr[s] for r in mine if s in r.psnr]
            b = [r.psnr[s] for r in runs if s in r.psnr]
            if not a or not b:
                cells.append("")
                continue
            delta = statistics.fmean(a) - statistics.fmean(b)
            if min(len(a), len(b)) < 2:
                cells.append(f"{delta:+.3f} (one seed)")
                continue
            spread = max(max(a) - min(a), max(b) - min(b)) / 2
            cells.append(f"{delta:+.3f} (± {spread:.3f})")
        equal_time = ""
        if ref_curve and variant in costs:
            curve = [(step * costs[variant], p) for step, p in mean_curve(runs)]
            when = min(curve[-1][0], ref_curve[-1][0])
            x, y = curve_at(ref_curve, when), curve_at(curve, when)
            if x is not None and y is not None:
                equal_time = f"{x - y:+.3f} at {when / 3600:.2f} CPU-h"
        lines.append(f"| {_name(variant, budget)} | " + " | ".join(cells) + f" | {equal_time} |")
    return lines


def _gains(
    found: dict[Variant, list[RunResult]], budget: Budget
) -> tuple[list[str], dict[str, list[tuple[float, float]]]]:
    """Per-image PSNR of the bundled cell minus local only: summary lines and the sorted
    series, for the sets where both have per-image results."""
    lic = found.get(REFERENCE.resolved(budget)) or []
    local = found.get(LOCAL.resolved(budget)) or []
    lines: list[str] = []
    series: dict[str, list[tuple[float, float]]] = {}
    for dataset in ("SunHays80", "B100"):
        gains = per_image_gains(lic, local, dataset)
        if not gains:
            continue
        values = [g for _, g in gains]
        series[dataset] = [(i + 1.0, g) for i, g in enumerate(values)]
        wins = sum(g > 0 for g in values)
        lines += [
            "",
            f"### {dataset}: bundled cell minus local only, per image",
            "",
            f"{wins} of {len(values)} images gain; median {statistics.median(values):+.3f} dB, "
            f"mean {statistics.fmean(values):+.3f} dB. Largest gains: "
            + ", ".join(f"{n} {g:+.3f}" for n, g in gains[:5])
            + ". Largest losses: "
            + ", ".join(f"{n} {g:+.3f}" for n, g in gains[::-1][:5])
            + ".",
        ]
    return lines, series
