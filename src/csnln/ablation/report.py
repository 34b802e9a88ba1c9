"""A study's report: ``<out>/<budget>/<study>.md`` with its tables and plots, from the
finished runs."""

from __future__ import annotations

import logging
import math
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

import torch

from ..atomic import atomic_write
from .cost import clock_for, seconds_per_image
from .cost import step_costs as measure_step_costs
from .orchestration import load_results
from .runs import RunResult, refuse_to_replace
from .studies import EVAL_SETS, REFERENCE, SCALE, STUDIES, Budget, Variant, mflop_per_pixel

log = logging.getLogger("csnln.ablation")
PathArg = str | PathLike[str]


@dataclass(frozen=True)
class Summary:
    """A variant's seeds, summarised: mean and range (max - min) of each figure."""

    variant: Variant
    seeds: int
    psnr: dict[str, float]
    psnr_range: dict[str, float]
    ssim: dict[str, float]


def summarise(runs: Sequence[RunResult]) -> Summary | None:
    if not runs:
        return None
    sets = list(runs[0].psnr)
    return Summary(
        variant=runs[0].variant,
        seeds=len(runs),
        psnr={s: statistics.fmean(r.psnr[s] for r in runs) for s in sets},
        psnr_range={s: max(r.psnr[s] for r in runs) - min(r.psnr[s] for r in runs) for s in sets},
        ssim={s: statistics.fmean(r.ssim[s] for r in runs) for s in sets},
    )


def verdict(delta: float, noise: float, seeds: int) -> str:
    """How to read a difference of means against the seeds' spread."""
    if seeds < 2:
        return "one seed: no spread to compare with"
    if abs(delta) <= noise:
        return "within the seed spread"
    return f"{'better' if delta > 0 else 'worse'}, beyond the spread"


def mean_curve(runs: Sequence[RunResult]) -> list[tuple[float, float]]:
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for step, value in r.curve:
            by_step.setdefault(step, []).append(value)
    return [(s, statistics.fmean(v)) for s, v in sorted(by_step.items()) if len(v) == len(runs)]


