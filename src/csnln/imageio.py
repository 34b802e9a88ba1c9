"""Image input/output for ``csnln upscale``: read a photo faithfully, write the result back.

Pixels travel as float32 tensors in [0, 1] (colour 3xHxW, alpha 1xHxW); everything needed to
write the result the way the source was stored (greyscale, 8/16 bits, ICC profile, EXIF) travels
alongside in :class:`LoadedImage`.

Pillow decodes 16-bit RGB(A) and grey+alpha PNGs to 8 bits (it keeps only the high byte) and
cannot write them at all, so those PNGs are read and written by the small numpy/zlib codec at the
end of this module. 16-bit greyscale PNG and TIFF go through Pillow ("I;16").
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .data.image_files import expand_inputs
from .image_formats import (
    ORIENTATION,
    SUPPORTED_EXTENSIONS,
    PathLike,
    matching_icc,
    normalise_exif,
    reset_orientation,
    tensor_to_hwc,
)
from .image_writing import check_writable, write_image, write_picture
from .png16 import decode_png16, is_png16_colour

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ImageReadError",
    "LoadedImage",
    "check_writable",
    "expand_inputs",
    "image_from_array",
    "image_from_pil",
    "read_image",
    "to_array",
    "to_pil",
    "write_image",
    "write_picture",
]


class ImageReadError(ValueError):
    """A file exists but cannot be decoded; the message is one line naming file and reason."""

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"cannot read {path}: {self.reason}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        return type(self), (self.path, self.reason)


@dataclass
class LoadedImage:
    """Decoded pixels plus what is needed to write a result the way the source was stored."""

    rgb: torch.Tensor = field(repr=False)  # 3xHxW float32 in [0, 1]; grey repeated to 3 channels
    alpha: torch.Tensor | None = field(repr=False)  # 1xHxW float32 in [0, 1]
    grey: bool  # source was greyscale: write the result greyscale
    bit_depth: int  # 8 or 16
    icc_profile: bytes | None = field(repr=False)
    exif: bytes | None = field(
        repr=False
    )  # b"Exif\0\0..."; orientation already applied, reset to 1
    format: str  # Pillow format name ("PNG", "JPEG", ...); "" for arrays / in-memory images
    path: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[2]), int(self.rgb.shape[1])


# --------------------------------------------------------------------------------------------
# kind <-> tensors: numpy arrays and PIL images
# --------------------------------------------------------------------------------------------

Parts: TypeAlias = "tuple[torch.Tensor, torch.Tensor | None, bool, int]"


def _parts_from_array(array: np.ndarray) -> Parts:
    """HxW or HxWxC (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) -> (rgb, alpha, grey, bit_depth).

    uint8 is 8-bit, uint16 is 16-bit, floats are taken as [0, 1] (clamped) and count as 16-bit.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or 0 in arr.shape:
        raise ValueError(f"expected an HxW or HxWxC image array (C = 1-4), got shape {arr.shape}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2):
        depth = 8 * arr.dtype.itemsize
        x = torch.from_numpy(arr.astype(np.float32) / float(2**depth - 1))
    elif arr.dtype.kind == "f":
        depth = 16
        x = torch.from_numpy(np.clip(arr.astype(np.float32), 0.0, 1.0))
    else:
        raise ValueError(f"unsupported image array dtype {arr.dtype} (use uint8, uint16 or float)")
    x = x.permute(2, 0, 1)
    channels = x.shape[0]
    grey = channels <= 2
    rgb = x[:1].repeat(3, 1, 1) if grey else x[:3].contiguous()
    alpha = x[-1:].contiguous() if channels in (2, 4) else None
    return rgb, alpha, grey, depth


def _normal_mode(img: Image.Image) -> str:
    """The mode among L, LA, RGB, RGBA, I;16, I, F that represents ``img`` without loss."""
    mode = img.mode
    if mode.startswith("I;16"):
        return "I;16"
    if mode in ("LA", "RGBA", "I", "F"):
        return mode
    transparent = img.has_transparency_data
    if mode in ("1", "L"):
        return "LA" if transparent and mode == "L" else "L"
    if mode == "La":
        return "LA"
    return "RGBA" if transparent or mode in ("RGBa", "PA") else "RGB"


def _parts_from_pil(img: Image.Image) -> Parts:
    mode = _normal_mode(img)
    if img.mode != mode and not img.mode.startswith("I;16"):
        img = img.convert(mode)
    arr = np.asarray(img)
    if mode == "I":  # 32-bit int greyscale (some 16-bit PNG/TIFF readers): treat as 16-bit
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
    elif mode == "I;16":
        arr = arr.astype(np.uint16)  # native byte order
    return _parts_from_array(arr)


def image_from_array(array: np.ndarray) -> LoadedImage:
    """Wrap a numpy image (HxW or HxWxC; uint8, uint16 or float in [0, 1]) as a LoadedImage."""
    rgb, alpha, grey, depth = _parts_from_array(array)
    return LoadedImage(rgb, alpha, grey, depth, None, None, "", None)


def image_from_pil(img: Image.Image) -> LoadedImage:
    """Wrap a PIL image as a LoadedImage, pixels as they are (EXIF orientation not applied).

    Palette images become RGB/RGBA; a Pillow image opened from a 16-bit RGB PNG has already
    been cut to 8 bits by Pillow (use :func:`read_image` for files).
    """
    rgb, alpha, grey, depth = _parts_from_pil(img)
    filename = getattr(img, "filename", "")
    return LoadedImage(
        rgb,
        alpha,
        grey,
        depth,
        img.info.get("icc_profile") or None,
        normalise_exif(img.info.get("exif")),
        img.format or "",
        Path(filename) if filename else None,
    )


def to_array(
    rgb: torch.Tensor, like: np.ndarray, *, alpha: torch.Tensor | None = None
) -> np.ndarray:
    """Convert a 3xHxW result back to the kind of ``like``: same dtype and channel layout.

    A 2-D ``like`` gives HxW, HxWx1 gives HxWx1 (channel mean); ``alpha`` is required exactly
    when ``like`` has an alpha channel (C = 2 or 4). Floats are clamped to [0, 1].
    """
    like = np.asarray(like)
    channels = 1 if like.ndim == 2 else like.shape[-1]
    _check_alpha(channels in (2, 4), alpha)
    out = tensor_to_hwc(rgb, alpha, channels <= 2, like.dtype)
    return out[:, :, 0] if like.ndim == 2 else out


def to_pil(
    rgb: torch.Tensor, like: Image.Image, *, alpha: torch.Tensor | None = None
) -> Image.Image:
    """Convert a 3xHxW result back to a PIL image of the kind of ``like``.

    Mode is kept for L, LA, RGB, RGBA, I;16, I and F (palette becomes RGB/RGBA, 1 becomes L);
    ``alpha`` is required exactly when that mode has alpha. ICC profile and EXIF are copied.
    """
    mode = _normal_mode(like)
    _check_alpha(mode in ("LA", "RGBA"), alpha)
    dtype = {"I;16": np.uint16, "I": np.uint16, "F": np.float32}.get(mode, np.uint8)
    arr = tensor_to_hwc(rgb, alpha, mode in ("L", "LA", "I;16", "I", "F"), dtype)
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    out = Image.fromarray(arr.astype(np.int32) if mode == "I" else arr)
    for key in ("icc_profile", "exif"):
        if like.info.get(key):
            out.info[key] = like.info[key]
    return out


def _check_alpha(wanted: bool, alpha: torch.Tensor | None) -> None:
    if wanted and alpha is None:
        raise ValueError("the target has an alpha channel: pass alpha=")
    if not wanted and alpha is not None:
        raise ValueError("the target has no alpha channel but alpha= was given")


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def read_image(path: PathLike) -> LoadedImage:
    """Decode an image file fully, upright (EXIF orientation applied), keeping ICC and EXIF.

    PNG (1-16 bit, grey, grey+alpha, RGB, RGBA, palette), JPEG, WebP, TIFF, BMP and anything
    else Pillow decodes. Raises FileNotFoundError for a missing file and ImageReadError for one
    that is not an image or is corrupt/truncated.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    try:
        with Image.open(path) as img:
            if img.format == "PNG" and is_png16_colour(path):
                rgb, alpha, grey, depth, icc, exif = _read_png16_file(path)
            else:
                rgb, alpha, grey, depth, icc, exif = _read_with_pillow(img, path)
            fmt = img.format or ""
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (cannot identify image file)") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image too large ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as exc:
        text = str(exc) or type(exc).__name__
        reason = "truncated file" if "truncat" in text.lower() else f"corrupt image ({text})"
        raise ImageReadError(path, reason) from exc
    icc = matching_icc(icc, grey, f"{path}: ")
    return LoadedImage(rgb, alpha, grey, depth, icc, exif, fmt, path)


_Decoded: TypeAlias = (
    "tuple[torch.Tensor, torch.Tensor | None, bool, int, bytes | None, bytes | None]"
)


def _read_with_pillow(img: Image.Image, path: Path) -> _Decoded:
    img.load()  # full decode now: truncated/corrupt data fails here
    if getattr(img, "n_frames", 1) > 1:
        warnings.warn(f"{path}: has {img.n_frames} frames; using the first", stacklevel=3)
    if img.format == "TIFF" and img.mode in ("RGB", "RGBA"):
        bits = img.tag_v2.get(258, (8,))
        if max(bits if isinstance(bits, tuple) else (bits,)) > 8:
            warnings.warn(f"{path}: 16-bit colour TIFF is read as 8-bit", stacklevel=3)
    icc = img.info.get("icc_profile") or None
    exif = normalise_exif(img.info.get("exif"))
    if img.getexif().get(ORIENTATION, 1) != 1:
        ImageOps.exif_transpose(img, in_place=True)
        if exif is not None:
            exif = reset_orientation(exif)
    rgb, alpha, grey, depth = _parts_from_pil(img)
    return rgb, alpha, grey, depth, icc, exif


def _read_png16_file(path: Path) -> _Decoded:
    arr, icc, exif = decode_png16(path.read_bytes())
    exif = normalise_exif(exif)
    if exif is not None:
        orientation = Image.Exif()
        orientation.load(exif)
        arr = _orient_array(arr, orientation.get(ORIENTATION, 1))
        exif = reset_orientation(exif)
    rgb, alpha, grey, depth = _parts_from_array(arr)
    return rgb, alpha, grey, depth, icc, exif


# EXIF orientation -> the numpy equivalent of PIL.ImageOps.exif_transpose on an HxWxC array
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a.swapaxes(0, 1), 2),
    8: lambda a: np.rot90(a, 1),
}


def _orient_array(arr: np.ndarray, orientation: int) -> np.ndarray:
    fix = _ORIENT.get(orientation)
    return arr if fix is None else np.ascontiguousarray(fix(arr))
