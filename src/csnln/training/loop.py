"""The training loop: :func:`train` (Python API of ``csnln train``).

One step, top to bottom: this process's share of the global batch -> forward under autocast
(bf16 / fp16) -> L1 loss in float32 -> backward (scaled for fp16) -> gradient norm and
optional clipping -> agree across processes whether the loss and gradients are finite ->
optimizer step, or skip the step when they are not (and after ``train.max_bad_steps`` skips
in a row, roll back to the last good checkpoint with half the learning rate) -> log,
validate, checkpoint, stop on Ctrl-C/SIGTERM.

The learning rate is a pure function of the step (:func:`learning_rate`) times a factor that
rollbacks halve; the batch of step ``k`` is a pure function of ``(seed, k)`` (see
:mod:`csnln.training.data`). With the optimizer state saved in checkpoints, a run that is
stopped and resumed computes exactly what an uninterrupted run computes.

Files in the run folder (``output_dir``, default ``runs/<name>``): ``config.yaml`` (the
resolved config), ``log.csv`` (step, loss, lr, it_s, val_psnr, val_ssim, elapsed_s),
``train.log`` (messages), ``checkpoints/step_<k>.{safetensors,state.pt}``,
``best.safetensors`` (best validation PSNR), ``final.safetensors`` (end of training), ``tb/``
(TensorBoard, optional). Only rank 0 writes.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..files import atomic_write
from ..inference import precision_context
from ..models.checkpoint import save_checkpoint
from ..models.network import CSNLN, CSNLNConfig, checkpointing_mode
from ..progress import progress as progress_bar
from .checkpointing import (
    CheckpointFiles,
    StopRequest,
    checkpoint_files,
    find_checkpoint,
    list_checkpoints,
    load_state,
    prune_checkpoints,
    save_training_checkpoint,
)
from .config import ConfigError, OptimSection, TrainConfig
from .data import PatchDataset, default_cache_dir, find_images, make_loader, prepare_images
from .distributed import DistInfo, all_reduce_sum, barrier, cleanup, setup
from .precision import choose_precision

__all__ = ["TrainResult", "build_model", "learning_rate", "run_training", "train"]

log = logging.getLogger("csnln.training")

CSV_COLUMNS = ("step", "loss", "lr", "it_s", "val_psnr", "val_ssim", "elapsed_s")
ResumeArg = bool | str | PathLike[str] | None


@dataclass
class TrainResult:
    """What a run ended with.

    ``weights``: ``final.safetensors`` when training finished, else the checkpoint written
    when it was stopped. ``stopped_by``: the signal name (``SIGINT``/``SIGTERM``) or None.
    """

    weights: Path
    step: int
    finished: bool
    stopped_by: str | None = None
    best_psnr: float | None = None


def _checkpointing_note(setting: bool | str) -> str:
    mode = checkpointing_mode(setting)
    return "" if mode == "none" else f", activation checkpointing ({mode})"


def train(config: TrainConfig, *, resume: ResumeArg = None) -> Path:
    """Train a model as ``config`` says; returns the path of the final weights.

    ``resume``: ``None``/``False`` starts a new run (an error if the run folder already holds
    checkpoints); ``True`` continues from the latest checkpoint of the run folder (or starts
    anew when there is none); a path continues from that checkpoint (a ``.safetensors`` of a
    training checkpoint, its ``.state.pt``, or a run folder). Under ``torchrun`` every process
    calls this; they train one model with DistributedDataParallel.
    """
    return run_training(config, resume=resume).weights


def run_training(config: TrainConfig, *, resume: ResumeArg = None) -> TrainResult:
    """:func:`train`, returning a :class:`TrainResult` (finished or stopped, step, best)."""
    info = setup(config.train.device)
    handlers = _start_logging(config.run_dir, info)
    threads = torch.get_num_threads()
    try:
        return _run(config, info, resume)
    finally:
        torch.set_num_threads(threads)
        _stop_logging(handlers)
        cleanup(info)


# --- pieces ----------------------------------------------------------------------------------


def learning_rate(optim: OptimSection, total_steps: int, step: int) -> float:
    """The scheduled learning rate of step ``step`` (0-based), before rollback halvings."""
    if optim.schedule == "step":
        lr = optim.lr * optim.gamma ** (step // optim.step_size)
    elif optim.schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        lr = optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        lr = optim.lr
    if optim.warmup_steps and step < optim.warmup_steps:
        lr *= (step + 1) / optim.warmup_steps
    return lr


def build_model(config: TrainConfig) -> CSNLN:
    """The network of ``config.model`` (initialised from ``model.init`` when set)."""
    m = config.model
    model = CSNLN(
        m.scale,
        m.n_feats,
        m.depth,
        branches=m.branches,
        fusion=m.fusion,
        patch_size=m.patch_size,
        chunk_size=m.chunk_size,
    )
    model.set_gradient_checkpointing(m.gradient_checkpointing)
    if m.init:
        from ..zoo import BUNDLED, load_model

        # A bundled name has one file per scale: its x{scale} weights (fine-tuning).
        source = load_model(m.init, m.scale if m.init in BUNDLED else None)
        if not isinstance(source, CSNLN) or _architecture(source.config) != _architecture(
            model.config
        ):
            got = source.config if isinstance(source, CSNLN) else type(source).__name__
            raise ConfigError(
                f"model.init {m.init}: its architecture ({got}) differs from the model's "
                f"({model.config})"
            )
        if source.scale == m.scale:
            model.load_state_dict(source.state_dict())
        else:
            # Warm start across scales: the weights whose names and shapes agree (the head,
            # the attentions, the fusion, the 3x3 convs) come from the source; the layers that
            # depend on the scale (strided convs of another size, x4's second stage, the
            # tail's order) keep their initialisation.
            own = model.state_dict()
            shared = {
                k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape
            }
            model.load_state_dict(shared, strict=False)
            log.info(
                "model.init %s (x%d): %d of %d tensors loaded into the x%d model; new: %s",
                m.init,
                source.scale,
                len(shared),
                len(own),
                m.scale,
                ", ".join(sorted(set(own) - set(shared))[:8])
                + (" ..." if len(own) - len(shared) > 8 else ""),
            )
    return model


def _architecture(config: CSNLNConfig) -> tuple[Any, ...]:
    """What two networks must share for one's weights to load into the other (any scale)."""
    return (config.n_feats, config.depth, config.branches, config.fusion, config.patch_size)


