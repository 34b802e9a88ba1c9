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

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .data.datasets import DatasetEntry, dataset_name, find_dataset
from .data.image_files import IMAGE_SUFFIXES
from .data.imresize import imresize
from .data.protocol import (
    UnreadableImageError,
    image_size,
    load_rgb,
    prepare_pair,
    quantize,
    to_uint8_matlab,
)
from .eval_results import (
    EvalResult,
    ImageResult,
    format_table,
    results_to_csv,
    results_to_json,
    save_png,
    write_csv,
    write_json,
)
from .inference import WHOLE, Plan, RunOptions, Upscaler, chop_fits
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
        and plan.tile == WHOLE
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
            ``tile=0`` (whole images), ``chop=True``, ``self_ensemble=True``, ...). Default:
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
            save_png(sr, out_dir / dataset / f"x{scale}" / f"{entry.name}.png")
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
