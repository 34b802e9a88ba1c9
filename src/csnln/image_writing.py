"""Writing images for ``csnln upscale``: the format from the suffix, the source's bit depth,
ICC profile and EXIF carried over, atomically (temporary file, then rename), never replacing a
file unless asked; :func:`check_writable` answers before any compute."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, features

from .atomic import atomic_write
from .image_formats import (
    ALPHA_FORMATS,
    EXIF_FORMATS,
    FORMATS,
    ICC_FORMATS,
    SUPPORTED_EXTENSIONS,
    PathLike,
    matching_icc,
    normalise_exif,
    tensor_to_hwc,
)
from .png16 import write_png16

__all__ = ["check_writable", "write_image", "write_picture"]


def _format_for(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"unsupported output extension {path.suffix or '(none)'!r} for {path}; "
            f"supported: {' '.join(SUPPORTED_EXTENSIONS)}"
        )
    return fmt


def check_writable(path: PathLike, overwrite: bool = False) -> Path:
    """Fail early (before any expensive work) if ``write_image(path, ...)`` cannot succeed.

    ValueError for an unsupported extension, FileExistsError if the file exists and not
    ``overwrite``, IsADirectoryError, FileNotFoundError for a missing folder, PermissionError.
    """
    path = Path(path)
    _format_for(path)
    if path.is_dir():
        raise IsADirectoryError(f"output path is a folder: {path}")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"output file already exists: {path} (pass overwrite to replace it)")
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    # Try it: access() says yes to root on read-only file systems (/sys, /proc, a read-only
    # mount), where only the write itself fails, after all the compute.
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as exc:
        raise PermissionError(f"cannot write into folder {folder}: {exc.strerror}") from None
    return path


def write_image(
    path: PathLike,
    rgb: torch.Tensor,
    *,
    alpha: torch.Tensor | None = None,
    grey: bool = False,
    bit_depth: int = 8,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    overwrite: bool = False,
    quality: int = 95,
) -> Path:
    """Write a 3xHxW float image (clamped to [0, 1], rounded) atomically; returns the path.

    The format comes from the extension. ``grey`` writes one channel (channel mean); ``alpha``
    (1xHxW) is kept for PNG/WebP/TIFF and dropped with a warning for JPEG/BMP. 16 bits are
    written for PNG and greyscale TIFF, otherwise 8 (with a warning if 16 was asked for). ICC
    profile and EXIF go to the formats that store them (PNG, JPEG, WebP; TIFF: ICC only).
    JPEG/WebP use ``quality``; JPEG is written without chroma subsampling.
    """
    path = check_writable(path, overwrite)
    fmt = _format_for(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if alpha is not None and fmt not in ALPHA_FORMATS:
        warnings.warn(f"{path}: {fmt} has no transparency; alpha dropped", stacklevel=2)
        alpha = None
    sixteen = fmt == "PNG" or (fmt == "TIFF" and grey and alpha is None)
    if bit_depth == 16 and not sixteen:
        warnings.warn(f"{path}: written with 8 bits per channel ({fmt})", stacklevel=2)
    depth = 16 if bit_depth == 16 and sixteen else 8
    dropped = [
        name
        for name, value, formats in (
            ("colour profile", icc_profile, ICC_FORMATS),
            ("EXIF", exif, EXIF_FORMATS),
        )
        if value and fmt not in formats
    ]
    if dropped:
        warnings.warn(f"{path}: {fmt} output drops the {' and '.join(dropped)}", stacklevel=2)
    icc = icc_profile if fmt in ICC_FORMATS else None
    exif = normalise_exif(exif) if fmt in EXIF_FORMATS else None
    pixels_grey = grey and fmt != "WEBP"  # WebP has no greyscale: grey is written as RGB
    icc = matching_icc(icc, pixels_grey, f"{path}: ")

    arr = tensor_to_hwc(rgb, alpha, grey, np.uint16 if depth == 16 else np.uint8)
    if grey and not pixels_grey:
        arr = np.concatenate([arr[:, :, :1]] * 3 + [arr[:, :, 1:]], axis=2)

    def save(stream: BinaryIO) -> None:
        if fmt == "PNG" and depth == 16:
            write_png16(stream, arr, icc, exif)
            return
        options: dict[str, object] = {}
        if icc:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = exif
        if fmt in ("JPEG", "WEBP"):
            options["quality"] = quality
        if fmt == "JPEG":
            options["subsampling"] = 0
        if fmt == "TIFF" and features.check("libtiff"):
            options["compression"] = "tiff_lzw"
        Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(
            stream, format=fmt, **options
        )

    _atomic_write(path, save, overwrite)
    return path


def _atomic_write(path: Path, save: Callable[[BinaryIO], None], overwrite: bool) -> None:
    """Write through ``save(stream)`` atomically (see :func:`csnln.atomic.atomic_write`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as stream:
            save(stream)

    try:
        atomic_write(path, write, overwrite=overwrite)
    except FileExistsError as exc:
        raise FileExistsError(f"output file already exists: {path} (pass overwrite)") from exc


def write_picture(
    path: PathLike,
    picture: Image.Image,
    *,
    icc_profile: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a made-up RGB picture (a comparison, a heat map) with :func:`write_image`."""
    pixels = np.asarray(picture.convert("RGB")).copy()
    rgb = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255)
    return write_image(path, rgb, icc_profile=icc_profile, overwrite=overwrite)