def write_report(
    study: str,
    budget: Budget,
    out: PathArg = "ablations",
    *,
    benchmarks: PathArg | None = None,
    command: str = "",
    timing: bool = True,
    overwrite: bool = False,
) -> Path:
    """``out/<budget>/<study>.md`` with its plots (``<study>_curves.png``, ``_cost.png``)
    from the finished runs; variants not finished yet are listed as such. The parameters,
    MFLOP per LR pixel and seconds per image are measured here, all variants in one process
    (``timing=False``: seconds not measured; ``benchmarks``: the folder holding Set5, whose
    images are timed). An existing report is replaced only with ``overwrite=True``
    (``FileExistsError`` otherwise): the reports in a project are results."""
    target = Path(out) / budget.name / f"{study}.md"
    refuse_to_replace(target, overwrite)
    from ..plots import line_chart, scatter_chart

    question, _, option = STUDIES[study]
    found = load_results(out, budget, study)
    folder = Path(out) / budget.name
    summaries = {v: summarise(runs) for v, runs in found.items()}
    reference = summaries.get(REFERENCE.resolved(budget))
    sets = list(EVAL_SETS)
    set5 = str(Path(benchmarks) / EVAL_SETS[0]) if benchmarks is not None else ""
    lines = [
        f"# Ablation `{study}` at the `{budget.name}` budget",
        "",
        question,
        "",
        f"Every variant: x{SCALE}, {budget.describe()}; trained on the training set by "
        f"`csnln train` (each run's config: `{budget.name}/runs/<variant>/seed<k>/config.yaml`);"
        f" evaluated with its final weights on Set5 and B100 (PSNR/SSIM on Y, {SCALE} pixels "
        f"cropped; LR tiles of {budget.eval_tile} overlapping by {budget.eval_overlap}, "
        "float32).",
        "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command or 'csnln ablate'}`"
        f" (torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} "
        "threads).",
        "",
        "Columns: parameters; forward MFLOP per LR pixel on a "
        f"{budget.eval_tile}x{budget.eval_tile} input; seconds per Set5 image at the "
        "evaluation's options (measured here, one variant after the other); PSNR as the mean "
        "over seeds ± half "
        "their range, SSIM as the mean; Δ: the difference of means to the reference "
        "(all three branches, projection, p = 3, the budget's depth), and whether it exceeds "
        "the larger of the two seed ranges.",
        "",
        "| variant | params | MFLOP / px | s / img | seeds | "
        + " | ".join(f"{s} PSNR | {s} SSIM" for s in sets)
        + " | "
        + " | ".join(f"Δ {s}" for s in sets)
        + " | reading |",
        "|---|---:|---:|---:|---:|" + "---:|---:|" * len(sets) + "---:|" * len(sets) + "---|",
    ]
    points: dict[str, tuple[float, float, float]] = {}
    curves: dict[str, list[tuple[float, float]]] = {}
    for variant, summary in summaries.items():
        model = variant.network(budget).eval()
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        mflop = mflop_per_pixel(model, budget.eval_tile)
        name = _short(variant, option, budget)
        if summary is None:
            lines.append(
                f"| {name} | {params:,} | {mflop:.2f} | | 0 | "
                + "not run yet | |" * len(sets)
                + " |" * len(sets)
                + " |"
            )
            continue
        seconds = (
            f"{seconds_per_image(model, set5, budget):.2f}"
            if timing and set5 and Path(set5).is_dir()
            else ""
        )
        cells = [
            f"{summary.psnr[s]:.3f} ± {summary.psnr_range[s] / 2:.3f} | {summary.ssim[s]:.4f}"
            for s in sets
        ]
        deltas, readings = [], []
        for s in sets:
            if reference is None or variant == REFERENCE.resolved(budget):
                deltas.append("—")
                continue
            delta = summary.psnr[s] - reference.psnr[s]
            noise = max(summary.psnr_range[s], reference.psnr_range[s])
            deltas.append(f"{delta:+.3f}")
            readings.append(f"{s}: {verdict(delta, noise, min(summary.seeds, reference.seeds))}")
        reading = "reference" if variant == REFERENCE.resolved(budget) else "; ".join(readings)
        lines.append(
            f"| {name} | {params:,} | {mflop:.2f} | {seconds} | {summary.seeds} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(deltas)
            + f" | {reading} |"
        )
        points[name] = (mflop, summary.psnr[sets[0]], summary.psnr_range[sets[0]])
        curves[name] = mean_curve(found[variant])
    if study == "depth":
        lines += _unroll_table(found, budget, sets)
    time_curves: dict[str, list[tuple[float, float]]] = {}
    if study == "width" and timing:
        section, time_curves = equal_time(found, budget, option)
        lines += section
    plots = []
    if any(curves.values()):
        line_chart(
            curves,
            folder / f"{study}_curves.png",
            title=f"{study}: Set5 x{SCALE} validation PSNR against steps (mean of seeds)",
        )
        scatter_chart(
            points,
            folder / f"{study}_cost.png",
            title=f"{study}: final Set5 x{SCALE} PSNR (bar: seed range) against cost",
            x_label=f"forward MFLOP per LR pixel ({budget.eval_tile}x{budget.eval_tile} input)",
        )
        plots = [
            "",
            f"![validation curves]({study}_curves.png)",
            "",
            f"![PSNR against cost]({study}_cost.png)",
        ]
    if any(time_curves.values()):
        line_chart(
            time_curves,
            folder / f"{study}_time.png",
            title=f"{study}: Set5 x{SCALE} validation PSNR against training time (mean of seeds)",
            x_label="training minutes (steps x the step cost measured here; CPU: core-minutes)",
        )
        plots += ["", f"![PSNR against training time]({study}_time.png)"]
    text = "\n".join(lines + plots) + "\n"
    return atomic_write(folder / f"{study}.md", lambda tmp: tmp.write_text(text))


def _short(variant: Variant, option: str, budget: Budget) -> str:
    if option == "n_feats":
        return f"n_feats {variant.width(budget)}"
    if option == "branches":
        return "+".join(variant.branches)
    if option == "fusion":
        return variant.fusion
    if option == "patch_size":
        return f"p = {variant.patch_size}"
    return f"{variant.depth} step{'s' if variant.depth != 1 else ''}"


