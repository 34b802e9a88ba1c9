"""The paper's ablations, re-run (``csnln ablate``): branches, fusion, matching patch, depth,
and width.

A *study* is a list of *variants* of the network (one constructor option changed from the
reference: all three branches, mutual-projected fusion, p = 3, the budget's depth and width). Every
variant is trained from scratch with the same data, steps, schedule and seeds through the
training loop of ``csnln train`` (each run folder holds the ``config.yaml`` that ``csnln
train`` re-runs), evaluated at x2 on Set5 and B100 with its final weights, and the study's
report compares them::

    from csnln.ablation import BUDGETS, run_study, write_report

    run_study("fusion", BUDGETS["small"], out="ablations", resume=True)
    write_report("fusion", BUDGETS["small"], out="ablations")   # ablations/small/fusion.md

Runs are keyed by what they train (variant, budget, seed), so the reference, which is in
every study, trains once; a finished run (its ``result.json``) is reused; an unfinished one
continues from its last checkpoint with ``resume=True``; a run another process is training
(its lock file) is left to it, so two processes on one study share its runs.

The depth study also unrolls each trained model to other step counts at test time (the SEM
weights are shared across steps; see :meth:`csnln.CSNLN.unrolled`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write
from .models.network import CSNLN
from .models.sem import BRANCHES

__all__ = [
    "BUDGETS",
    "STUDIES",
    "Budget",
    "RunResult",
    "Variant",
    "CostEstimate",
    "estimate_cost",
    "run_study",
    "study_runs",
    "study_variants",
    "write_report",
]

log = logging.getLogger("csnln.ablation")
PathArg = str | PathLike[str]

#: Where the data are by default, relative to the current directory (the project's layout).
DEFAULT_TRAIN_DIRS = ("../shared/data/train/*",)
DEFAULT_BENCHMARKS = "../shared/data/benchmark"
#: The folder holding the training folders, where the validation split lies
#: (:mod:`csnln.data.splits`).
DEFAULT_TRAIN_ROOT = "../shared/data/train"
EVAL_SETS = ("Set5", "B100")
HOLDOUT = "holdout"
SCALE = 2
SHORT = {"local": "L", "in_scale": "I", "cross_scale": "C"}


@dataclass(frozen=True)
class Budget:
    """How big and how long every run of a study is."""

    name: str
    n_feats: int
    depth: int  # the reference depth; the depth study varies it
    patch: int  # LR training crop
    batch: int
    steps: int
    lr: float
    seeds: tuple[int, ...]
    depths: tuple[int, ...]  # the depth study's trained step counts
    widths: tuple[int, ...]  # the width study's n_feats
    unroll: tuple[int, ...]  # the step counts each depth-study model is run with at test time
    val_every: int
    precision: str = "bf16"
    # LR tile of the final evaluation, and the input size at which MFLOP per LR pixel are
    # counted (the attentions' cost per pixel grows with the piece the network sees).
    eval_tile: int = 32
    eval_overlap: int = 8
    unroll_sets: tuple[str, ...] = ("Set5", "B100")  # where the unrolled models are measured
    # The sets every final model is evaluated on; the first is also the validation set unless
    # ``validation`` is HOLDOUT: the validation split of the training data, never trained on.
    eval_sets: tuple[str, ...] = EVAL_SETS
    validation: str = "Set5"

    def describe(self) -> str:
        return (
            f"n_feats {self.n_feats}, depth {self.depth}, LR patch {self.patch} x batch "
            f"{self.batch}, {self.steps:,} steps (Adam, cosine {self.lr:g} -> "
            f"{self.lr / 100:g}, 200 warm-up steps, gradient clip 1), {self.precision}, "
            f"seeds {', '.join(map(str, self.seeds))}"
        )


BUDGETS: dict[str, Budget] = {
    # 2 CPU cores: about 10 minutes of training per run at depth 4 (one thread).
    "small": Budget(
        "small", n_feats=16, depth=4, patch=16, batch=16, steps=3000, lr=5e-4, seeds=(0, 1),
        depths=(1, 2, 4, 8), widths=(8, 16, 32), unroll=(1, 2, 4, 8, 12), val_every=500,
        unroll_sets=("Set5",),
    ),
    # One GPU, a few hours for all studies.
    "medium": Budget(
        "medium", n_feats=32, depth=4, patch=32, batch=16, steps=20_000, lr=3e-4,
        seeds=(0, 1), depths=(1, 2, 4, 8, 12), widths=(16, 32, 64),
        unroll=(1, 2, 4, 8, 12, 16), val_every=1000,
    ),
    # The paper's network and crop on GPUs (its 1M steps cut to 100k).
    "paper": Budget(
        "paper", n_feats=128, depth=12, patch=48, batch=16, steps=100_000, lr=1e-4,
        seeds=(0, 1), depths=(1, 2, 4, 8, 12), widths=(32, 64, 128),
        unroll=(1, 2, 4, 8, 12, 16), val_every=5000, eval_tile=64, eval_overlap=16,
    ),
    # The bundled x2's shape and recipe (n_feats 64, one SEM step), validated on the held-out
    # split of the training data, evaluated on four sets (SunHays80: scenes full of repeated
    # structure). 2 CPU cores: about an hour of training per run at one thread.
    "bundled": Budget(
        "bundled", n_feats=64, depth=1, patch=24, batch=8, steps=20_000, lr=2e-4,
        seeds=(0, 1), depths=(1,), widths=(64,), unroll=(1,), val_every=2000,
        unroll_sets=(), eval_sets=("Set5", "Set14", "B100", "SunHays80"), validation=HOLDOUT,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One network of a study: what differs from the reference."""

    branches: tuple[str, ...] = BRANCHES
    fusion: str = "projection"
    patch_size: int = 3
    depth: int | None = None  # None: the budget's
    # None: the budget's. Resolved to None when it equals the budget's, so that the reference
    # of the width study is the reference of the others (and keeps its run folder).
    n_feats: int | None = None

    def resolved(self, budget: Budget) -> Variant:
        n_feats = None if self.n_feats == budget.n_feats else self.n_feats
        return dataclasses.replace(self, depth=self.depth or budget.depth, n_feats=n_feats)

    def width(self, budget: Budget) -> int:
        return self.n_feats or budget.n_feats

    def network(self, budget: Budget) -> CSNLN:
        """A freshly initialised network of this variant."""
        return CSNLN(
            SCALE,
            self.width(budget),
            self.depth or budget.depth,
            branches=self.branches,
            fusion=self.fusion,
            patch_size=self.patch_size,
        )

    @property
    def key(self) -> str:
        """A folder name: ``LIC-projection-p3-d4`` (``-f32`` added when the width is not
        the budget's)."""
        branches = "".join(SHORT[b] for b in self.branches)
        width = f"-f{self.n_feats}" if self.n_feats else ""
        return f"{branches}-{self.fusion}-p{self.patch_size}-d{self.depth}{width}"

    @property
    def label(self) -> str:
        width = f", n_feats {self.n_feats}" if self.n_feats else ""
        return (
            f"{'+'.join(self.branches)}, {self.fusion}, p={self.patch_size}, "
            f"{self.depth} step{'s' if self.depth != 1 else ''}{width}"
        )


