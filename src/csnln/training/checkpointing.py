"""Training checkpoints: model weights + the state needed to continue a run exactly.

A checkpoint of step ``k`` is two files in ``<run>/checkpoints/``:

* ``step_<k>.safetensors``: the model, written by :func:`csnln.save_checkpoint` (so it is also
  a usable model file: ``csnln upscale --model runs/x/checkpoints/step_00010000.safetensors``);
* ``step_<k>.state.pt``: optimizer, gradient-scaler, learning-rate factor, RNG, best
  validation and step, saved with ``torch.save`` holding only tensors and plain Python
  values, and read back with ``torch.load(weights_only=True)``.

Both are written atomically (temporary file + rename), the state first: a checkpoint counts
only when both files exist, so a crash while writing leaves the previous one in charge.
:class:`StopRequest` turns SIGINT/SIGTERM into a flag the loop checks after each step.
Resuming: :func:`resume_point` finds where a run continues, :func:`state_payload` is what a
checkpoint saves beside the weights, :func:`restore` puts it back.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import signal
import threading
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from ..atomic import atomic_write
from ..models.checkpoint import read_checkpoint, save_checkpoint
from ..models.network import CSNLN
from .config import TrainConfig

__all__ = [
    "CheckpointFiles",
    "ResumeArg",
    "TrainState",
    "resume_point",
    "restore",
    "state_payload",
    "StopRequest",
    "find_checkpoint",
    "list_checkpoints",
    "load_state",
    "prune_checkpoints",
    "save_training_checkpoint",
]

log = logging.getLogger("csnln.training")
ResumeArg = bool | str | PathLike[str] | None

STATE_FORMAT = "csnln-train-state"
STATE_VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.safetensors$")


@dataclass(frozen=True)
class CheckpointFiles:
    """The two files of the checkpoint of ``step``."""

    step: int
    weights: Path
    state: Path


def checkpoint_files(run_dir: Path, step: int) -> CheckpointFiles:
    folder = Path(run_dir) / "checkpoints"
    return CheckpointFiles(
        step, folder / f"step_{step:08d}.safetensors", folder / f"step_{step:08d}.state.pt"
    )


def _state_path(weights: Path) -> Path:
    return weights.with_name(weights.name.removesuffix(".safetensors") + ".state.pt")


def _atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_training_checkpoint(
    run_dir: str | PathLike[str],
    step: int,
    model: CSNLN,
    state: dict[str, Any],
    *,
    metadata: dict[str, Any] | None = None,
) -> CheckpointFiles:
    """Write the checkpoint of ``step`` (state first, then weights; each atomically)."""
    files = checkpoint_files(Path(run_dir), step)
    _atomic_torch_save(
        {"format": STATE_FORMAT, "version": STATE_VERSION, "step": step} | state, files.state
    )
    save_checkpoint(model, files.weights, metadata={"step": step} | (metadata or {}))
    return files


def list_checkpoints(run_dir: str | PathLike[str]) -> list[CheckpointFiles]:
    """The complete checkpoints (weights and state present) of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and _state_path(path).is_file():
            found.append(CheckpointFiles(int(match.group(1)), path, _state_path(path)))
    return sorted(found, key=lambda c: c.step)


def find_checkpoint(spec: str | PathLike[str], run_dir: str | PathLike[str]) -> CheckpointFiles:
    """The checkpoint ``spec`` names: a ``.safetensors`` or ``.state.pt`` file of a training
    checkpoint, or a run folder / checkpoints folder (its latest checkpoint).

    Raises:
        FileNotFoundError: nothing usable there (the message says what was looked for).
    """
    path = Path(spec)
    if path.is_dir():
        run = path.parent if path.name == "checkpoints" else path
        found = list_checkpoints(run)
        if not found:
            raise FileNotFoundError(f"no training checkpoint in {run / 'checkpoints'}")
        return found[-1]
    if path.name.endswith(".state.pt"):
        path = path.with_name(path.name.removesuffix(".state.pt") + ".safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {spec}")
    state = _state_path(path)
    if not state.is_file():
        raise FileNotFoundError(
            f"{path} has no training state beside it ({state.name}): it is a model file, "
            "not a training checkpoint (use model.init to start a new run from its weights)"
        )
    match = _NAME.match(path.name)
    step = int(match.group(1)) if match else -1
    return CheckpointFiles(step, path, state)


def load_state(files: CheckpointFiles) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Model weights (``state_dict``) and training state of a checkpoint."""
    _, tensors, _ = read_checkpoint(files.weights)
    state = torch.load(files.state, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{files.state}: not a csnln training state file")
    return tensors, state


def prune_checkpoints(run_dir: str | PathLike[str], keep_last: int) -> list[int]:
    """Delete all but the newest ``keep_last`` checkpoints; returns the deleted steps."""
    found = list_checkpoints(run_dir)
    deleted = []
    for files in found[: max(0, len(found) - keep_last)]:
        files.weights.unlink(missing_ok=True)  # weights first: an incomplete pair is ignored
        files.state.unlink(missing_ok=True)
        deleted.append(files.step)
    return deleted


class StopRequest:
    """Context manager: SIGINT/SIGTERM set :attr:`requested` instead of killing the process.

    The loop checks the flag after each step, writes a checkpoint and returns. A second
    SIGINT (Ctrl-C twice) raises ``KeyboardInterrupt`` at once. Outside the main thread
    (where Python cannot install handlers) this does nothing.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, OSError):
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)
        self._previous.clear()


# --- resuming --------------------------------------------------------------------------------


class TrainState:
    """The loop's counters, saved in checkpoints with the optimizer."""

    step: int = 0
    lr_scale: float = 1.0
    best_psnr: float = -math.inf
    best_step: int = -1


def resume_point(config: TrainConfig, resume: ResumeArg) -> CheckpointFiles | None:
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


def state_payload(
    config: TrainConfig,
    state: TrainState,
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


def restore(
    files: CheckpointFiles,
    loaded: tuple[dict[str, torch.Tensor], dict[str, Any]],
    model: CSNLN,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    state: TrainState,
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
