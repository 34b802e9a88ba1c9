"""A study run to the end: every pending run trained and evaluated in order, finished runs
reused, and the finished runs read back for the report."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

from .runs import RunResult, check_benchmarks, run_dir, run_one
from .studies import Budget, Variant, holdout_files, select_runs, study_runs, study_variants

log = logging.getLogger("csnln.ablation")
PathArg = str | PathLike[str]


def _check_data(train_dirs: Sequence[str], eval_sets: Sequence[str]) -> None:
    import glob

    if not any(glob.glob(pattern) for pattern in train_dirs):
        raise FileNotFoundError(
            f"no training folder matches {', '.join(train_dirs)} (give --train-data)"
        )
    check_benchmarks(eval_sets)


def run_study(
    studies: str | Sequence[str],
    budget: Budget,
    out: PathArg = "ablations",
    *,
    train_dirs: Sequence[str],
    benchmarks: PathArg,
    resume: bool = False,
    device: str = "auto",
    threads: int = 0,
    on_run: Callable[[int, int, Variant, int, str], None] | None = None,
    train: bool = True,
    train_root: PathArg | None = None,
    only: Sequence[str] | None = None,
) -> list[RunResult]:
    """Train and evaluate every run of ``studies`` not finished yet (see the module doc);
    with ``train=False``, only finish the evaluations of finished runs (the unrolled models
    of the depth study) and skip the rest.

    ``on_run(index, total, variant, seed, state)`` is told of each run ("done", "training",
    "busy": another process has it). ``only`` runs just the named runs, in that order (see
    :func:`~csnln.ablation.studies.select_runs`). Returns the results of the runs finished so far.
    """
    names = [studies] if isinstance(studies, str) else list(studies)
    eval_sets = [str(Path(benchmarks) / name) for name in budget.eval_sets]
    holdout = holdout_files(budget, train_root)
    _check_data(train_dirs, eval_sets + holdout)
    runs = study_runs(names, budget)
    if only:
        runs = select_runs(runs, only)
    depth_variants = set(study_variants("depth", budget)) if "depth" in names else set()
    results = []
    for index, (variant, seed) in enumerate(runs, 1):
        done = (run_dir(out, budget, variant, seed) / "result.json").is_file()
        unroll = variant in depth_variants
        if on_run is not None and (done or train):
            on_run(index, len(runs), variant, seed, "done" if done else "training")
        result = run_one(
            variant,
            seed,
            budget,
            out,
            train_dirs=train_dirs,
            eval_sets=eval_sets,
            resume=resume,
            device=device,
            threads=threads,
            unroll=unroll,
            train=train,
            holdout=holdout,
        )
        if result is None and not train:
            continue
        if result is None:
            if on_run is not None:
                on_run(index, len(runs), variant, seed, "busy")
            continue
        results.append(result)
    return results


def load_results(out: PathArg, budget: Budget, study: str) -> dict[Variant, list[RunResult]]:
    """The finished runs of ``study`` (variant -> its seeds' results, maybe empty)."""
    found: dict[Variant, list[RunResult]] = {}
    for variant in study_variants(study, budget):
        found[variant] = []
        for seed in budget.seeds:
            path = run_dir(out, budget, variant, seed) / "result.json"
            if path.is_file():
                found[variant].append(RunResult.from_json(json.loads(path.read_text())))
    return found
