"""Re-run the paper's ablations: train every variant of a study, evaluate, report.

  csnln ablate STUDY [--budget small|medium|paper|bundled] [--out DIR] [--resume] [--report]

Studies (x2; every variant trained from scratch with the same data, steps, schedule and
seeds, evaluated with its final weights on Set5 and B100):
  branches  every non-empty subset of local, in-scale and cross-scale attention (7)
  fusion    mutual-projected fusion vs concatenation (2)
  patch     matching patch size p = 1, 3, 5 (3)
  depth     SEM steps 1, 2, 4, 8 (12 at the larger budgets), and each trained model
            unrolled to other step counts at test time
  width     n_feats 8, 16, 32 (16, 32, 64 and 32, 64, 128 at the larger budgets), also
            compared at equal training time
  all       the five (the reference variant, in every study, trains once)
  attention does the attention pay at the size we ship: all three branches, local only,
            local only made wider to the same FLOPs per pixel (seeds 0 and 1), local +
            in-scale and local + cross-scale (seed 0); meant for --budget bundled
  window    the attention study's first three arms in the paper's window: LR patches of
            48, each fine-tuned 1,500 steps from its bundled-budget run (budget window48,
            the default for this study; those runs must be finished under DIR/bundled)

Budgets: small (n_feats 16, LR patch 16, 3000 steps, 2 seeds: about 10 minutes of training
per run of depth 4 and width 16 on one CPU thread; `csnln ablate all` is 30 runs), medium and
paper (for a GPU), bundled (the bundled x2's shape and recipe: n_feats 64, depth 1, 20,000
steps; validated on the held-out split of the training data, evaluated on Set5, Set14, B100
and SunHays80; about 10 CPU-hours for the attention study). What the pending runs will cost
is measured and printed before starting (--estimate: only that, per variant).

Writes DIR/<budget>/<study>.md with its plots (<study>_curves.png: Set5 validation PSNR
against steps; <study>_cost.png: final PSNR against MFLOP per pixel) and
DIR/<budget>/runs/<variant>/seed<k>/ (config.yaml, which `csnln train` re-runs; log.csv;
final.safetensors; result.json). Runs are resumable: stop with Ctrl-C, continue with
--resume. Two processes on the same DIR share the work (a run being trained is locked).
An existing report is not rewritten unless --overwrite is given.

Examples:
  csnln ablate fusion --steps 200             # a quick try of the whole path
  csnln ablate all --resume --threads 1       # the full small budget, resumable
  csnln ablate branches --report              # the report of the runs finished so far
  csnln ablate all --estimate --threads 1     # what the full budget costs on this machine
  csnln ablate attention --budget bundled --resume --threads 1  # run two, one per core
  csnln ablate attention --budget bundled --only L-projection-p3-d1/seed1 --estimate
  csnln ablate branches --report --out mine   # a report into another folder
  csnln ablate window --estimate --threads 1  # the paper's window: what it costs here
  csnln ablate window --resume --threads 1    # run two, one per core
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ablation import Budget

#: Where the data are by default, relative to the current directory (the project's layout,
#: beside ../shared).
DEFAULT_TRAIN_DIRS = ("../shared/data/train/*",)
DEFAULT_TRAIN_ROOT = "../shared/data/train"
DEFAULT_BENCHMARKS = "../shared/data/benchmark"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``csnln ablate``."""
    from ..ablation import BUDGETS, STUDIES

    parser.add_argument("study", choices=[*STUDIES, "all"], help="the study to run")
    parser.add_argument(
        "--budget",
        choices=list(BUDGETS),
        default=None,
        help="size and length of every run (default: window48 for the window study, small "
        "(for a CPU) for the others)",
    )
    parser.add_argument(
        "--out",
        default="ablations",
        metavar="DIR",
        help="where runs and reports go (default: ablations)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue unfinished runs from their last checkpoint (finished runs are always "
        "reused)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only write the report(s) from the runs finished so far; train nothing",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="only measure what the study costs here (a few timed steps, one validation and "
        "one evaluation per variant; a few seconds per variant) and print it per variant, "
        "in CPU-hours on a CPU; train nothing",
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="train nothing: finish the evaluations that finished runs lack (e.g. the depth "
        "study's unrolled models), skip unfinished runs, then write the reports",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="RUN",
        help="train only this run, in the order given (repeatable): a variant's folder name "
        "(all its seeds, e.g. LIC-projection-p3-d1) or one seed of it "
        "(LIC-projection-p3-d1/seed1); the report still covers every finished run",
    )
    parser.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help="train N steps instead of the budget's (its runs go to DIR/<budget>-<N>steps)",
    )
    parser.add_argument(
        "--train-data",
        action="append",
        metavar="GLOB",
        help=f"HR training folders (repeatable; default: {DEFAULT_TRAIN_DIRS[0]})",
    )
    parser.add_argument(
        "--benchmarks",
        default=DEFAULT_BENCHMARKS,
        metavar="DIR",
        help="folder holding the benchmark sets (Set5/, B100/; Set14/ and SunHays80/ for the "
        f"bundled budget; default: {DEFAULT_BENCHMARKS})",
    )
    parser.add_argument(
        "--train-root",
        default=DEFAULT_TRAIN_ROOT,
        metavar="DIR",
        help="the folder of the training folders, where the validation split of "
        "csnln.data.splits lies (budgets that validate on it: bundled; default: "
        f"{DEFAULT_TRAIN_ROOT})",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing reports (without it a report that exists is left as it is: "
        "the reports under ablations/ are the project's results)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="T",
        help="CPU threads (default: PyTorch's); two processes of one thread each use two "
        "cores better than one of two. Also the threads of the report's timings: give the "
        "runs' own (--report --threads 1) to time steps as they were trained",
    )
    parser.add_argument(
        "--no-timing",
        action="store_true",
        help="leave the seconds-per-image column empty (measure it on an idle machine)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``csnln ablate``; returns the exit status."""
    from ..ablation import (
        BUDGETS,
        PAPER_STUDIES,
        STUDY_BUDGETS,
        CostEstimate,
        Variant,
        estimate_cost,
        run_dir,
        run_study,
        select_runs,
        study_runs,
        write_attention_report,
        write_report,
    )

    budget = BUDGETS[args.budget or STUDY_BUDGETS.get(args.study, "small")]
    if args.steps is not None:
        if args.steps < 1:
            print(f"csnln ablate: --steps must be >= 1, got {args.steps}", file=sys.stderr)
            return 2
        budget = dataclasses.replace(
            budget,
            name=f"{budget.name}-{args.steps}steps",
            steps=args.steps,
            val_every=max(1, min(budget.val_every, args.steps // 4)),
        )
    studies = list(PAPER_STUDIES) if args.study == "all" else [args.study]
    command = "csnln ablate " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [args.study])

    def on_run(index: int, total: int, variant: Variant, seed: int, state: str) -> None:
        said = {
            "done": "finished earlier: reused",
            "training": "training and evaluating",
            "busy": "another process has it: skipped",
        }[state]
        print(f"[{index}/{total}] {variant.key} seed {seed}: {said}", file=sys.stderr)

    def on_variant(index: int, total: int, variant: Variant) -> None:
        print(f"  timing {variant.key} ({index}/{total})", file=sys.stderr)

    def estimate(runs: list[tuple[Variant, int]], verbose: bool) -> CostEstimate | None:
        try:
            return estimate_cost(
                runs,
                budget,
                benchmarks=args.benchmarks,
                threads=args.threads,
                device=args.device,
                on_variant=on_variant if verbose else None,
                train_root=args.train_root,
            )
        except (FileNotFoundError, ValueError) as exc:
            print(f"csnln ablate: {exc}", file=sys.stderr)
            return None

    def chosen_runs() -> list[tuple[Variant, int]]:
        runs = study_runs(studies, budget)
        return select_runs(runs, args.only) if args.only else runs

    try:
        chosen_runs()
    except ValueError as exc:
        print(f"csnln ablate: {exc}", file=sys.stderr)
        return 2

    if args.estimate:
        cost = estimate(chosen_runs(), verbose=True)
        if cost is None:
            return 2
        print(f"# Cost of `{command}` ({budget.name}: {budget.describe()})\n")
        print(cost.table())
        runs = sum(v.runs for v in cost.variants)
        print(f"\n{args.study}: {runs} runs, {cost.summary()}")
        return 0

    if not args.report and not args.evaluate_only:
        runs = chosen_runs()
        pending = [
            (v, s)
            for v, s in runs
            if not (run_dir(args.out, budget, v, s) / "result.json").is_file()
        ]
        if pending:
            cost = estimate(pending, verbose=False)
            if cost is None:
                return 2
            print(
                f"{args.study} at budget {budget.name}: {len(runs)} runs, {len(pending)} to "
                f"train; {cost.summary()}",
                file=sys.stderr,
            )

    if not args.report:
        try:
            run_study(
                studies,
                budget,
                args.out,
                train_dirs=args.train_data or DEFAULT_TRAIN_DIRS,
                train_root=args.train_root,
                benchmarks=args.benchmarks,
                resume=args.resume,
                device=args.device,
                threads=args.threads,
                on_run=on_run,
                train=not args.evaluate_only,
                only=args.only,
            )
        except KeyboardInterrupt:
            print("stopped; continue with --resume", file=sys.stderr)
            return 130
        except (FileNotFoundError, ValueError) as exc:
            print(f"csnln ablate: {exc}", file=sys.stderr)
            return 2
    if args.threads:  # the report's timings (seconds per image, step costs) too
        import torch

        torch.set_num_threads(args.threads)
    if args.study == "window":
        return _window_report(args, budget, command)
    for study in studies:
        report = write_attention_report if study == "attention" else write_report
        try:
            path = report(
                study,
                budget,
                args.out,
                benchmarks=args.benchmarks,
                command=command,
                timing=not args.no_timing,
                overwrite=args.overwrite,
            )
        except FileExistsError as exc:
            print(f"csnln ablate: {exc}", file=sys.stderr)
            continue
        print(f"wrote {path}")
    return 0


def _window_report(args: argparse.Namespace, budget: Budget, command: str) -> int:
    """The window study's report: every finished run of both studies (patches of 24 and of
    48) scored against the test window (:mod:`csnln.ablation.windows`)."""
    from pathlib import Path

    from ..ablation import BUDGETS, holdout_files, study_variants
    from ..ablation.runs import refuse_to_replace
    from ..ablation.windows import SweepPoint, write_window_report

    report = Path(args.out) / budget.name / "window.md"
    try:
        refuse_to_replace(report, args.overwrite)
    except FileExistsError as exc:
        print(f"csnln ablate: {exc}", file=sys.stderr)
        return 2

    def on_point(folder: str, name: str, window: int, point: SweepPoint) -> None:
        print(f"  {folder} {name} window {window or 'whole'}: {point}", file=sys.stderr)

    path = write_window_report(
        {"patch 24": BUDGETS["bundled"], "patch 48": budget},
        study_variants("window", budget),
        args.out,
        benchmarks=args.benchmarks,
        holdout=holdout_files(budget, args.train_root),
        command=command,
        report=report,
        on_point=on_point,
    )
    print(f"wrote {path}")
    return 0