def _branch_subsets() -> list[Variant]:
    subsets = [c for k in (1, 2, 3) for c in combinations(BRANCHES, k)]
    return [Variant(branches=s) for s in subsets]


#: study -> (question, the variants as a function of the budget, the option it varies).
STUDIES: dict[str, tuple[str, Callable[[Budget], list[Variant]], str]] = {
    "branches": (
        "Which of the three branches help: every non-empty subset of local, in-scale and "
        "cross-scale attention.",
        lambda budget: _branch_subsets(),
        "branches",
    ),
    "fusion": (
        "Mutual-projected fusion against concatenation (all three branches).",
        lambda budget: [Variant(fusion="projection"), Variant(fusion="concat")],
        "fusion",
    ),
    "patch": (
        "The matching patch size p of the attentions.",
        lambda budget: [Variant(patch_size=p) for p in (1, 3, 5)],
        "patch_size",
    ),
    "depth": (
        "How many recurrent SEM steps are worth having, and whether a model trained with D "
        "steps gains from being run with more or fewer.",
        lambda budget: [Variant(depth=d) for d in budget.depths],
        "depth",
    ),
    "attention": (
        "Does the attention pay at the size we ship: the bundled cell (all three branches) "
        "against local only, local only at the bundled cell's cost (wider, same FLOPs per "
        "pixel within 10%), and each non-local branch alone with the local one.",
        lambda budget: [
            Variant(),
            Variant(branches=("local",)),
            Variant(branches=("local",), n_feats=matched_local_width(budget)),
            Variant(branches=("local", "in_scale")),
            Variant(branches=("local", "cross_scale")),
        ],
        "branches",
    ),
    "width": (
        "How wide the network should be (n_feats, the channels of every layer), at the same "
        "steps, and which width is ahead at equal training time.",
        lambda budget: [Variant(n_feats=f) for f in budget.widths],
        "n_feats",
    ),
}
REFERENCE = Variant()
#: Studies whose variants other than these need one seed only (the rest: the budget's seeds).
_ALL_SEEDS: dict[str, Callable[[Budget], list[Variant]]] = {
    "attention": lambda budget: [
        Variant(),
        Variant(branches=("local",)),
        Variant(branches=("local",), n_feats=matched_local_width(budget)),
    ],
}
#: The studies of the paper (``csnln ablate all``).
PAPER_STUDIES = ("branches", "fusion", "patch", "depth", "width")