def curve_at(curve: Sequence[tuple[float, float]], x: float) -> float | None:
    """``curve`` (increasing x) read at ``x`` by linear interpolation; None outside it."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1
    if curve and math.isclose(curve[-1][0], x):
        return curve[-1][1]
    return None


def equal_time(
    found: dict[Variant, list[RunResult]],
    budget: Budget,
    option: str,
    step_costs: dict[Variant, float] | None = None,
) -> tuple[list[str], dict[str, list[tuple[float, float]]]]:
    """The width study at equal training time: each variant's step cost measured here (CPU
    time, the variants taking turns, median of rounds), its validation curve put on that
    time axis, and each variant compared with the reference at the time the cheaper of the
    two finished.
    ``step_costs``: seconds per step given instead of measured."""
    from ..device import resolve_device

    target = resolve_device("auto")
    clock = clock_for(target)
    clock_name = "CPU" if target.type == "cpu" else "GPU"
    costs: dict[Variant, float] = {}
    curves: dict[Variant, list[tuple[float, float]]] = {}
    only_end: list[str] = []
    finished = [v for v, runs in found.items() if runs]
    # given: tests; measured: the variants taking turns (cost.step_costs)
    measured = step_costs or measure_step_costs(finished, budget, target, clock)
    for variant in finished:
        runs = found[variant]
        costs[variant] = measured[variant]
        curves[variant] = [(step * costs[variant] / 60, p) for step, p in mean_curve(runs)]
        # A curve validated as the final evaluation ends on the final Set5 score; one that
        # does not (runs validated with other tiles before the budget changed) cannot be
        # compared point by point: only its end, the final score, is kept.
        if any(not r.curve or abs(r.curve[-1][1] - r.psnr["Set5"]) > 0.01 for r in runs):
            final = statistics.fmean(r.psnr["Set5"] for r in runs)
            curves[variant] = [(budget.steps * costs[variant] / 60, final)]
            only_end.append(_short(variant, option, budget))
    reference = REFERENCE.resolved(budget)
    lines = [
        "",
        "## At equal training time",
        "",
        " ".join(
            [
                "The same runs on a time axis: each variant's training step (batch",
                f"{budget.batch}, LR patch {budget.patch}, {budget.precision}) timed here in",
                f"{clock_name} time (the variants taking turns, median of 5 rounds) times",
                "the steps. Each",
                "variant is compared with the reference at the time the cheaper of the two",
                "finished, both read off their Set5 validation curves (mean of seeds, linear",
                "between validations). Read with care: a curve read before its end is not",
                "annealed (its cosine learning rate is still high), so Δ favours the run that",
                "finished at that time: it understates a wider variant and overstates a",
                "narrower one.",
            ]
            + (
                [
                    f"Only the end (the final Set5 score) of {', '.join(only_end)}: its",
                    "validation curve was measured with other settings than the final",
                    "evaluation (see the study's runs), so a point along it is not comparable.",
                ]
                if only_end
                else []
            )
        ),
        "",
        f"| variant | s / step ({clock_name}) | min, the budget's steps | at min | Set5 there "
        "| reference there | Δ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant, cost in costs.items():
        name = _short(variant, option, budget)
        total = cost * budget.steps / 60
        cells = ["", "", "", ""]
        if reference in curves and variant != reference:
            when = min(curves[variant][-1][0], curves[reference][-1][0])
            mine, theirs = curve_at(curves[variant], when), curve_at(curves[reference], when)
            if mine is not None and theirs is not None:
                cells = [f"{when:.1f}", f"{mine:.3f}", f"{theirs:.3f}", f"{mine - theirs:+.3f}"]
            else:  # the time falls inside a curve kept only at its end
                cells = [f"{when:.1f}", "" if mine is None else f"{mine:.3f}"]
                cells += ["" if theirs is None else f"{theirs:.3f}", "no comparable point"]
        elif variant == reference:
            cells = ["—", "—", "—", "reference"]
        lines.append(f"| {name} | {cost:.3f} | {total:.1f} | " + " | ".join(cells) + " |")
    series = {_short(v, option, budget): c for v, c in curves.items()}
    return lines, series


def _unroll_table(
    found: dict[Variant, list[RunResult]], budget: Budget, sets: Sequence[str]
) -> list[str]:
    """Trained depth x test-time depth, PSNR (mean over seeds) per dataset, for both
    tails of :meth:`CSNLN.unrolled`."""
    lines = [
        "",
        "## The same weights, unrolled to other step counts at test time",
        "",
        "Each model trained with D steps (rows) run with D' steps (columns). PSNR mean over "
        "seeds; the diagonal (**bold**) is the model as trained. Two ways to give the tail "
        "(a conv over every step's features) D' steps (`CSNLN.unrolled`): *resample* its "
        "per-step weights along the steps, or *window*: run D' >= D steps and let the "
        "trained tail read the last D (the extra steps refine what it sees).",
    ]
    lines += _unroll_grid(found, budget, sets, "resample", lambda r: r.unroll)
    lines += _unroll_grid(found, budget, sets, "window", lambda r: r.unroll_window)
    return lines


def _unroll_grid(
    found: dict[Variant, list[RunResult]],
    budget: Budget,
    sets: Sequence[str],
    tail: str,
    pick: Callable[[RunResult], dict[int, dict[str, float]]],
) -> list[str]:
    lines: list[str] = []
    for s in [s for s in sets if s in budget.unroll_sets]:
        lines += [
            "",
            f"{s} x{SCALE}, tail *{tail}*:",
            "",
            "| trained \\ run with | " + " | ".join(f"{d}" for d in budget.unroll) + " |",
            "|---|" + "---:|" * len(budget.unroll),
        ]
        for variant, runs in found.items():
            runs = [r for r in runs if pick(r)]
            if not runs:
                continue
            cells = []
            for d in budget.unroll:
                grids = [pick(r) for r in runs]
                values = [g[d][s] for g in grids if s in g.get(d, {})]
                cell = f"{statistics.fmean(values):.3f}" if values else ""
                cells.append(f"**{cell}**" if d == variant.depth and cell else cell)
            lines.append(f"| {variant.depth} | " + " | ".join(cells) + " |")
    return lines