def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The training loss: mean absolute error (float32)."""
    return F.l1_loss(sr, hr)


@dataclass
class _State:
    """The loop's counters, saved in checkpoints with the optimizer."""

    step: int = 0
    lr_scale: float = 1.0
    best_psnr: float = -math.inf
    best_step: int = -1


class _Meter:
    """Mean loss and speed between two log rows."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total, self.count, self.steps, self.start = 0.0, 0, 0, time.perf_counter()

    def add(self, loss: float | None) -> None:
        self.steps += 1
        if loss is not None:
            self.total += loss
            self.count += 1

    @property
    def loss(self) -> float:
        return self.total / self.count if self.count else math.nan

    def row(self) -> dict[str, float]:
        seconds = max(time.perf_counter() - self.start, 1e-9)
        out = {"loss": self.loss, "it_s": self.steps / seconds}
        self.reset()
        return out


class _CsvLog:
    """``log.csv``; on resume, rows after the resumed step (a crashed tail) are dropped."""

    def __init__(self, path: Path, start_step: int) -> None:
        self.path = path
        kept: list[dict[str, str]] = []
        if path.is_file() and start_step > 0:
            with path.open(newline="") as handle:
                kept = [r for r in csv.DictReader(handle) if int(r.get("step") or 0) <= start_step]

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, CSV_COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)

        atomic_write(path, write)
        self.handle = path.open("a", newline="")
        self.writer = csv.DictWriter(self.handle, CSV_COLUMNS, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: _cell(v) for k, v in row.items()})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def validation_curve(run_dir: str | PathLike[str]) -> list[tuple[int, float]]:
    """The (step, validation PSNR) rows of a run folder's ``log.csv`` ([] when it has none)."""
    path = Path(run_dir) / "log.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            (int(row["step"]), float(row["val_psnr"]))
            for row in csv.DictReader(handle)
            if row.get("val_psnr")
        ]


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


