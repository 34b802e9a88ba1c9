"""Evaluation that reproduces the published super-resolution tables (``csnln eval``).

The protocol, per image and scale ``s`` (as in the EDSR/RCAN/CSNLN test code):

1. HR is read as ``uint8`` RGB (greyscale and palette images are converted to RGB by
   repeating the grey level) and cropped to a multiple of ``s`` at the bottom/right
   (:func:`~csnln.data.imresize.modcrop`).
2. LR is the provided LR file in the EDSR benchmark layout when it exists; otherwise the
   MATLAB-exact bicubic ``imresize(HR, 1/s)`` computed in float64 on ``[0, 255]`` and rounded
   half away from zero to ``uint8`` (MATLAB's ``uint8(...)``).
3. The model gets LR as float32 in ``[0, 1]`` (``1 x 3 x h x w``); its output is clamped and
   quantised to ``uint8`` exactly as the authors' ``quantize``:
   ``round(clamp(255 * x, 0, 255))``. For the ``bicubic`` model (:class:`csnln.zoo.Bicubic`)
   the same resize is computed in float64 on ``[0, 255]`` and rounded half away from zero
   (only the dtype differs; this is what the published Python-protocol bicubic numbers do —
   the float32 path differs by one grey level on a few pixels). With self-ensemble, explicit
   tiles or the chop, bicubic goes through the generic float32 path like any model.
4. PSNR and SSIM (:mod:`csnln.metrics`) on the unrounded Y channel, ``s`` pixels cropped at
   each border, on ``[0, 255]``. A dataset's number is the mean over its images.

Datasets (:func:`find_dataset`): a folder of HR images, or the EDSR benchmark layout
``DIR/HR/<name>.png`` + ``DIR/LR_bicubic/X{s}/<name>x{s}.png``, whose LR files are used when
present. The dataset's name is the folder's name (the parent's when the folder given is
itself called ``HR``).

Bad input: an unreadable image (HR, or LR file) is reported with an
:class:`UnreadableImageWarning` naming it, skipped and listed in
:attr:`EvalResult.skipped`. A missing or empty dataset folder, an LR/HR size mismatch in the
benchmark layout, or an image too small to measure raise ``FileNotFoundError`` /
``ValueError`` naming the folder or file, before any model runs.

``seconds_per_image`` is the mean wall time of the super-resolution step (model, tiling,
self-ensemble and quantisation, including the copy back from the device), not of reading
images or computing metrics.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from .data.files import IMAGE_SUFFIXES, images_in, is_image_file
from .data.imresize import imresize
from .data.protocol import (
    UnreadableImageError,
    check_sizes,
    image_size,
    load_rgb,
    prepare_pair,
    quantize,
    to_uint8_matlab,
)
from .files import atomic_write
from .inference import Plan, RunOptions, Upscaler, chop_fits
from .metrics import psnr, ssim
from .models.descriptor import describe
from .progress import progress as progress_bar
from .zoo import BUNDLED, Bicubic, bundled_models, load_model

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetEntry",
    "EvalResult",
    "ImageResult",
    "UnreadableImageError",
    "UnreadableImageWarning",
    "dataset_name",
    "evaluate",
    "find_dataset",
    "format_table",
    "load_rgb",
    "prepare_pair",
    "quantize",
    "results_to_csv",
    "results_to_json",
    "super_resolve",
    "to_uint8_matlab",
    "write_csv",
    "write_json",
]

#: File suffixes (lower case) taken as images in a dataset folder; other files are ignored.

PathArg = str | PathLike[str]
ModelArg = str | PathLike[str] | nn.Module | Upscaler | Mapping[int, nn.Module | Upscaler]

class UnreadableImageWarning(UserWarning):
    """Emitted by :func:`evaluate` for each unreadable image it skips (once per file)."""


class DatasetEntry(NamedTuple):
    """One image of a dataset: its name (the HR file's stem), HR file, LR file or None."""

    name: str
    hr_path: Path
    lr_path: Path | None


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


# --- reading ---------------------------------------------------------------------------------


def dataset_name(folder: PathArg) -> str:
    """The dataset's name: the folder's name, or its parent's when the folder is ``HR``."""
    path = Path(folder).resolve()
    return path.parent.name if path.name == "HR" else path.name


def find_dataset(folder: PathArg, scale: int) -> list[DatasetEntry]:
    """The images of a dataset folder for ``scale``, sorted by file name.

    ``folder`` is either a folder of HR images, or the EDSR benchmark layout ``folder/HR`` +
    ``folder/LR_bicubic/X{scale}/<name>x{scale}.<ext>``; an LR file is used when present
    (``lr_path`` is None otherwise and LR is made by bicubic downscaling). Files whose
    suffix is not in :data:`IMAGE_SUFFIXES` are ignored.

    Image headers are read to check sizes up front: a ``ValueError`` names an LR file whose
    size times ``scale`` differs from its HR cropped to a multiple of ``scale``, or an HR
    image too small to measure. Files whose header cannot be read are returned anyway (and
    skipped by :func:`evaluate` with a warning).

    Raises:
        FileNotFoundError: the folder does not exist or holds no images.
        ValueError: ``folder`` is not a folder, a bad scale, or a size problem (see above).
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if root.is_file() and is_image_file(root):  # one image: a dataset of one
        return [DatasetEntry(root.stem, root, None)]
    if not root.is_dir():
        raise ValueError(f"dataset path is not a folder or an image file: {root}")
    hr_dir, lr_dir = root, None
    if (root / "HR").is_dir():
        hr_dir = root / "HR"
        lr_dir = root / "LR_bicubic" / f"X{scale}"
    files = images_in(hr_dir)
    if not files:
        where = f"{hr_dir} (benchmark layout: {root}/HR)" if hr_dir != root else str(root)
        raise FileNotFoundError(
            f"no images in dataset folder {where}: expected {', '.join(IMAGE_SUFFIXES)} files"
        )
    lr_files: dict[str, Path] = {}
    if lr_dir is not None and lr_dir.is_dir():
        lr_files = {p.stem: p for p in images_in(lr_dir)}
    entries = []
    for hr_path in files:
        lr_path = lr_files.get(f"{hr_path.stem}x{scale}")
        hr_size = image_size(hr_path)
        if hr_size is not None:
            lr_size = image_size(lr_path) if lr_path is not None else None
            check_sizes(hr_size, lr_size, scale, hr_path, lr_path)
        entries.append(DatasetEntry(hr_path.stem, hr_path, lr_path))
    return entries


# --- running ---------------------------------------------------------------------------------


def _check_chop(entries: Sequence[DatasetEntry], scale: int) -> None:
    """ValueError naming the first image too small for ``chop`` (sizes from file headers)."""
    for entry in entries:
        if entry.lr_path is not None:
            size = image_size(entry.lr_path)
        else:
            hr_size = image_size(entry.hr_path)
            size = None if hr_size is None else (hr_size[0] // scale, hr_size[1] // scale)
        if size is not None and not chop_fits(size[1], size[0], scale=scale):
            raise ValueError(
                f"{entry.lr_path or entry.hr_path}: LR {size[1]}x{size[0]} (x{scale}) is too "
                "small for --chop, the authors' tiling (its quarters are half the image plus "
                "10 pixels); evaluate it without --chop"
            )


def super_resolve(
    upscaler: Upscaler,
    lr: torch.Tensor,
    *,
    plan: Plan | None = None,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """SR of one ``uint8`` LR image ``3 x h x w`` -> ``uint8`` ``3 x sh x sw`` on the CPU.

    The model sees float32 in ``[0, 1]``; the output is quantised with :func:`quantize`. For
    the bicubic model on whole images without self-ensemble, the resize runs in float64 on
    ``[0, 255]`` with MATLAB rounding (see the module docstring).
    """
    if lr.dtype != torch.uint8 or lr.dim() != 3 or lr.shape[0] != 3:
        raise ValueError(f"expected a uint8 3 x H x W image, got {lr.dtype} {tuple(lr.shape)}")
    h, w = lr.shape[-2:]
    plan = plan if plan is not None else upscaler.plan(h, w)
    if (
        isinstance(upscaler.model, Bicubic)
        and not upscaler.self_ensemble
        and not upscaler.chop
        and plan.tile is None
    ):
        x = lr.to(upscaler.device, torch.float64)
        out = to_uint8_matlab(imresize(x, float(upscaler.scale))).cpu()
        if on_tile:
            on_tile()
        return out
    x = lr.to(torch.float32).div(255)[None]
    return quantize(upscaler(x, plan=plan, on_tile=on_tile)[0]).cpu()


#: How ``evaluate`` runs a model by default: its tile plan (as ``csnln upscale``), in float32
#: so that a table is the same on every machine.
EVAL_OPTIONS = RunOptions(precision="fp32")


def _upscalers(
    model: ModelArg,
    scales: int | Sequence[int] | None,
    options: RunOptions | None,
    runtime: Mapping[str, Any],
) -> dict[int, Upscaler]:
    """One :class:`Upscaler` per scale (models loaded up front, so errors come early).
    ``options`` None: :data:`EVAL_OPTIONS`, or an Upscaler's own."""
    wanted: list[int] | None
    if scales is None:
        wanted = None
    elif isinstance(scales, int):
        wanted = [scales]
    else:
        wanted = list(dict.fromkeys(int(s) for s in scales))
        if not wanted:
            raise ValueError("no scales given")

    def wrap(m: nn.Module | Upscaler) -> Upscaler:
        if isinstance(m, Upscaler):
            if options is not None:
                raise ValueError("an Upscaler carries its own options; do not also pass options")
            return m
        if not isinstance(m, nn.Module):
            raise TypeError(f"expected a model or an Upscaler, got {type(m)!r}")
        return Upscaler(m, options if options is not None else EVAL_OPTIONS)

    if isinstance(model, (str, PathLike)):
        if wanted is None and str(model) in BUNDLED:  # a bundled name: all of its scales
            wanted = sorted(bundled_models().get(str(model), {})) or None
        if wanted is None:
            loaded = load_model(model, None, **runtime)
            return {describe(loaded).scale: wrap(loaded)}
        return {s: wrap(load_model(model, s, **runtime)) for s in wanted}
    if isinstance(model, Mapping):
        ups = {int(s): wrap(m) for s, m in model.items()}
    else:
        up = wrap(model)
        ups = {up.scale: up}
    for s, up in ups.items():
        if up.scale != s:
            raise ValueError(f"the model given for x{s} is a x{up.scale} model")
    if wanted is None:
        return dict(sorted(ups.items()))
    missing = [s for s in wanted if s not in ups]
    if missing:
        have = ", ".join(f"x{s}" for s in sorted(ups))
        need = ", ".join(f"x{s}" for s in missing)
        raise ValueError(f"no model for {need} (the model given is for {have})")
    return {s: ups[s] for s in wanted}


def evaluate(
    model_or_upscaler: ModelArg,
    datasets: PathArg | Sequence[PathArg],
    scales: int | Sequence[int] | None = None,
    options: RunOptions | None = None,
    *,
    save_images: PathArg | None = None,
    progress: bool = True,
    model_options: Mapping[str, Any] | None = None,
    **option_keywords: Any,
) -> list[EvalResult]:
    """Mean PSNR/SSIM of a model on benchmark datasets, by the published protocol.

    Args:
        model_or_upscaler: ``"bicubic"``, a bundled model name or a checkpoint path (loaded
            for each scale with :func:`csnln.zoo.load_model`); a model with a ``.scale``
            (wrapped in an :class:`~csnln.inference.Upscaler` with ``options``); an
            ``Upscaler`` (its own options are used: pass no options); or a mapping
            ``{scale: model or Upscaler}``.
        datasets: dataset folders (see :func:`find_dataset`); names must be distinct.
        scales: the scales to evaluate (default: the model's own scale; every scale of a
            bundled model).
        options: how the model runs (:class:`csnln.RunOptions`, or its fields as keywords:
            ``tile=None``, ``chop=True``, ``self_ensemble=True``, ...). Default:
            :data:`EVAL_OPTIONS`, the model's tile plan in float32.
        save_images: write each SR image as PNG to ``save_images/<dataset>/x<s>/<name>.png``
            (atomically).
        progress: a tqdm progress bar per dataset on stderr.
        model_options: options for building models from a path (e.g. ``chunk_size``).

    Returns:
        One :class:`EvalResult` per dataset and scale, datasets in the order given, scales
        in the order given within each.

    Raises:
        FileNotFoundError / ValueError: missing or empty folders, size mismatches, duplicate
        dataset names, bad options, models of the wrong scale (all checked before running).
    """
    if options is not None and option_keywords:
        raise ValueError("give either RunOptions or option keywords, not both")
    if option_keywords:
        options = EVAL_OPTIONS.replace(**option_keywords)
    folders = [datasets] if isinstance(datasets, (str, PathLike)) else list(datasets)
    if not folders:
        raise ValueError("no datasets given")
    upscalers = _upscalers(model_or_upscaler, scales, options, model_options or {})
    names: dict[str, Path] = {}
    plan: list[tuple[str, dict[int, list[DatasetEntry]]]] = []
    for folder in folders:
        name = dataset_name(folder)
        if name in names:
            raise ValueError(
                f"two datasets are named {name!r} ({names[name]} and {folder}); rename one folder"
            )
        names[name] = Path(folder)
        by_scale = {s: find_dataset(folder, s) for s in upscalers}
        for s, entries in by_scale.items():
            if upscalers[s].chop:
                _check_chop(entries, s)
        plan.append((name, by_scale))

    out_dir = Path(save_images) if save_images is not None else None
    warned: set[Path] = set()
    results: list[EvalResult] = []
    for name, by_scale in plan:
        total = sum(len(entries) for entries in by_scale.values())
        with progress_bar(
            total=total, desc=name, unit="img", enabled=progress, dynamic_ncols=True
        ) as bar:
            for s, entries in by_scale.items():
                results.append(
                    _evaluate_one(
                        upscalers[s], name, s, entries, bar=bar, warned=warned, out_dir=out_dir
                    )
                )
    return results


def _evaluate_one(
    upscaler: Upscaler,
    dataset: str,
    scale: int,
    entries: Sequence[DatasetEntry],
    *,
    bar: Any,
    warned: set[Path],
    out_dir: Path | None,
) -> EvalResult:
    per_image: list[ImageResult] = []
    skipped: list[str] = []
    for entry in entries:
        bar.set_postfix_str(f"x{scale} {entry.name}", refresh=False)
        try:
            hr, lr = prepare_pair(entry.hr_path, scale, entry.lr_path)
        except UnreadableImageError as exc:
            if exc.path not in warned:
                warned.add(exc.path)
                warnings.warn(f"{exc}; skipped", UnreadableImageWarning, stacklevel=3)
            skipped.append(entry.hr_path.name)
            bar.update(1)
            continue
        plan = upscaler.plan(*lr.shape[-2:])  # once per image: the bar and the run share it
        tiles = max(1, plan.calls)
        done = 0

        def on_tile(tiles: int = tiles, name: str = entry.name) -> None:
            nonlocal done
            done += 1
            if tiles > 1:
                bar.set_postfix_str(f"x{scale} {name} tile {done}/{tiles}")

        start = time.perf_counter()
        sr = super_resolve(upscaler, lr, plan=plan, on_tile=on_tile)
        seconds = time.perf_counter() - start
        if sr.shape != hr.shape:
            raise RuntimeError(
                f"{entry.hr_path}: the model returned {tuple(sr.shape)} for an HR of "
                f"{tuple(hr.shape)}"
            )
        per_image.append(
            ImageResult(
                name=entry.name,
                psnr=float(psnr(sr, hr, crop=scale)),
                ssim=float(ssim(sr, hr, crop=scale)),
                seconds=seconds,
                hr_path=str(entry.hr_path),
                lr_path=str(entry.lr_path) if entry.lr_path is not None else None,
            )
        )
        if out_dir is not None:
            _save_png(sr, out_dir / dataset / f"x{scale}" / f"{entry.name}.png")
        # The bar counts whole images (reading, the bicubic LR, metrics); the table's seconds
        # are the super-resolution alone: the bar shows those too, so the two agree.
        bar.set_postfix_str(f"x{scale} {entry.name}: SR {seconds:.2f} s", refresh=False)
        bar.update(1)
    n = len(per_image)
    return EvalResult(
        dataset=dataset,
        scale=scale,
        psnr=float(np.mean([r.psnr for r in per_image])) if n else float("nan"),
        ssim=float(np.mean([r.ssim for r in per_image])) if n else float("nan"),
        images=n,
        skipped=skipped,
        seconds_per_image=float(np.mean([r.seconds for r in per_image])) if n else float("nan"),
        per_image=per_image,
    )


# --- writing ---------------------------------------------------------------------------------


def _save_png(img: torch.Tensor, path: Path) -> None:
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


def format_table(results: Sequence[EvalResult], *, layout: Literal["grid", "rows"] = "grid") -> str:
    """Markdown table of the results.

    ``layout="grid"`` (default) is the papers' layout: one row per scale (``×2``, ...), one
    column per dataset, cells ``PSNR / SSIM (seconds per image)`` with PSNR to 4 decimals and
    SSIM to 5, as in numbers.md. ``layout="rows"``: one row per dataset and scale with
    columns dataset, scale, PSNR, SSIM, images, skipped, s/image. Either way a line after
    the table lists skipped images, if any.
    """
    lines: list[str] = []
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