def matched_local_width(budget: Budget) -> int:
    """The even n_feats at which the local-only cell's forward FLOPs per LR pixel at the
    budget's evaluation tile come closest to the reference's (all three branches; torch's
    FLOP counter). At the bundled budget: 86 (2.42 against 2.46 MFLOP/px)."""
    return _matched_local_width(budget.n_feats, budget.depth, budget.eval_tile)


@functools.cache
def _matched_local_width(n_feats: int, depth: int, tile: int) -> int:
    target = mflop_per_pixel(CSNLN(SCALE, n_feats, depth), tile)
    widths = range(n_feats + 2, 2 * n_feats + 1, 2)
    costs = {w: mflop_per_pixel(CSNLN(SCALE, w, depth, branches=("local",)), tile) for w in widths}
    return min(costs, key=lambda w: abs(costs[w] - target))


def study_variants(study: str, budget: Budget) -> list[Variant]:
    """The variants of ``study`` at ``budget``, each with its depth resolved."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}; the studies: {', '.join(STUDIES)}")
    return [v.resolved(budget) for v in STUDIES[study][1](budget)]


def variant_seeds(study: str, variant: Variant, budget: Budget) -> tuple[int, ...]:
    """The seeds ``study`` trains ``variant`` with: the budget's, or its first only where the
    study says so (the attention study's single-branch additions)."""
    if study in _ALL_SEEDS:
        wanted = [v.resolved(budget) for v in _ALL_SEEDS[study](budget)]
        if variant not in wanted:
            return budget.seeds[:1]
    return budget.seeds


def study_runs(studies: Sequence[str], budget: Budget) -> list[tuple[Variant, int]]:
    """Every (variant, seed) the studies need, each once: the first seed of every variant,
    then the second, so that a study cut short has every variant once."""
    variants: list[Variant] = []
    seeds: dict[Variant, set[int]] = {}
    for study in studies:
        for v in study_variants(study, budget):
            if v not in variants:
                variants.append(v)
            seeds.setdefault(v, set()).update(variant_seeds(study, v, budget))
    return [(v, seed) for seed in budget.seeds for v in variants if seed in seeds[v]]


# --- one run ---------------------------------------------------------------------------------


@dataclass
class RunResult:
    """What a finished run measured (its ``result.json``)."""

    variant: Variant
    seed: int
    psnr: dict[str, float]  # dataset -> mean PSNR (Y, x2)
    ssim: dict[str, float]
    unroll: dict[int, dict[str, float]]  # test-time depth -> dataset -> PSNR
    curve: list[tuple[int, float]]  # (step, Set5 validation PSNR)
    train_seconds: float
    # test-time depth (>= the trained one) -> dataset -> PSNR, the trained tail on the last
    # steps (CSNLN.unrolled(tail="window"))
    unroll_window: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    # Process CPU time (core-seconds) of training and evaluating it, when one process did all
    # of it (None: resumed, or finished before this was recorded)
    cpu_seconds: float | None = None
    # dataset -> image name -> PSNR (Y, x2) of the final weights
    per_image: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["variant"] = dataclasses.asdict(self.variant)
        data["unroll"] = {str(k): v for k, v in self.unroll.items()}
        data["unroll_window"] = {str(k): v for k, v in self.unroll_window.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunResult:
        variant = data["variant"]
        return cls(
            variant=Variant(**(variant | {"branches": tuple(variant["branches"])})),
            seed=int(data["seed"]),
            psnr=data["psnr"],
            ssim=data["ssim"],
            unroll={int(k): v for k, v in data["unroll"].items()},
            curve=[(int(s), float(p)) for s, p in data["curve"]],
            train_seconds=float(data["train_seconds"]),
            unroll_window={int(k): v for k, v in data.get("unroll_window", {}).items()},
            cpu_seconds=data.get("cpu_seconds"),
            per_image=data.get("per_image", {}),
        )


def run_dir(out: PathArg, budget: Budget, variant: Variant, seed: int) -> Path:
    return Path(out) / budget.name / "runs" / variant.key / f"seed{seed}"


def train_config(
    variant: Variant,
    seed: int,
    budget: Budget,
    folder: Path,
    *,
    train_dirs: Sequence[str],
    val_dir: str | Sequence[str],
    device: str,
    threads: int,
    exclude: Sequence[str] = (),
) -> Any:
    """The ``csnln train`` config of one run (also written to its folder as config.yaml)."""
    from .training import TrainConfig

    return TrainConfig.from_dict(
        {
            "name": f"{variant.key}-seed{seed}",
            "output_dir": str(folder),
            "seed": seed,
            "model": {
                "scale": SCALE,
                "n_feats": variant.width(budget),
                "depth": variant.depth,
                "branches": list(variant.branches),
                "fusion": variant.fusion,
                "patch_size": variant.patch_size,
            },
            "data": {
                "train_dirs": list(train_dirs),
                "patch_size": budget.patch,
                "batch_size": budget.batch,
                "workers": 0,
                **({"exclude": list(exclude)} if exclude else {}),
            },
            "optim": {
                "lr": budget.lr,
                "schedule": "cosine",
                "min_lr": budget.lr / 100,
                "warmup_steps": 200,
                "grad_clip": 1.0,
            },
            "train": {
                "steps": budget.steps,
                "device": device,
                "precision": budget.precision,
                "threads": threads,
            },
            # Validation as the final evaluation runs (its last point is the final Set5
            # score); it neither trains nor selects, so it cannot change a run's result.
            "val": {
                "dirs": [val_dir] if isinstance(val_dir, str) else list(val_dir),
                "every": budget.val_every,
                "precision": "fp32",
                "tile": budget.eval_tile,
                "tile_overlap": budget.eval_overlap,
            },
            # The final weights are the result (no selection on the test sets).
            "checkpoint": {"every": budget.val_every, "keep_last": 1, "keep_best": False},
            "log": {"every": 50, "progress": sys.stderr.isatty()},
        },
        source=f"ablation run {variant.key} seed {seed}",
    )


@contextlib.contextmanager
def _claim(folder: Path) -> Iterator[bool]:
    """Hold ``folder/.lock`` while training: yields False when a live process holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(lock.read_text() or 0)
            os.kill(pid, 0)
            yield False  # alive: its run
            return
        except (ValueError, ProcessLookupError):
            lock.unlink(missing_ok=True)  # a crashed process's lock
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except PermissionError:
            yield False
            return
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield True
    finally:
        lock.unlink(missing_ok=True)


def eval_options(budget: Budget) -> Any:
    from .inference import RunOptions

    return RunOptions(precision="fp32", tile=budget.eval_tile, tile_overlap=budget.eval_overlap)


def _evaluate(model: CSNLN, sets: Sequence[str], budget: Budget) -> dict[str, tuple[float, float]]:
    return {name: (p, s) for name, (p, s, _) in _evaluate_images(model, sets, budget).items()}


def _evaluate_images(
    model: CSNLN, sets: Sequence[str], budget: Budget
) -> dict[str, tuple[float, float, dict[str, float]]]:
    """dataset -> (PSNR, SSIM, image name -> PSNR)."""
    from .evaluation import evaluate

    results = evaluate(model, list(sets), SCALE, eval_options(budget), progress=False)
    return {r.dataset: (r.psnr, r.ssim, {i.name: i.psnr for i in r.per_image}) for r in results}


def run_one(
    variant: Variant,
    seed: int,
    budget: Budget,
    out: PathArg,
    *,
    train_dirs: Sequence[str],
    eval_sets: Sequence[str],
    resume: bool,
    device: str = "auto",
    threads: int = 0,
    unroll: bool = False,
    train: bool = True,
    holdout: Sequence[str] = (),
) -> RunResult | None:
    """Train and evaluate one run; its result (None: another process is training it, or
    ``train`` is False and it was never finished)."""
    from .training import run_training, validation_curve
    from .zoo import load_model

    folder = run_dir(out, budget, variant, seed)
    result_file = folder / "result.json"
    done = (
        RunResult.from_json(json.loads(result_file.read_text())) if result_file.is_file() else None
    )
    if done is not None and (not unroll or (done.unroll and done.unroll_window)):
        return done
    if done is None and not train:
        return None
    with _claim(folder) as mine:
        if not mine:
            return None
        if threads:
            torch.set_num_threads(threads)
        if done is not None:  # trained and evaluated: only unrolled models are missing
            model = load_model(folder / "final.safetensors")
            assert isinstance(model, CSNLN)
            result = dataclasses.replace(
                done,
                unroll=done.unroll or _unrolled_scores(model, eval_sets, budget, "resample"),
                unroll_window=done.unroll_window
                or _unrolled_scores(model, eval_sets, budget, "window"),
            )
        else:
            config = train_config(
                variant,
                seed,
                budget,
                folder,
                train_dirs=train_dirs,
                val_dir=holdout or eval_sets[0],
                device=device,
                threads=threads,
                exclude=holdout,
            )
            started, cpu_started = time.perf_counter(), time.process_time()
            resumed = resume and any((folder / "checkpoints").glob("*.safetensors"))
            trained = run_training(config, resume=resume)
            if not trained.finished:
                raise KeyboardInterrupt  # stopped by a signal: its checkpoint is on disk
            seconds = _train_seconds(folder, time.perf_counter() - started)
            model = load_model(trained.weights)
            assert isinstance(model, CSNLN)
            if threads:
                torch.set_num_threads(threads)
            scores = _evaluate_images(model.eval(), eval_sets, budget)
            result = RunResult(
                variant=variant,
                seed=seed,
                psnr={name: p for name, (p, _, _) in scores.items()},
                ssim={name: s for name, (_, s, _) in scores.items()},
                unroll=_unrolled_scores(model, eval_sets, budget, "resample") if unroll else {},
                curve=validation_curve(folder),
                train_seconds=seconds,
                unroll_window=_unrolled_scores(model, eval_sets, budget, "window")
                if unroll
                else {},
                cpu_seconds=None if resumed else time.process_time() - cpu_started,
                per_image={name: images for name, (_, _, images) in scores.items()},
            )
        text = json.dumps(result.to_json(), indent=1)
        atomic_write(result_file, lambda tmp: tmp.write_text(text))
        # A finished run keeps its final weights, log and result; its training checkpoints
        # (weights + optimizer state) would only let it train on, which a study never does.
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        return result


def _unrolled_scores(
    model: CSNLN, eval_sets: Sequence[str], budget: Budget, tail: str
) -> dict[int, dict[str, float]]:
    """PSNR of ``model`` run with each of the budget's test-time step counts (with
    ``tail="window"``, those at least its own)."""
    sets = [s for s in eval_sets if Path(s).name in budget.unroll_sets]
    scores: dict[int, dict[str, float]] = {}
    for depth in budget.unroll:
        if tail == "window" and depth < model.depth:
            continue
        unrolled = model if depth == model.depth else model.unrolled(depth, tail=tail)
        scores[depth] = {
            name: p for name, (p, _) in _evaluate(unrolled.eval(), sets, budget).items()
        }
    return scores


def _train_seconds(folder: Path, fallback: float) -> float:
    """Training time of the whole run, across resumes: the sum of its log's step times."""
    import csv

    path = folder / "log.csv"
    if not path.is_file():
        return fallback
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    total, previous = 0.0, 0
    for row in rows:
        step, rate = int(row.get("step") or 0), row.get("it_s") or ""
        if rate and float(rate) > 0:
            total += (step - previous) / float(rate)
        previous = step
    return total or fallback


# --- a study ---------------------------------------------------------------------------------


def holdout_files(budget: Budget, train_root: PathArg) -> list[str]:
    """The validation split's files when the budget validates on it, else []."""
    from .data.splits import validation_files

    return validation_files(train_root) if budget.validation == HOLDOUT else []


def _check_benchmarks(eval_sets: Sequence[str]) -> None:
    for folder in eval_sets:
        if not Path(folder).exists():
            raise FileNotFoundError(f"benchmark folder {folder} not found (give --benchmarks)")


def _check_data(train_dirs: Sequence[str], eval_sets: Sequence[str]) -> None:
    import glob

    if not any(glob.glob(pattern) for pattern in train_dirs):
        raise FileNotFoundError(
            f"no training folder matches {', '.join(train_dirs)} (give --train-data)"
        )
    _check_benchmarks(eval_sets)


@dataclass(frozen=True)
class VariantCost:
    """What one run of a variant costs, in seconds of the clock :func:`estimate_cost` used."""

    variant: Variant
    runs: int  # how many of the estimated runs are this variant's
    step: float  # one training step: forward, backward, gradient clip, Adam
    validation: float  # one validation pass (Set5, as the final evaluation runs)
    validations: int  # per run
    evaluation: float  # the final evaluation (Set5 and B100) and, for the depth study, the
    # unrolled models


@dataclass(frozen=True)
class CostEstimate:
    """The cost of a set of runs, by variant; ``clock`` says what the seconds are."""

    budget: Budget
    clock: str  # "CPU" (process CPU time: core-seconds) or "GPU" (wall time on a GPU)
    variants: list[VariantCost]

    @property
    def training(self) -> float:
        return sum(v.step * self.budget.steps * v.runs for v in self.variants)

    @property
    def validation(self) -> float:
        return sum(v.validation * v.validations * v.runs for v in self.variants)

    @property
    def evaluation(self) -> float:
        return sum(v.evaluation * v.runs for v in self.variants)

    @property
    def total(self) -> float:
        return self.training + self.validation + self.evaluation

    def summary(self) -> str:
        return (
            f"about {self.total / 3600:.1f} {self.clock}-hours "
            f"(training {self.training / 3600:.1f}, validation {self.validation / 3600:.1f}, "
            f"evaluation {self.evaluation / 3600:.1f})"
        )

    def table(self) -> str:
        """A Markdown table, one row per variant."""
        steps = self.budget.steps
        lines = [
            f"| variant | runs | s / step | training h | validation h | evaluation h | "
            f"{self.clock}-h |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            run = v.step * steps + v.validation * v.validations + v.evaluation
            lines.append(
                f"| {v.variant.key} | {v.runs} | {v.step:.3f} | "
                f"{v.step * steps * v.runs / 3600:.2f} | "
                f"{v.validation * v.validations * v.runs / 3600:.2f} | "
                f"{v.evaluation * v.runs / 3600:.2f} | "
                f"{run * v.runs / 3600:.2f} |"
            )
        lines.append(
            f"| **total** | {sum(v.runs for v in self.variants)} | | "
            f"{self.training / 3600:.2f} | {self.validation / 3600:.2f} | "
            f"{self.evaluation / 3600:.2f} | **{self.total / 3600:.2f}** |"
        )
        return "\n".join(lines)


def _clock(device: torch.device) -> Callable[[], float]:
    """Process CPU time on a CPU (core-seconds: what 'CPU-hours' count, and unaffected by
    waiting for a busy core); wall time after a synchronize on a GPU."""
    if device.type == "cuda":

        def wall() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return wall
    return time.process_time


def _lr_pixels(folder: str) -> int:
    """LR pixels of a benchmark folder at x2 (from the image headers)."""
    from PIL import Image

    from .evaluation import find_dataset

    total = 0
    for entry in find_dataset(folder, SCALE):
        with Image.open(entry.hr_path) as image:
            width, height = image.size
        total += (width // SCALE) * (height // SCALE)
    return total


def _validations(budget: Budget) -> int:
    """Validation passes of one run (every ``val_every`` steps and at the end)."""
    every = budget.val_every
    return budget.steps // every + (budget.steps % every != 0) if every else 1


def step_seconds(
    model: CSNLN,
    budget: Budget,
    target: torch.device,
    clock: Callable[[], float],
    timed_steps: int = 4,
) -> float:
    """Seconds of ``clock`` per full training step of ``model`` at the budget's batch and
    patch (random data: forward, backward, clip, Adam), after one untimed step."""
    from .device import precision_context
    from .training.schedule import l1_loss

    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr)
    lr = torch.rand(budget.batch, 3, budget.patch, budget.patch, device=target)
    hr = torch.rand(budget.batch, 3, SCALE * budget.patch, SCALE * budget.patch, device=target)
    began = 0.0
    for i in range(timed_steps + 1):
        if i == 1:
            began = clock()
        with precision_context(budget.precision, target):
            sr = model(lr)
        l1_loss(sr.float(), hr).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (clock() - began) / timed_steps


def estimate_cost(
    runs: Sequence[tuple[Variant, int]],
    budget: Budget,
    *,
    benchmarks: PathArg = DEFAULT_BENCHMARKS,
    threads: int = 0,
    device: str = "auto",
    timed_steps: int = 4,
    on_variant: Callable[[int, int, Variant], None] | None = None,
    train_root: PathArg = DEFAULT_TRAIN_ROOT,
) -> CostEstimate:
    """The cost of ``runs``, measured per variant: ``timed_steps`` full training steps
    (random patches of the budget's size: forward, backward, clip, Adam; after one untimed
    step) and one evaluation on Set5; a validation pass and the other sets' evaluations are
    scaled from it by LR pixels, an unrolled model's by its FLOP.

    On a CPU the clock is the process's CPU time, so the figure is core-hours whatever else
    the machine is doing (contention for caches and memory still shows)."""
    from .device import resolve_device
    from .evaluation import evaluate

    target = resolve_device(device)
    clock = _clock(target)
    set5 = str(Path(benchmarks) / "Set5")
    sets = [str(Path(benchmarks) / name) for name in budget.eval_sets]
    validation_set = holdout_files(budget, train_root) or sets[:1]
    _check_benchmarks([set5, *sets, *validation_set])
    set5_pixels = _lr_pixels(set5)
    eval_ratio = sum(_lr_pixels(s) for s in sets) / set5_pixels
    validation_ratio = sum(_lr_pixels(s) for s in validation_set) / set5_pixels
    b100 = str(Path(benchmarks) / "B100")
    b100_ratio = _lr_pixels(b100) / set5_pixels if "B100" in budget.unroll_sets else 0.0
    depth_variants = set(study_variants("depth", budget))
    counts: dict[Variant, int] = {}
    for variant, _ in runs:
        counts[variant] = counts.get(variant, 0) + 1
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    costs = []
    try:
        for index, variant in enumerate(counts, 1):
            if on_variant is not None:
                on_variant(index, len(counts), variant)
            torch.manual_seed(0)
            model = variant.network(budget).to(target)
            step = step_seconds(model, budget, target, clock, timed_steps)
            model.eval()

            # A validation pass runs as the final evaluation does (see train_config).
            began = clock()
            evaluate(model, [set5], SCALE, eval_options(budget), progress=False)
            final_set5 = clock() - began
            validation = final_set5 * validation_ratio
            evaluation = final_set5 * eval_ratio
            if variant in depth_variants:
                unroll_share = 1 + b100_ratio
                own = mflop_per_pixel(model, budget.eval_tile)
                for depth in budget.unroll:
                    tails = 1 + (depth >= variant.depth)  # resampled; trained tail on last steps
                    unrolled = model if depth == variant.depth else model.unrolled(depth)
                    share = mflop_per_pixel(unrolled, budget.eval_tile) / own
                    evaluation += final_set5 * unroll_share * share * tails
            costs.append(
                VariantCost(
                    variant=variant,
                    runs=counts[variant],
                    step=step,
                    validation=validation,
                    validations=_validations(budget),
                    evaluation=evaluation,
                )
            )
    finally:
        torch.set_num_threads(saved)
    clock_name = "CPU" if target.type == "cpu" else "GPU"
    return CostEstimate(budget=budget, clock=clock_name, variants=costs)


def run_study(
    studies: str | Sequence[str],
    budget: Budget,
    out: PathArg = "ablations",
    *,
    train_dirs: Sequence[str] = DEFAULT_TRAIN_DIRS,
    benchmarks: PathArg = DEFAULT_BENCHMARKS,
    resume: bool = False,
    device: str = "auto",
    threads: int = 0,
    on_run: Callable[[int, int, Variant, int, str], None] | None = None,
    train: bool = True,
    train_root: PathArg = DEFAULT_TRAIN_ROOT,
) -> list[RunResult]:
    """Train and evaluate every run of ``studies`` not finished yet (see the module doc);
    with ``train=False``, only finish the evaluations of finished runs (the unrolled models
    of the depth study) and skip the rest.

    ``on_run(index, total, variant, seed, state)`` is told of each run ("done", "training",
    "busy": another process has it). Returns the results of the runs finished so far.
    """
    names = [studies] if isinstance(studies, str) else list(studies)
    eval_sets = [str(Path(benchmarks) / name) for name in budget.eval_sets]
    holdout = holdout_files(budget, train_root)
    _check_data(train_dirs, eval_sets + holdout)
    runs = study_runs(names, budget)
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


# --- cost ------------------------------------------------------------------------------------


def mflop_per_pixel(model: CSNLN, size: int) -> float:
    """Forward MFLOP per LR pixel on a ``size`` x ``size`` input (convolutions and matmuls,
    as torch's FLOP counter counts them: a multiply-add is 2 FLOP)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / (size * size) / 1e6


def seconds_per_image(model: CSNLN, folder: str, budget: Budget, repeats: int = 2) -> float:
    """Mean seconds per image of ``folder`` at the evaluation's options (best of ``repeats``)."""
    from .data.protocol import prepare_pair
    from .evaluation import find_dataset
    from .inference import Upscaler

    upscaler = Upscaler(model.eval(), eval_options(budget))
    images = [
        prepare_pair(e.hr_path, SCALE, e.lr_path)[1].float().div(255).unsqueeze(0)
        for e in find_dataset(folder, SCALE)
    ]
    best = math.inf
    for _ in range(repeats):
        began = time.perf_counter()
        for lr in images:
            upscaler(lr)
        best = min(best, time.perf_counter() - began)
    return best / len(images)


# --- the report ------------------------------------------------------------------------------


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


def _mean_curve(runs: Sequence[RunResult]) -> list[tuple[float, float]]:
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
    benchmarks: PathArg = DEFAULT_BENCHMARKS,
    command: str = "",
    timing: bool = True,
) -> Path:
    """``out/<budget>/<study>.md`` with its plots (``<study>_curves.png``, ``_cost.png``)
    from the finished runs; variants not finished yet are listed as such. The parameters,
    MFLOP per LR pixel and seconds per image are measured here, all variants in one process
    (``timing=False``: seconds not measured)."""
    from .plots import line_chart, scatter_chart

    question, _, option = STUDIES[study]
    found = load_results(out, budget, study)
    folder = Path(out) / budget.name
    summaries = {v: summarise(runs) for v, runs in found.items()}
    reference = summaries.get(REFERENCE.resolved(budget))
    sets = list(EVAL_SETS)
    set5 = str(Path(benchmarks) / EVAL_SETS[0])
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
            if timing and Path(set5).is_dir()
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
        curves[name] = _mean_curve(found[variant])
    if study == "depth":
        lines += _unroll_table(found, budget, sets)
    time_curves: dict[str, list[tuple[float, float]]] = {}
    if study == "width" and timing:
        section, time_curves = _equal_time(found, budget, option)
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


def _at(curve: Sequence[tuple[float, float]], x: float) -> float | None:
    """``curve`` (increasing x) read at ``x`` by linear interpolation; None outside it."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1
    if curve and math.isclose(curve[-1][0], x):
        return curve[-1][1]
    return None


def _equal_time(
    found: dict[Variant, list[RunResult]],
    budget: Budget,
    option: str,
    step_costs: dict[Variant, float] | None = None,
) -> tuple[list[str], dict[str, list[tuple[float, float]]]]:
    """The width study at equal training time: each variant's step cost measured here (CPU
    time, one variant after the other), its validation curve put on that time axis, and each
    variant compared with the reference at the time the cheaper of the two finished.
    ``step_costs``: seconds per step given instead of measured."""
    from .device import resolve_device

    target = resolve_device("auto")
    clock = _clock(target)
    clock_name = "CPU" if target.type == "cpu" else "GPU"
    costs: dict[Variant, float] = {}
    curves: dict[Variant, list[tuple[float, float]]] = {}
    only_end: list[str] = []
    if step_costs is None:  # one untimed round first: the first variant timed paid set-up
        step_seconds(REFERENCE.resolved(budget).network(budget), budget, target, clock, 2)
    for variant, runs in found.items():
        if not runs:
            continue
        if step_costs is not None:  # given (tests)
            costs[variant] = step_costs[variant]
        else:
            torch.manual_seed(0)
            network = variant.network(budget)
            costs[variant] = step_seconds(network, budget, target, clock, timed_steps=8)
        curves[variant] = [(step * costs[variant] / 60, p) for step, p in _mean_curve(runs)]
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
                f"{clock_name} time, one variant after the other, times the steps. Each",
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
            mine, theirs = _at(curves[variant], when), _at(curves[reference], when)
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
