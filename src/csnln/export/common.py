"""What every export format shares: the report of a written, checked file and the error of
one that was not written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ExportError(RuntimeError):
    """An export that did not produce a graph matching PyTorch (nothing was written)."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how it was checked."""

    path: Path
    scale: int
    tile: tuple[int, int]  # height, width
    overlap: int
    margin: int
    opset: int
    checked_batches: tuple[int, ...]
    max_abs_difference: float  # onnxruntime against PyTorch, float32, over every check

    def summary(self) -> str:
        return (
            f"{self.path}: x{self.scale}, input N x 3 x {self.tile[0]} x {self.tile[1]} (any N), "
            f"opset {self.opset}; onnxruntime matches PyTorch to {self.max_abs_difference:.1e} "
            f"(batches {', '.join(map(str, self.checked_batches))}); tile it with overlap "
            f"{self.overlap}"
        )
