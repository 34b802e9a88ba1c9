"""What a run reports: the mean loss and speed between rows, ``log.csv`` (kept exact across
resumes), ``train.log`` and the console (under the progress bar), TensorBoard."""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..atomic import atomic_write
from ..distributed import DistInfo

__all__ = ["CSV_COLUMNS", "CsvLog", "Meter", "start_logging", "stop_logging", "validation_curve"]

log = logging.getLogger("csnln.training")

CSV_COLUMNS = ("step", "loss", "lr", "it_s", "val_psnr", "val_ssim", "elapsed_s")


class Meter:
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


class CsvLog:
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


class TqdmHandler(logging.Handler):
    """Log lines on stderr that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover
            self.handleError(record)


def start_logging(run_dir: Path, info: DistInfo) -> list[logging.Handler]:
    handlers: list[logging.Handler] = []
    log.setLevel(logging.INFO if info.is_main else logging.ERROR)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        console = TqdmHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        logfile = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handlers = [console, logfile]
    for handler in handlers:
        log.addHandler(handler)
    return handlers


def stop_logging(handlers: Sequence[logging.Handler]) -> None:
    for handler in handlers:
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.NOTSET)


def tensorboard_writer(run_dir: Path, start_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("log.tensorboard is on, but tensorboard is not installed: not writing it")
        return None
    return SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
