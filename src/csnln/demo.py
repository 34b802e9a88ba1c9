"""``csnln demo``: the bundled model on a bundled image, against bicubic and the original.

The sample is Set5's "butterfly" (256 x 256, the classic super-resolution test image; never
seen in training). It is made small by the benchmarks' protocol (MATLAB bicubic, rounded to
uint8), upscaled back by bicubic and by the model, and both are measured against the original
(PSNR / SSIM on Y, ``scale`` pixels cropped at each border, as in the papers' tables).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .comparison import write_comparison
from .data.imresize import imresize
from .data.protocol import prepare_pair, quantize
from .imageio import write_image
from .inference import Upscaler
from .metrics import psnr, ssim
from .zoo import default_model_name, load_model, model_label

SAMPLE = Path(__file__).parent / "samples" / "butterfly.png"

__all__ = ["SAMPLE", "DemoResult", "demo"]


@dataclass(frozen=True)
class DemoResult:
    """What :func:`demo` measured and wrote."""

    scale: int
    model: str
    psnr_bicubic: float
    ssim_bicubic: float
    psnr_model: float
    ssim_model: float
    seconds: float
    files: tuple[Path, ...]


def demo(
    scale: int = 4,
    output_dir: str | Path = ".",
    *,
    model: str | None = None,
    precision: str = "auto",
    device: str = "auto",
    overwrite: bool = False,
) -> DemoResult:
    """Shrink the sample by ``scale``, upscale it back with ``model`` (default: the bundled
    model) and bicubic, measure both against the original, and write to ``output_dir``:
    ``butterfly_x{s}_lr.png`` (the small input), ``butterfly_x{s}_csnln.png`` (the result)
    and ``butterfly_x{s}_compare.png`` (bicubic | model, with a zoomed detail).

    Raises ``FileExistsError`` for an existing output unless ``overwrite``.
    """
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
    name = model or default_model_name(scale)
    network = load_model(name, scale)
    hr, lr = prepare_pair(SAMPLE, scale)  # uint8, 3 x H x W
    lr_float = lr.to(torch.float32).div(255)
    upscaler = Upscaler(network, precision=precision, device=device)
    start = time.perf_counter()
    sr = quantize(upscaler(lr_float[None])[0].cpu())
    seconds = time.perf_counter() - start
    bicubic = quantize(imresize(lr_float[None], float(scale))[0])
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{SAMPLE.stem}_x{scale}"
    label = model_label(name, scale)
    files = (
        write_image(out / f"{stem}_lr.png", lr_float, overwrite=overwrite),
        write_image(out / f"{stem}_csnln.png", sr.float() / 255, overwrite=overwrite),
        write_comparison(
            out / f"{stem}_compare.png",
            lr_float,
            sr.float() / 255,
            label=label,
            overwrite=overwrite,
        ),  # fmt: skip
    )
    return DemoResult(
        scale=scale,
        model=label,
        psnr_bicubic=float(psnr(bicubic, hr, crop=scale)),
        ssim_bicubic=float(ssim(bicubic, hr, crop=scale)),
        psnr_model=float(psnr(sr, hr, crop=scale)),
        ssim_model=float(ssim(sr, hr, crop=scale)),
        seconds=seconds,
        files=files,
    )
