"""Bicubic baseline on Set5 / Set14 / B100: acceptance check of imresize + metrics.

Protocol per image and scale ``s``:

1. HR loaded as uint8 RGB (greyscale images such as Set14 ``bridge`` are repeated to 3
   channels by PIL's ``convert('RGB')``), cropped to a multiple of ``s`` (bottom/right);
2. ``LR = round(imresize(HR, 1/s))`` (MATLAB bicubic, float64 on ``[0, 255]``, round half
   away from zero, clamp to ``[0, 255]``, i.e. MATLAB's uint8 output);
3. ``SR = round(imresize(LR, s))`` likewise;
4. PSNR / SSIM on the (unrounded) Y channel, ``s`` pixels cropped at each border.

Prints a Markdown table of mean PSNR / SSIM per dataset and scale.

Usage::

    PYTHONPATH=src python benchmarks/bicubic_baseline.py [--root ../shared/data/benchmark]
        [--datasets Set5 Set14 B100] [--scales 2 3 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from csnln.data.imresize import imresize, modcrop
from csnln.metrics import psnr, ssim

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / ".." / "shared" / "data" / "benchmark"
IMAGE_SUFFIXES = {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"}


def load_rgb_uint8(path: Path) -> torch.Tensor:
    """Image file -> uint8 tensor ``3×H×W`` (greyscale repeated to RGB)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def to_uint8_matlab(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's double -> uint8 conversion: round half away from zero, saturate to 0..255."""
    t = torch.trunc(x)
    r = torch.where((x - t).abs() == 0.5, t + torch.sign(x), torch.round(x))  # round() is half-even
    return r.clamp(0, 255).to(torch.uint8)


def bicubic_sr(hr: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(HR cropped, SR)``, both uint8 ``3×H×W``, for the bicubic down/up round trip."""
    hr = modcrop(hr, scale)
    lr = to_uint8_matlab(imresize(hr.to(torch.float64), 1 / scale))
    sr = to_uint8_matlab(imresize(lr.to(torch.float64), float(scale)))
    assert sr.shape == hr.shape, (sr.shape, hr.shape)
    return hr, sr


def evaluate_dataset(folder: Path, scale: int) -> tuple[float, float, int]:
    """Mean PSNR (dB) and SSIM of bicubic SR over the images in ``folder``."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    psnrs, ssims = [], []
    for path in files:
        hr, sr = bicubic_sr(load_rgb_uint8(path), scale)
        psnrs.append(psnr(sr, hr, crop=scale))
        ssims.append(ssim(sr, hr, crop=scale))
    return float(np.mean(psnrs)), float(np.mean(ssims)), len(files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--datasets", nargs="+", default=["Set5", "Set14", "B100"])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 3, 4])
    args = parser.parse_args(argv)

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    results: dict[tuple[str, int], tuple[float, float]] = {}
    t0 = time.perf_counter()
    for name in args.datasets:
        folder = args.root / name / "HR"
        if not folder.is_dir():
            print(f"skipping {name}: {folder} not found", file=sys.stderr)
            continue
        for s in args.scales:
            p, q, n = evaluate_dataset(folder, s)
            results[(name, s)] = (p, q)
            print(
                f"{name} x{s}: PSNR {p:.4f} dB, SSIM {q:.5f} ({n} images, "
                f"{time.perf_counter() - t0:.1f}s)",
                file=sys.stderr,
            )

    names = [n for n in args.datasets if any((n, s) in results for s in args.scales)]
    print("| scale | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for s in args.scales:
        cells = []
        for n in names:
            p, q = results.get((n, s), (float("nan"), float("nan")))
            cells.append(f"{p:.4f} / {q:.5f}")
        print(f"| ×{s} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
