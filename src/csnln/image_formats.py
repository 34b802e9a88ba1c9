"""What the image files csnln reads and writes can carry, and the conversions reading
(:mod:`csnln.imageio`) and writing (:mod:`csnln.image_writing`) share: formats by suffix,
which of them keep alpha, ICC profiles and EXIF, EXIF's orientation, a tensor as pixels."""

from __future__ import annotations

import os
import struct
import warnings
from typing import TypeAlias

import numpy as np
import torch
from PIL import Image

from .data.image_files import IMAGE_SUFFIXES

PathLike: TypeAlias = "str | os.PathLike[str]"

#: What ``csnln upscale`` reads and writes: :data:`csnln.data.image_files.IMAGE_SUFFIXES`.
SUPPORTED_EXTENSIONS = IMAGE_SUFFIXES
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
ICC_FORMATS = {"PNG", "JPEG", "WEBP", "TIFF"}
EXIF_FORMATS = {"PNG", "JPEG", "WEBP"}  # Pillow cannot write EXIF into TIFF or BMP
EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION = 0x0112


def tensor_to_hwc(
    rgb: torch.Tensor, alpha: torch.Tensor | None, grey: bool, dtype: np.dtype
) -> np.ndarray:
    """(3|1)xHxW tensor (+ alpha) -> HxWxC array of ``dtype``; clamped to [0, 1], rounded."""
    # One float copy of the image at a time (then in place): the memory planner counts on it.
    x = _chw(rgb, "rgb", (1, 3))
    if grey:
        x = x.mean(0, keepdim=True)
    elif x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    if alpha is not None:
        a = _chw(alpha, "alpha", (1,))
        if a.shape[1:] != x.shape[1:]:
            raise ValueError(f"alpha is {tuple(a.shape[1:])} but rgb is {tuple(x.shape[1:])}")
        x = torch.cat([x, a])
    x = torch.nan_to_num(x, nan=0.0).clamp_(0.0, 1.0)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.ascontiguousarray(x.permute(1, 2, 0).numpy(), dtype=dtype)
    top = float(np.iinfo(dtype).max)
    return np.ascontiguousarray(x.mul_(top).round_().permute(1, 2, 0).numpy(), dtype=dtype)


def _chw(t: torch.Tensor, name: str, channels: tuple[int, ...]) -> torch.Tensor:
    t = torch.as_tensor(t).detach()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in channels:
        want = " or ".join(f"{c}xHxW" for c in channels)
        raise ValueError(f"{name} must be {want}, got shape {tuple(t.shape)}")
    return t.to("cpu", torch.float32)


def normalise_exif(exif: bytes | Image.Exif | None) -> bytes | None:
    """EXIF as bytes with the ``Exif\\0\\0`` prefix (as Pillow's JPEG/PNG readers give it)."""
    if isinstance(exif, Image.Exif):
        exif = exif.tobytes()
    if not exif:
        return None
    exif = bytes(exif)
    return exif if exif.startswith(EXIF_PREFIX) else EXIF_PREFIX + exif


def reset_orientation(exif: bytes) -> bytes:
    """Set the IFD0 orientation tag to 1, patching it in place so the rest stays byte-exact."""
    tiff = bytearray(exif[len(EXIF_PREFIX) :])
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(tiff[:2])]
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == ORIENTATION and kind == 3 and n == 1:  # SHORT, as the standard says
                struct.pack_into(order + "H", tiff, entry + 8, 1)
                return EXIF_PREFIX + bytes(tiff)
    except (KeyError, struct.error):
        pass
    parsed = Image.Exif()  # unusual layout: let Pillow rewrite it
    parsed.load(exif)
    if ORIENTATION in parsed:
        parsed[ORIENTATION] = 1
    return parsed.tobytes()


def matching_icc(icc: bytes | None, grey: bool, where: str) -> bytes | None:
    """Drop (with a warning) an ICC profile whose colour space does not fit the pixels."""
    if not icc or len(icc) < 20:
        return None
    space = icc[16:20]
    if space == (b"GRAY" if grey else b"RGB "):
        return icc
    pixels = "greyscale" if grey else "RGB"
    warnings.warn(
        f"{where}dropping the {space.decode('latin-1').strip()} colour profile: "
        f"it does not apply to {pixels} pixels",
        stacklevel=3,
    )
    return None
