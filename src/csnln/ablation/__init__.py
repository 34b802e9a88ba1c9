"""The paper's ablations, re-run (``csnln ablate``): branches, fusion, matching patch, depth
and width, and at the size we ship, whether the attention pays.

A *study* is a list of *variants* of the network (one constructor option changed from the
reference: all three branches, mutual-projected fusion, p = 3, the budget's depth and width).
Every variant is trained from scratch with the same data, steps, schedule and seeds through
the training loop of ``csnln train`` (each run folder holds the ``config.yaml`` that ``csnln
train`` re-runs), evaluated at x2 with its final weights, and the study's report compares
them::

    from csnln.ablation import BUDGETS, run_study, write_report

    data = dict(train_dirs=["../shared/data/train/*"], benchmarks="../shared/data/benchmark")
    run_study("fusion", BUDGETS["small"], out="my_ablations", resume=True, **data)
    write_report("fusion", BUDGETS["small"], out="my_ablations")  # my_ablations/small/fusion.md

Runs are keyed by what they train (variant, budget, seed), so the reference, which is in
every study, trains once; a finished run (its ``result.json``) is reused; an unfinished one
continues from its last checkpoint with ``resume=True``; a run another process is training
(its lock file) is left to it, so two processes on one study share its runs.

Modules: :mod:`.studies` (budgets, variants, studies), :mod:`.runs` (one run, its lock and
result), :mod:`.cost` (estimates, FLOP and seconds), :mod:`.orchestration` (a study to the
end), :mod:`.report` (tables and plots). The depth study also unrolls each trained model to
other step counts at test time (the SEM weights are shared across steps; see
:meth:`csnln.CSNLN.unrolled`).
"""

from .cost import (
    CostEstimate,
    VariantCost,
    estimate_cost,
    seconds_per_image,
    step_seconds,
)
from .orchestration import holdout_files, load_results, run_study
from .report import Summary, curve_at, equal_time, summarise, verdict, write_report
from .runs import RunResult, eval_options, run_dir, run_one, train_config
from .shipped import per_image_gains, write_attention_report
from .studies import (
    BUDGETS,
    EVAL_SETS,
    HOLDOUT,
    PAPER_STUDIES,
    REFERENCE,
    SCALE,
    STUDIES,
    STUDY_BUDGETS,
    Budget,
    Variant,
    matched_local_width,
    mflop_per_pixel,
    select_runs,
    study_runs,
    study_variants,
    variant_seeds,
)

__all__ = [
    "BUDGETS",
    "EVAL_SETS",
    "HOLDOUT",
    "PAPER_STUDIES",
    "REFERENCE",
    "SCALE",
    "STUDIES",
    "STUDY_BUDGETS",
    "Budget",
    "CostEstimate",
    "RunResult",
    "Summary",
    "Variant",
    "VariantCost",
    "estimate_cost",
    "eval_options",
    "holdout_files",
    "load_results",
    "matched_local_width",
    "mflop_per_pixel",
    "run_dir",
    "run_one",
    "run_study",
    "select_runs",
    "seconds_per_image",
    "step_seconds",
    "study_runs",
    "study_variants",
    "summarise",
    "train_config",
    "variant_seeds",
    "verdict",
    "per_image_gains",
    "write_attention_report",
    "write_report",
    "curve_at",
    "equal_time",
]