class _TqdmHandler(logging.Handler):
    """Log lines on stderr that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


def _start_logging(run_dir: Path, info: DistInfo) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    log.setLevel(logging.INFO if info.is_main else logging.ERROR)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        console = _TqdmHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        logfile = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers = [console, logfile]
    for handler in handlers:
        log.addHandler(handler)
    return handlers


def _stop_logging(handlers: Sequence[logging.Handler]) -> None:
    for handler in handlers:
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.NOTSET)


def _resume_point(config: TrainConfig, resume: ResumeArg) -> CheckpointFiles | None:
    run_dir = config.run_dir
    if resume is None or resume is False:
        if list_checkpoints(run_dir):
            raise FileExistsError(
                f"{run_dir} already holds checkpoints of a run: continue it with --resume, "
                "or choose another name/output_dir"
            )
        return None
    if resume is True:
        found = list_checkpoints(run_dir)
        if not found:
            log.info("no checkpoint in %s: starting a new run", run_dir / "checkpoints")
            return None
        return found[-1]
    return find_checkpoint(resume, run_dir)


def _state_payload(
    config: TrainConfig,
    state: _State,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    world: int,
    precision: str,
) -> dict[str, Any]:
    return {
        "precision": precision,  # what `auto` resolved to, for a resumed run
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "lr_scale": state.lr_scale,
        "best_psnr": state.best_psnr,
        "best_step": state.best_step,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "world_size": world,
        "config": config.to_yaml(),
    }


def _restore(
    files: CheckpointFiles,
    loaded: tuple[dict[str, torch.Tensor], dict[str, Any]],
    model: CSNLN,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    state: _State,
) -> None:
    tensors, saved = loaded
    expected = model.state_dict()
    wrong = sorted(
        set(tensors) ^ set(expected)
        | {k for k in tensors if k in expected and tensors[k].shape != expected[k].shape}
    )
    if wrong:
        raise ValueError(
            f"{files.weights} does not fit the configured model (scale "
            f"{model.scale}, n_feats {model.n_feats}, depth {model.depth}): {wrong[:5]}"
        )
    model.load_state_dict(tensors)
    optimizer.load_state_dict(saved["optimizer"])
    if scaler is not None and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    state.step = int(saved["step"])
    state.lr_scale = float(saved["lr_scale"])
    state.best_psnr = float(saved["best_psnr"])
    state.best_step = int(saved["best_step"])
    torch.set_rng_state(saved["rng"])
    if torch.cuda.is_available() and len(saved.get("cuda_rng", [])) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


def _prepare_data(config: TrainConfig, info: DistInfo) -> PatchDataset:
    d = config.data
    if not d.train_dirs:
        raise ConfigError("data.train_dirs is empty: give the folders of HR training images")
    files = find_images(d.train_dirs)
    if d.exclude:
        held_out = {f.resolve() for f in find_images(d.exclude)}
        files = [f for f in files if f.resolve() not in held_out]
        log.info("held out of training (data.exclude): %d images", len(held_out))
    cache_dir = None if d.cache == "memory" else Path(d.cache_dir or default_cache_dir())
    kwargs = {
        "scale": config.model.scale,
        "patch_size": d.patch_size,
        "cache_dir": cache_dir,
        "threads": max(1, d.workers),
    }
    if cache_dir is not None and info.distributed:
        # Rank 0 fills the shared cache, the others then read it.
        if info.is_main:
            records = prepare_images(files, progress=config.log.progress, **kwargs)
        barrier(info)
        if not info.is_main:
            records = prepare_images(files, **kwargs)
    else:
        records = prepare_images(files, progress=config.log.progress and info.is_main, **kwargs)
    log.info(
        "training data: %d images (%.1f Mpx HR) from %d folder pattern(s)",
        len(records),
        sum(r.lr_size[0] * r.lr_size[1] for r in records) * config.model.scale**2 / 1e6,
        len(d.train_dirs),
    )
    return PatchDataset(
        records,
        scale=config.model.scale,
        patch_size=d.patch_size,
        augment=d.augment,
        seed=config.seed,
    )


def _validate(model: CSNLN, config: TrainConfig, device: torch.device) -> tuple[float, float]:
    """Mean PSNR/SSIM over the validation folders (evaluation protocol of csnln eval)."""
    from ..evaluation import evaluate

    try:
        results = evaluate(
            model,
            config.val.dirs,
            config.model.scale,
            tile=config.val.tile,
            tile_overlap=config.val.tile_overlap,
            precision=config.val.precision,
            device=device,
            progress=False,
        )
    finally:
        model.train()
    psnrs = [r.psnr for r in results if math.isfinite(r.psnr)]
    ssims = [r.ssim for r in results if math.isfinite(r.ssim)]
    for r in results:
        log.info(
            "  %s x%d: %.4f dB / %.5f (%d images)", r.dataset, r.scale, r.psnr, r.ssim, r.images
        )
    return (
        sum(psnrs) / len(psnrs) if psnrs else math.nan,
        sum(ssims) / len(ssims) if ssims else math.nan,
    )


def _tensorboard(run_dir: Path, start_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("log.tensorboard is on, but tensorboard is not installed: not writing it")
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)


# --- the run ---------------------------------------------------------------------------------


def _run(config: TrainConfig, info: DistInfo, resume: ResumeArg) -> TrainResult:
    trainer = Trainer(config, info, resume)
    try:
        return trainer.run()
    finally:
        trainer.close()


@dataclass(frozen=True)
class _StepOutcome:
    """What one optimizer step did: its learning rate, its loss (None when skipped), whether
    it was skipped for a non-finite loss or gradient, and whether any process asked to stop."""

    lr: float
    loss: float | None
    bad: str | None  # "loss" / "gradient" when the step was skipped
    stop: bool


class Trainer:
    """One training run: the constructor sets it up (model, optimizer, resume point, data),
    :meth:`run` trains, :meth:`close` releases the progress bar and logs (also on errors).

    ``run`` reads top to bottom: for each batch, :meth:`step` (forward, loss, backward,
    agreement across processes, update or skip), then :meth:`after_step` (roll back after
    too many skipped steps, progress, log row, validation, checkpoint, stop).
    """

    def __init__(self, config: TrainConfig, info: DistInfo, resume: ResumeArg) -> None:
        self.config, self.info, self.device = config, info, info.device
        self.run_dir = config.run_dir
        self.precision = config.train.precision
        if self.precision != "auto":
            precision_context(self.precision, self.device)  # fp16 on a CPU: an error, now
        if config.val.dirs:
            precision_context(config.val.precision, self.device)
        if config.data.batch_size % info.world_size:
            raise ConfigError(
                f"data.batch_size {config.data.batch_size} is not divisible by the "
                f"{info.world_size} processes"
            )
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        if config.train.keep_freed_memory and self.device.type == "cpu":
            keep_freed_memory()
        self.start = _resume_point(config, resume)

        # Model, optimizer, gradient scaler (fp16), state; then the checkpoint to continue from.
        torch.manual_seed(config.seed)
        self.model = build_model(config).to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        o = config.optim
        self.optimizer = torch.optim.Adam(
            self.params,
            lr=o.lr,
            betas=(o.betas[0], o.betas[1]),
            eps=o.eps,
            weight_decay=o.weight_decay,
        )
        self.state = _State()
        loaded = load_state(self.start) if self.start is not None else None
        if self.precision == "auto":
            # A resumed run keeps the choice its first process made (runs saved before
            # `auto` existed have none: measured again).
            saved = loaded[1].get("precision") if loaded is not None else None
            self.precision = saved or self._choose_precision()
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        if self.start is not None and loaded is not None:
            _restore(self.start, loaded, self.model, self.optimizer, self.scaler, self.state)
            log.info("resuming from %s (step %d)", self.start.weights, self.state.step)
        self.initial = (
            self.state.step,
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
        )
        if info.is_main:
            (self.run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        self.dataset = _prepare_data(config, info)
        self.net: nn.Module = self.model
        if info.distributed:
            # With depth 1 the cell's LR output (output_down, post_conv) is unused.
            self.net = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=config.model.depth == 1,
            )
        self.total = config.train.steps
        log.info(
            "training %s: x%d, n_feats %d, depth %d, %s params; %d steps of batch %d "
            "(LR patch %d) on %s (%d process(es)), %s%s; run folder %s",
            config.name,
            config.model.scale,
            config.model.n_feats,
            config.model.depth,
            f"{sum(p.numel() for p in self.params):,}",
            self.total,
            config.data.batch_size,
            config.data.patch_size,
            self.device,
            info.world_size,
            self.precision,
            _checkpointing_note(config.model.gradient_checkpointing),
            self.run_dir,
        )
        self.csv_log: _CsvLog | None = None
        self.board: Any = None
        self.bar: Any = None
        self.meter, self.began = _Meter(), time.perf_counter()
        self.bad_in_row, self.stopped_by = 0, None
        self.last_saved = self.state.step
        self.latest: Path | None = self.start.weights if self.start is not None else None

    def _choose_precision(self) -> str:
        """``train.precision: auto`` resolved (:func:`.precision.choose_precision`); with
        several processes the first one's measurement decides for all."""
        config, info = self.config, self.info
        choice = choose_precision(
            self.model,
            scale=config.model.scale,
            batch=config.data.batch_size // info.world_size,
            patch=config.data.patch_size,
            device=self.device,
        )
        bf16 = all_reduce_sum(
            torch.tensor([float(info.is_main and choice.precision == "bf16")]), info
        )
        precision = "bf16" if float(bf16[0]) > 0 else "fp32"
        log.info("train.precision auto: %s (%s)", precision, choice.reason)
        return precision

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> TrainResult:
        state, info, config = self.state, self.info, self.config
        if state.step >= self.total:
            log.info(
                "already at step %d of train.steps %d: nothing to train", state.step, self.total
            )
        if info.is_main:
            self.csv_log = _CsvLog(self.run_dir / "log.csv", state.step)
            if config.log.tensorboard:
                self.board = _tensorboard(self.run_dir, state.step)
        self.bar = progress_bar(
            total=self.total,
            initial=state.step,
            unit="step",
            desc=config.name,
            enabled=info.is_main and config.log.progress,
            dynamic_ncols=True,
        )
        with StopRequest() as stop:
            while state.step < self.total and self.stopped_by is None:
                loader = self.loader()
                for lr_batch, hr_batch in loader:
                    outcome = self.step(lr_batch, hr_batch, stop)
                    if self.after_step(outcome, stop.requested):
                        break
                del loader
            if state.step != self.last_saved or self.latest is None:
                self.save()
        self.close()
        return self.finish()

    def loader(self) -> Any:
        """The batches from the current step to the end (a pure function of seed and step)."""
        return make_loader(
            self.dataset,
            start_step=self.state.step,
            end_step=self.total,
            batch_size=self.config.data.batch_size,
            rank=self.info.rank,
            world_size=self.info.world_size,
            workers=self.config.data.workers,
            pin_memory=self.device.type == "cuda",
        )

    def step(
        self, lr_batch: torch.Tensor, hr_batch: torch.Tensor, stop: StopRequest
    ) -> _StepOutcome:
        """One optimizer step (or a skipped one) on this process's share of the batch."""
        o, optimizer, scaler = self.config.optim, self.optimizer, self.scaler
        lr_now = learning_rate(o, self.total, self.state.step) * self.state.lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr_now

        # Forward (autocast), float32 L1 loss, backward (scaled for fp16).
        lr_batch = lr_batch.to(self.device, non_blocking=True)
        hr_batch = hr_batch.to(self.device, non_blocking=True)
        with precision_context(self.precision, self.device):
            sr = self.net(lr_batch)
        loss = l1_loss(sr.float(), hr_batch)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if scaler is not None:
            scaler.unscale_(optimizer)
        grad_norm = nn.utils.clip_grad_norm_(self.params, o.grad_clip or math.inf)

        # All processes agree on the loss, on non-finite values and on stopping.
        loss_value = float(loss.detach())
        finite = math.isfinite(loss_value)
        flags = all_reduce_sum(
            torch.tensor(
                [
                    loss_value if finite else 0.0,
                    0.0 if finite else 1.0,
                    float(bool(stop.requested)),
                ],
                dtype=torch.float64,
            ),
            self.info,
        ).tolist()
        # (With fp16 the scaler handles overflowing gradients itself.)
        grads_ok = scaler is not None or math.isfinite(float(grad_norm))
        bad = "loss" if flags[1] > 0 else None if grads_ok else "gradient"
        if bad:
            if scaler is not None:
                scaler.update()
        elif scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        loss_mean = None if bad else flags[0] / self.info.world_size
        return _StepOutcome(lr=lr_now, loss=loss_mean, bad=bad, stop=flags[2] > 0)

    def after_step(self, outcome: _StepOutcome, stop_signal: str | None) -> bool:
        """Bookkeeping after a step; True when the batches must be drawn anew (a rollback)
        or training stops."""
        state, config = self.state, self.config
        if outcome.bad:
            self.bad_in_row += 1
            log.warning(
                "step %d: non-finite %s; step skipped (%d in a row)",
                state.step,
                outcome.bad,
                self.bad_in_row,
            )
            self.meter.add(None)
            if self.bad_in_row >= config.train.max_bad_steps:
                self.rollback()
                return True
        else:
            self.bad_in_row = 0
            self.meter.add(outcome.loss)

        self.bar.update(1)
        if self.info.is_main and state.step % max(1, min(10, config.log.every)) == 0:
            self.bar.set_postfix_str(f"loss={self.meter.loss:.4f}, lr={outcome.lr:.3g}", False)
        self.log_row(outcome.lr)
        if config.checkpoint.every and state.step % config.checkpoint.every == 0:
            self.save()
        if outcome.stop:
            self.stopped_by = stop_signal or "a signal in another process"
            log.warning("step %d: %s received: saving and stopping", state.step, self.stopped_by)
            return True
        return False

    def log_row(self, lr_now: float) -> None:
        """The log.csv row (and TensorBoard scalars) of this step, validating when due."""
        state, config, board = self.state, self.config, self.board
        row: dict[str, Any] = {}
        if state.step % config.log.every == 0 or state.step == self.total:
            row |= self.meter.row() | {"lr": lr_now}
            if board is not None:
                board.add_scalar("train/loss", row["loss"], state.step)
                board.add_scalar("train/lr", lr_now, state.step)
                board.add_scalar("train/it_s", row["it_s"], state.step)
        if (config.val.every and state.step % config.val.every == 0) or state.step == self.total:
            row |= self.validate()
            if board is not None and "val_psnr" in row:
                board.add_scalar("val/psnr", row["val_psnr"], state.step)
                board.add_scalar("val/ssim", row["val_ssim"], state.step)
        if row and self.csv_log is not None:
            self.csv_log.write(
                {"step": state.step, "elapsed_s": time.perf_counter() - self.began} | row
            )

    # --- checkpoints, validation, rollback ---------------------------------------------------

    def save(self) -> None:
        state, info, config = self.state, self.info, self.config
        if info.is_main:
            payload = _state_payload(
                config, state, self.optimizer, self.scaler, info.world_size, self.precision
            )
            files = save_training_checkpoint(
                self.run_dir, state.step, self.model, payload, metadata={"run": config.name}
            )
            prune_checkpoints(self.run_dir, config.checkpoint.keep_last)
            log.info("step %d: checkpoint %s", state.step, files.weights)
        barrier(info)
        self.last_saved = state.step
        self.latest = checkpoint_files(self.run_dir, state.step).weights

    def validate(self) -> dict[str, float]:
        config, state = self.config, self.state
        if not config.val.dirs:
            return {}
        psnr = ssim = math.nan
        if self.info.is_main:
            psnr, ssim = _validate(self.model, config, self.device)
            log.info("step %d: validation PSNR %.4f dB, SSIM %.5f", state.step, psnr, ssim)
            if config.checkpoint.keep_best and math.isfinite(psnr) and psnr > state.best_psnr:
                state.best_psnr, state.best_step = psnr, state.step
                meta = {"run": config.name, "step": state.step, "val_psnr": psnr, "val_ssim": ssim}
                save_checkpoint(self.model, self.run_dir / "best.safetensors", metadata=meta)
        barrier(self.info)
        return {"val_psnr": psnr, "val_ssim": ssim}

    def rollback(self) -> None:
        """Back to the newest checkpoint (or the start), with half the learning rate."""
        state, at = self.state, self.state.step
        lr_scale, best = state.lr_scale, (state.best_psnr, state.best_step)
        found = list_checkpoints(self.run_dir)
        if found:
            loaded = load_state(found[-1])
            _restore(found[-1], loaded, self.model, self.optimizer, self.scaler, state)
            source = f"checkpoint {found[-1].weights}"
        else:
            state.step = self.initial[0]
            self.model.load_state_dict(self.initial[1])
            self.optimizer.load_state_dict(self.initial[2])
            source = "the initial weights"
        state.lr_scale = lr_scale * 0.5
        state.best_psnr, state.best_step = best
        self.last_saved = state.step
        log.warning(
            "step %d: %d non-finite steps in a row: rolled back to step %d (%s) "
            "and halved the learning rate (now x%g of the schedule: %.3g)",
            at,
            self.bad_in_row,
            state.step,
            source,
            state.lr_scale,
            learning_rate(self.config.optim, self.total, state.step) * state.lr_scale,
        )
        self.bad_in_row = 0
        self.bar.n = state.step
        self.bar.refresh()

    # --- the end -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the progress bar, log.csv and TensorBoard (idempotent)."""
        for name in ("bar", "csv_log", "board"):
            handle = getattr(self, name)
            if handle is not None:
                handle.close()
                setattr(self, name, None)

    def finish(self) -> TrainResult:
        state, info, config = self.state, self.info, self.config
        finished = self.stopped_by is None and state.step >= self.total
        best = state.best_psnr if math.isfinite(state.best_psnr) else None
        if not finished:
            log.info("stopped at step %d; continue with --resume (%s)", state.step, self.latest)
            return TrainResult(
                self.latest or self.run_dir,
                state.step,
                False,
                stopped_by=self.stopped_by,
                best_psnr=best,
            )
        final = self.run_dir / "final.safetensors"
        if info.is_main:
            save_checkpoint(self.model, final, metadata={"run": config.name, "step": state.step})
            summary = f"finished: {state.step} steps; final weights {final}"
            if best is not None:
                summary += f"; best validation {best:.4f} dB at step {state.best_step}"
            log.info("%s", summary)
        barrier(info)
        return TrainResult(final, state.step, True, best_psnr=best)
