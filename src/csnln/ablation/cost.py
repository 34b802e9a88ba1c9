"""What runs cost, measured: seconds per training step and per evaluation (``csnln ablate
--estimate``), forward MFLOP per LR pixel, seconds per image."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import torch

from ..models.network import CSNLN
from .runs import check_benchmarks, eval_options
from .studies import SCALE, Budget, Variant, holdout_files, mflop_per_pixel, study_variants

log = logging.getLogger("csnln.ablation")
PathArg = str | PathLike[str]


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


def clock_for(device: torch.device) -> Callable[[], float]:
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

    from ..evaluation import find_dataset

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
    from ..device import precision_context
    from ..training.schedule import l1_loss

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


def step_costs(
    variants: Sequence[Variant],
    budget: Budget,
    target: torch.device,
    clock: Callable[[], float],
    *,
    rounds: int = 5,
    timed_steps: int = 8,
) -> dict[Variant, float]:
    """Seconds per training step of each variant: the median of ``rounds`` rounds of
    ``timed_steps`` steps, the variants taking turns within each round, so that a slow
    moment of the machine (another process, a frequency change) touches every variant
    alike rather than one of them. One untimed round first (set-up, allocator warm-up)."""
    networks = {}
    for variant in variants:
        torch.manual_seed(0)
        networks[variant] = variant.network(budget).to(target)
    for network in networks.values():
        step_seconds(network, budget, target, clock, 1)
    samples: dict[Variant, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant, network in networks.items():
            samples[variant].append(step_seconds(network, budget, target, clock, timed_steps))
    return {v: statistics.median(s) for v, s in samples.items()}


def estimate_cost(
    runs: Sequence[tuple[Variant, int]],
    budget: Budget,
    *,
    benchmarks: PathArg,
    threads: int = 0,
    device: str = "auto",
    timed_steps: int = 4,
    on_variant: Callable[[int, int, Variant], None] | None = None,
    train_root: PathArg | None = None,
) -> CostEstimate:
    """The cost of ``runs``, measured per variant: ``timed_steps`` full training steps
    (random patches of the budget's size: forward, backward, clip, Adam; after one untimed
    step) and one evaluation on Set5; a validation pass and the other sets' evaluations are
    scaled from it by LR pixels, an unrolled model's by its FLOP.

    On a CPU the clock is the process's CPU time, so the figure is core-hours whatever else
    the machine is doing (contention for caches and memory still shows)."""
    from ..device import resolve_device
    from ..evaluation import evaluate

    target = resolve_device(device)
    clock = clock_for(target)
    set5 = str(Path(benchmarks) / "Set5")
    sets = [str(Path(benchmarks) / name) for name in budget.eval_sets]
    validation_set = holdout_files(budget, train_root) or sets[:1]
    check_benchmarks([set5, *sets, *validation_set])
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


def seconds_per_image(model: CSNLN, folder: str, budget: Budget, repeats: int = 2) -> float:
    """Mean seconds per image of ``folder`` at the evaluation's options (best of ``repeats``)."""
    from ..data.protocol import prepare_pair
    from ..evaluation import find_dataset
    from ..inference import Upscaler

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
