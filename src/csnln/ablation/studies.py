"""The studies: what a budget is (how big and long every run), what a variant is (what it
changes from the reference network), and which variants and seeds each study trains."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from os import PathLike

from ..models.network import CSNLN
from ..models.sem import BRANCHES

log = logging.getLogger("csnln.ablation")
PathArg = str | PathLike[str]

#: Where a budget validates: HOLDOUT is the validation split of the training data
#: (:mod:`csnln.data.splits`), never trained on; else the first of its evaluation sets.
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
    # Fine-tuning: every run starts from the final weights of the same variant and seed at
    # this budget (None: from scratch), with this many warm-up steps.
    init_from: str | None = None
    warmup: int = 200

    def describe(self) -> str:
        return (
            f"n_feats {self.n_feats}, depth {self.depth}, LR patch {self.patch} x batch "
            f"{self.batch}, {self.steps:,} steps (Adam, cosine {self.lr:g} -> "
            f"{self.lr / 100:g}, {self.warmup} warm-up steps, gradient clip 1), "
            f"{self.precision}, seeds {', '.join(map(str, self.seeds))}"
            + (f"; fine-tuned from the {self.init_from} runs" if self.init_from else "")
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
    # The attention study's three main arms in the paper's window: LR patches of 48 (the
    # paper's), fine-tuned from the bundled-budget runs of the same variant and seed, so that
    # every arm gets the same start, data, steps and schedule; validated at tiles of 48.
    # float32: on a CPU without AMX `--estimate` measured a bf16 step over 10x a float32 one.
    "window48": Budget(
        "window48", n_feats=64, depth=1, patch=48, batch=4, steps=1500, lr=1e-4,
        seeds=(0, 1), depths=(1,), widths=(64,), unroll=(1,), val_every=500, precision="fp32",
        eval_tile=48, eval_overlap=12, unroll_sets=(), eval_sets=("Set5", "Set14"),
        validation=HOLDOUT, init_from="bundled", warmup=100,
    ),
}  # fmt: skip
#: The budget a study runs at when none is named.
STUDY_BUDGETS = {"window": "window48"}


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
    "window": (
        "Does the cell beat its matched-cost local twin when trained and run in the paper's "
        "window (LR patches of 48, tiles of 48 and more): the bundled cell, local only, and "
        "local only at the bundled cell's cost, each fine-tuned from its bundled-budget run.",
        lambda budget: _window_arms(),
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


def _window_arms() -> list[Variant]:
    """The attention study's arms at the bundled budget (their widths are the bundled
    budget's, whatever the budget they are fine-tuned at)."""
    return [v.resolved(BUDGETS["bundled"]) for v in _ALL_SEEDS["attention"](BUDGETS["bundled"])]


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


def select_runs(
    runs: Sequence[tuple[Variant, int]], only: Sequence[str]
) -> list[tuple[Variant, int]]:
    """The runs named in ``only``, in that order: each a variant's key (its folder name, e.g.
    ``LIC-projection-p3-d1``: all its seeds) or a key and a seed (``LIC-projection-p3-d1/seed1``).
    A name that is not one of ``runs`` is a ValueError naming the choices."""
    chosen: list[tuple[Variant, int]] = []
    for spec in only:
        key, _, seed_part = spec.partition("/")
        matches = [(v, s) for v, s in runs if v.key == key]
        if not matches:
            keys = ", ".join(dict.fromkeys(v.key for v, _ in runs))
            raise ValueError(f"no variant {key!r} in this study; its variants: {keys}")
        if seed_part:
            seeds = sorted(s for _, s in matches)
            if not re.fullmatch(r"seed\d+", seed_part) or int(seed_part[4:]) not in seeds:
                choices = ", ".join(f"{key}/seed{s}" for s in seeds)
                raise ValueError(f"no run {spec!r} in this study; {key}'s runs: {choices}")
            matches = [(v, s) for v, s in matches if s == int(seed_part[4:])]
        chosen.extend(run for run in matches if run not in chosen)
    return chosen


def holdout_files(budget: Budget, train_root: PathArg | None) -> list[str]:
    """The validation split's files under ``train_root`` when the budget validates on it,
    else []."""
    from ..data.splits import validation_files

    if budget.validation != HOLDOUT:
        return []
    if train_root is None:
        raise ValueError(
            f"budget {budget.name} validates on the held-out split: give the training root "
            "(the folder holding T91/, BSD200/, ...: --train-root)"
        )
    return validation_files(train_root)


def mflop_per_pixel(model: CSNLN, size: int) -> float:
    """Forward MFLOP per LR pixel on a ``size`` x ``size`` input (convolutions and matmuls,
    as torch's FLOP counter counts them: a multiply-add is 2 FLOP), every SEM step in full.

    The network skips the last step's down-projection to the next LR state (nothing reads
    it); the studies matched their widths with it counted, so it is counted here, and their
    variants keep the widths their runs were trained at."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cell, s = model.cell, model.scale
    padded = -(-size // model.size_multiple) * model.size_multiple
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(1, 3, size, size))
        cell.post_conv(cell.output_down(torch.zeros(1, model.n_feats, s * padded, s * padded)))
    return counter.get_total_flops() / (size * size) / 1e6
