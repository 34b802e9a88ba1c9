"""One run of a study: its folder and config, the lock that lets two processes share a study,
training through ``csnln train``, and the final evaluation (``result.json``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..models.network import CSNLN
from .studies import SCALE, Budget, Variant

log = logging.getLogger("csnln.ablation")
PathArg = str | PathLike[str]

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
    from ..training import TrainConfig
    from .studies import BUDGETS

    init = None
    if budget.init_from is not None:  # the same run at the budget it is fine-tuned from
        out = folder.parents[3]
        init = str(run_dir(out, BUDGETS[budget.init_from], variant, seed) / "final.safetensors")
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
                "init": init,
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
                "warmup_steps": budget.warmup,
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
def claim(folder: Path, name: str = ".lock") -> Iterator[bool]:
    """Hold ``folder/name`` while working on a run (training it, sweeping it): yields False
    when a live process holds it, so two processes on one study share its runs."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / name
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
    from ..inference import RunOptions

    return RunOptions(precision="fp32", tile=budget.eval_tile, tile_overlap=budget.eval_overlap)


def _evaluate(model: CSNLN, sets: Sequence[str], budget: Budget) -> dict[str, tuple[float, float]]:
    return {name: (p, s) for name, (p, s, _) in _evaluate_images(model, sets, budget).items()}


def _evaluate_images(
    model: CSNLN, sets: Sequence[str], budget: Budget
) -> dict[str, tuple[float, float, dict[str, float]]]:
    """dataset -> (PSNR, SSIM, image name -> PSNR)."""
    from ..evaluation import evaluate

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
    from ..training import run_training, validation_curve
    from ..zoo import load_model

    folder = run_dir(out, budget, variant, seed)
    result_file = folder / "result.json"
    done = (
        RunResult.from_json(json.loads(result_file.read_text())) if result_file.is_file() else None
    )
    if done is not None and (not unroll or (done.unroll and done.unroll_window)):
        return done
    if done is None and not train:
        return None
    with claim(folder) as mine:
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


def check_benchmarks(eval_sets: Sequence[str]) -> None:
    for folder in eval_sets:
        if not Path(folder).exists():
            raise FileNotFoundError(f"benchmark folder {folder} not found (give --benchmarks)")


def refuse_to_replace(report: Path, overwrite: bool) -> None:
    """A study's report is a result: it is replaced only when asked.

    Raises:
        FileExistsError: ``report`` exists and ``overwrite`` is false.
    """
    if report.exists() and not overwrite:
        raise FileExistsError(
            f"{report} exists: not rewritten (give --overwrite to replace it, or --out DIR)"
        )
