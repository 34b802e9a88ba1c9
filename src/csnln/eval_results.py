"""Evaluation results: per image and per dataset, as JSON, CSV and the printed table."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from .atomic import atomic_write

PathArg = str | PathLike[str]

__all__ = [
    "CSV_COLUMNS",
    "EvalResult",
    "ImageResult",
    "format_table",
    "results_to_csv",
    "results_to_json",
    "write_csv",
    "write_json",
]


@dataclass
class ImageResult:
    """Metrics of one image at one scale."""

    name: str
    psnr: float
    ssim: float
    seconds: float
    hr_path: str
    lr_path: str | None = None


@dataclass
class EvalResult:
    """Mean metrics of one dataset at one scale.

    ``images`` counts the images measured; ``skipped`` lists the file names of the unreadable
    ones (not in the means). ``psnr``/``ssim``/``seconds_per_image`` are NaN when every image
    was skipped.
    """

    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: int
    skipped: list[str] = field(default_factory=list)
    seconds_per_image: float = float("nan")
    per_image: list[ImageResult] = field(default_factory=list)

    def to_dict(self, *, per_image: bool = True) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become ``None``)."""
        data = asdict(self)
        if not per_image:
            data.pop("per_image")
        return _finite(data)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


# --- writing ---------------------------------------------------------------------------------


def save_png(img: torch.Tensor, path: Path) -> None:
    arr = img.permute(1, 2, 0).contiguous().numpy()
    atomic_write(path, lambda tmp: Image.fromarray(arr, "RGB").save(tmp, format="PNG"))


def _write_text(path: PathArg, text: str) -> Path:
    target = Path(path)
    atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))
    return target


def results_to_json(
    results: Sequence[EvalResult],
    *,
    per_image: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A JSON list with one object per result (:meth:`EvalResult.to_dict`), ``extra`` keys
    (e.g. the model) added to each."""
    rows = [dict(extra or {}) | r.to_dict(per_image=per_image) for r in results]
    return json.dumps(rows, indent=2, allow_nan=False) + "\n"


CSV_COLUMNS = ("dataset", "scale", "psnr", "ssim", "images", "skipped", "seconds_per_image")


def results_to_csv(results: Sequence[EvalResult]) -> str:
    """CSV with a header and one row per result: :data:`CSV_COLUMNS` (``skipped`` is the
    number of skipped images; empty cells for NaN)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        values = [r.psnr, r.ssim, r.seconds_per_image]
        p, q, t = ("" if not math.isfinite(v) else repr(v) for v in values)
        writer.writerow([r.dataset, r.scale, p, q, r.images, len(r.skipped), t])
    return buffer.getvalue()


def write_json(
    results: Sequence[EvalResult],
    path: PathArg,
    *,
    per_image: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write :func:`results_to_json` to ``path`` atomically."""
    return _write_text(path, results_to_json(results, per_image=per_image, extra=extra))


def write_csv(results: Sequence[EvalResult], path: PathArg) -> Path:
    """Write :func:`results_to_csv` to ``path`` atomically."""
    return _write_text(path, results_to_csv(results))


# --- the table -------------------------------------------------------------------------------


def _seconds(t: float) -> str:
    if not math.isfinite(t):
        return "–"
    if t >= 100:
        return f"{t:.0f} s"
    if t >= 1:
        return f"{t:.2f} s"
    return f"{t:.3f} s"


def _metrics(r: EvalResult) -> str:
    if r.images == 0:
        return "–"
    return f"{r.psnr:.4f} / {r.ssim:.5f}"


def format_table(
    results: Sequence[EvalResult],
    *,
    layout: Literal["grid", "rows"] = "grid",
    model: str | None = None,
) -> str:
    """Markdown table of the results (``model``: named in a line above it).

    ``layout="grid"`` (default) is the papers' layout: one row per scale (``×2``, ...), one
    column per dataset, cells ``PSNR / SSIM (seconds per image)`` with PSNR to 4 decimals and
    SSIM to 5, as in numbers.md. ``layout="rows"``: one row per dataset and scale with
    columns dataset, scale, PSNR, SSIM, images, skipped, s/image. Either way a line after
    the table lists skipped images, if any.
    """
    lines: list[str] = [f"Model: {model}", ""] if model else []
    if layout == "grid":
        datasets = list(dict.fromkeys(r.dataset for r in results))
        scales = list(dict.fromkeys(r.scale for r in results))
        cell = {(r.dataset, r.scale): r for r in results}
        lines.append("| scale | " + " | ".join(datasets) + " |")
        lines.append("|---|" + "---|" * len(datasets))
        for s in scales:
            cells = []
            for d in datasets:
                r = cell.get((d, s))
                if r is None:
                    cells.append("")
                else:
                    cells.append(f"{_metrics(r)} ({_seconds(r.seconds_per_image)})")
            lines.append(f"| ×{s} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            "PSNR (dB) / SSIM on Y, scale pixels cropped at each border (seconds of "
            "super-resolution per image; reading images and metrics not counted)."
        )
    elif layout == "rows":
        lines.append("| dataset | scale | PSNR (dB) | SSIM | images | skipped | s/image |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in results:
            p = f"{r.psnr:.4f}" if r.images else "–"
            q = f"{r.ssim:.5f}" if r.images else "–"
            lines.append(
                f"| {r.dataset} | ×{r.scale} | {p} | {q} | {r.images} | {len(r.skipped)} "
                f"| {_seconds(r.seconds_per_image)} |"
            )
    else:
        raise ValueError(f"layout must be 'grid' or 'rows', got {layout!r}")
    skipped = [f"{r.dataset} ×{r.scale}: {', '.join(r.skipped)}" for r in results if r.skipped]
    if skipped:
        lines.append("")
        lines.append("Skipped (unreadable): " + "; ".join(skipped) + ".")
    return "\n".join(lines) + "\n"
