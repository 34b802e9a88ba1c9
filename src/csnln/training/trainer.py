"""The trainer: :func:`train` (Python API of ``csnln train``) and the loop of one run.

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
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..allocator import keep_freed_memory
from ..device import precision_context
from ..distributed import DistInfo, all_reduce_sum, barrier, cleanup, setup
from ..models.checkpoint import save_checkpoint
from ..models.network import checkpointing_mode
from ..progress import progress as progress_bar
from .checkpointing import (
    ResumeArg,
    StopRequest,
    TrainState,
    checkpoint_files,
    list_checkpoints,
    load_state,
    prune_checkpoints,
    restore,
    resume_point,
    save_training_checkpoint,
    state_payload,
)
from .config import ConfigError, TrainConfig
from .data import make_loader, prepare_data
from .logs import CsvLog, Meter, start_logging, stop_logging, tensorboard_writer
from .model_init import build_model
from .precision import choose_precision
from .schedule import l1_loss, learning_rate
from .validation import validate_model

__all__ = ["TrainResult", "run_training", "train"]

log = logging.getLogger("csnln.training")


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
    handlers = start_logging(config.run_dir, info)
    threads = torch.get_num_threads()
    try:
        return _run(config, info, resume)
    finally:
        torch.set_num_threads(threads)
        stop_logging(handlers)
        cleanup(info)


# --- the run ---------------------------------------------------------------------------------


def _run(config: TrainConfig, info: DistInfo, resume: ResumeArg) -> TrainResult:
    warmup, steps = config.optim.warmup_steps, config.train.steps
    if warmup >= steps:
        log.warning(
            "optim.warmup_steps %d >= train.steps %d: the learning rate never reaches "
            "optim.lr %g (lower the warm-up, e.g. optim.warmup_steps=%d)",
            warmup,
            steps,
            config.optim.lr,
            steps // 10,
        )
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
        self.start = resume_point(config, resume)

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
        self.state = TrainState()
        loaded = load_state(self.start) if self.start is not None else None
        if self.precision == "auto":
            # A resumed run keeps the choice its first process made (runs saved before
            # `auto` existed have none: measured again).
            saved = loaded[1].get("precision") if loaded is not None else None
            self.precision = saved or self._choose_precision()
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        if self.start is not None and loaded is not None:
            restore(self.start, loaded, self.model, self.optimizer, self.scaler, self.state)
            log.info("resuming from %s (step %d)", self.start.weights, self.state.step)
        self.initial = (
            self.state.step,
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
        )
        if info.is_main:
            (self.run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
        self.dataset = prepare_data(config, info)
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
        self.csv_log: CsvLog | None = None
        self.board: Any = None
        self.bar: Any = None
        self.meter, self.began = Meter(), time.perf_counter()
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
            self.csv_log = CsvLog(self.run_dir / "log.csv", state.step)
            if config.log.tensorboard:
                self.board = tensorboard_writer(self.run_dir, state.step)
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
            payload = state_payload(
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
            psnr, ssim = validate_model(self.model, config, self.device)
            log.info("step %d: validation PSNR %.4f dB, SSIM %.5f", state.step, psnr, ssim)
            if config.checkpoint.keep_best and math.isfinite(psnr) and psnr > state.best_psnr:
                state.best_psnr, state.best_step = psnr, state.step
                meta = {"run": config.name, "step": state.step, "val_psnr": psnr, "val_ssim": ssim}
                meta.update(_window_metadata(config))
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
            restore(found[-1], loaded, self.model, self.optimizer, self.scaler, state)
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
            meta = {"run": config.name, "step": state.step, **_window_metadata(config)}
            save_checkpoint(self.model, final, metadata=meta)
            summary = f"finished: {state.step} steps; final weights {final}"
            if best is not None:
                summary += f"; best validation {best:.4f} dB at step {state.best_step}"
            log.info("%s", summary)
        barrier(info)
        return TrainResult(final, state.step, True, best_psnr=best)


def _window_metadata(config: TrainConfig) -> dict[str, int]:
    """What a checkpoint records of the windows it was trained in: the LR patch side, and the
    attention window when the run confined its attentions."""
    meta = {"trained_window": config.data.patch_size}
    if config.model.attention_window is not None:
        meta["attention_window"] = config.model.attention_window
    return meta
