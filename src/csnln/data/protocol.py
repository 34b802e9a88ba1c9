"""The benchmark protocol's image handling, shared by evaluation, training, the demo and the
attention maps: reading an image as uint8 RGB, making the LR of an HR by MATLAB's bicubic
(rounded like MATLAB's ``uint8``), and quantising a model's output like the authors' code.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .imresize import imresize, modcrop

__all__ = [
    "PIL_ERRORS",
    "UnreadableImageError",
    "check_sizes",
    "image_size",
    "load_rgb",
    "prepare_pair",
    "quantize",
    "to_uint8_matlab",
]

PathArg = str | PathLike[str]

#: Smallest SSIM window: an HR image must keep 11x11 pixels after the ``s``-pixel border crop.
SSIM_WINDOW = 11

# Errors PIL raises on unreadable, truncated or hostile files.
PIL_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
)


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; ``path`` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot read image ({reason})")
        self.path = path
        self.reason = reason


def load_rgb(path: PathArg) -> torch.Tensor:
    """Image file -> ``uint8`` tensor ``3 x H x W`` (greyscale/palette converted to RGB).

    Raises :class:`UnreadableImageError` (naming the file) when it cannot be decoded and
    ``FileNotFoundError`` when it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except PIL_ERRORS as exc:
        raise UnreadableImageError(path, str(exc) or type(exc).__name__) from exc
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def image_size(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` from the file header, or None when the header cannot be read."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except PIL_ERRORS:
        return None
    return h, w


def to_uint8_matlab(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``uint8(x)`` for ``[0, 255]`` data: round half away from zero, saturate."""
    t = torch.trunc(x)
    r = torch.where((x - t).abs() == 0.5, t + torch.sign(x), torch.round(x))  # round: half-even
    return r.clamp(0, 255).to(torch.uint8)


def quantize(sr: torch.Tensor) -> torch.Tensor:
    """The authors' ``quantize`` (rgb_range 1): ``round(clamp(255 * sr, 0, 255))`` as uint8."""
    return sr.mul(255).clamp(0, 255).round().to(torch.uint8)


def check_sizes(
    hr_size: tuple[int, int],
    lr_size: tuple[int, int] | None,
    scale: int,
    hr_path: Path,
    lr_path: Path | None,
) -> None:
    """ValueError naming the file when LR x scale != cropped HR, or HR is too small."""
    h, w = hr_size[0] - hr_size[0] % scale, hr_size[1] - hr_size[1] % scale
    if lr_size is not None and (lr_size[0] * scale, lr_size[1] * scale) != (h, w):
        raise ValueError(
            f"{lr_path}: LR image is {lr_size[1]}x{lr_size[0]}, but x{scale} of it must match "
            f"the HR {hr_path.name} cropped to a multiple of {scale} ({w}x{h}); "
            f"expected {w // scale}x{h // scale}"
        )
    need = SSIM_WINDOW + 2 * scale
    if h < need or w < need:
        raise ValueError(
            f"{hr_path}: image is {hr_size[1]}x{hr_size[0]}; at x{scale} it needs at least "
            f"{need}x{need} pixels (SSIM's 11x11 window after a {scale}-pixel border crop)"
        )


def prepare_pair(
    hr_path: PathArg, scale: int, lr_path: PathArg | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(HR, LR)`` of one image, both ``uint8`` ``3 x H x W``, by the evaluation protocol.

    HR is cropped to a multiple of ``scale``; LR is read from ``lr_path`` when given (and must
    be exactly HR's size / ``scale``), else MATLAB ``imresize(HR, 1/scale)`` in float64
    rounded half away from zero.

    Raises:
        UnreadableImageError: a file cannot be decoded (names it).
        ValueError: LR/HR size mismatch (names the LR file) or an image too small to measure.
    """
    hr_path = Path(hr_path)
    hr_full = load_rgb(hr_path)
    lr_file = Path(lr_path) if lr_path is not None else None
    lr = load_rgb(lr_file) if lr_file is not None else None
    check_sizes(
        tuple(hr_full.shape[-2:]),  # type: ignore[arg-type]
        tuple(lr.shape[-2:]) if lr is not None else None,  # type: ignore[arg-type]
        scale,
        hr_path,
        lr_file,
    )
    hr = modcrop(hr_full, scale)
    if lr is None:
        lr = to_uint8_matlab(imresize(hr.to(torch.float64), 1 / scale))
    return hr, lr
