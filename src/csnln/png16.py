"""A small 16-bit PNG codec (colour types 0, 2, 4, 6 at bit depth 16), numpy + zlib.

Pillow decodes 16-bit RGB(A) and grey+alpha PNGs to 8 bits (it keeps only the high byte) and
cannot write them at all; :mod:`csnln.imageio` reads and writes those through this module.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["PNGError", "decode_png16", "is_png16_colour", "write_png16"]

EXIF_PREFIX = b"Exif\x00\x00"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {0: 1, 4: 2, 2: 3, 6: 4}  # PNG colour type -> channels
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


class PNGError(ValueError):
    pass


def is_png16_colour(path: Path) -> bool:
    """True for 16-bit RGB, RGBA and grey+alpha PNGs, which Pillow reads as 8-bit."""
    with open(path, "rb") as f:
        head = f.read(26)
    return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def decode_png16(data: bytes) -> tuple[np.ndarray, bytes | None, bytes | None]:
    """Decode a 16-bit PNG to (HxWxC uint16, icc, exif); a tRNS colour key becomes alpha."""
    if not data.startswith(_PNG_SIGNATURE):
        raise PNGError("not a PNG file")
    pos, header, idat, icc, exif, key = 8, None, [], None, None, None
    while True:
        if pos + 12 > len(data):
            raise PNGError("truncated file")
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        if pos + 12 + length > len(data):
            raise PNGError("truncated file")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise PNGError(f"CRC error in {kind.decode('latin-1')} chunk")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"iCCP":
            icc = zlib.decompress(body[body.index(b"\0") + 2 :])
        elif kind == b"eXIf":
            exif = body
        elif kind == b"tRNS":
            key = np.frombuffer(body, ">u2").astype(np.uint16)
        elif kind == b"IEND":
            break
    if header is None or header[2] != 16 or header[3] not in _COLOUR_TYPES:
        raise PNGError("not a 16-bit grey/RGB(A) PNG")
    width, height, _, colour, compression, filtering, interlace = header
    if compression or filtering or interlace > 1 or not width or not height:
        raise PNGError("invalid PNG header")
    inflate = zlib.decompressobj()
    raw = inflate.decompress(b"".join(idat))
    if not inflate.eof:
        raise PNGError("truncated image data")
    channels = _COLOUR_TYPES[colour]
    bpp = 2 * channels
    out = np.empty((height, width, bpp), np.uint8)
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    offset = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w <= 0 or h <= 0:
            continue
        size = h * (1 + w * bpp)
        if offset + size > len(raw):
            raise PNGError("truncated image data")
        rows = np.frombuffer(raw, np.uint8, size, offset).reshape(h, 1 + w * bpp)
        out[y0::dy, x0::dx] = _unfilter(rows[:, 0], rows[:, 1:].reshape(h, w, bpp))
        offset += size
    arr = out.view(">u2").astype(np.uint16)  # HxWxC native-endian
    if key is not None and channels in (1, 3) and key.size == channels:
        opaque = np.any(arr != key, axis=2, keepdims=True)
        arr = np.concatenate([arr, np.where(opaque, 65535, 0).astype(np.uint16)], axis=2)
    return arr, icc, exif


def _unfilter(filters: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Undo PNG row filters on (h, w, bpp) bytes.

    Pixel (y, x) depends on (y, x-1), (y-1, x) and (y-1, x-1), so every anti-diagonal
    x + y = d is computed at once from the previous two: h + w - 1 vectorised steps.
    """
    if filters.size and int(filters.max()) > 4:
        raise PNGError(f"invalid filter type {int(filters.max())}")
    if not filters.any():
        return raw
    h, w, bpp = raw.shape
    out = np.zeros((h + 1, w + 1, bpp), np.uint8)  # padded: out[y + 1, x + 1] is pixel (y, x)
    kinds = filters.astype(np.int16)[:, None]
    rows = np.arange(h)
    for d in range(h + w - 1):
        ys = rows[max(0, d - w + 1) : min(h, d + 1)]
        xs = d - ys
        a = out[ys + 1, xs].astype(np.int16)
        b = out[ys, xs + 1].astype(np.int16)
        f = kinds[ys]
        pred = np.where(f == 1, a, np.where(f == 2, b, 0))
        if (f >= 3).any():
            c = out[ys, xs].astype(np.int16)
            pred = np.where(f == 3, (a + b) >> 1, np.where(f == 4, _paeth(a, b, c), pred))
        out[ys + 1, xs + 1] = (raw[ys, xs] + pred) & 0xFF
    return out[1:, 1:]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _filter_rows(cur: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter rows with the type (0-4) that minimises the sum of |signed bytes| per row."""
    x, b = cur.astype(np.int16), prev.astype(np.int16)
    a, c = np.zeros_like(x), np.zeros_like(x)
    a[:, bpp:], c[:, bpp:] = x[:, :-bpp], b[:, :-bpp]
    options = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - _paeth(a, b, c)]) & 0xFF
    signed = np.where(options > 127, 256 - options, options)
    best = signed.sum(axis=2, dtype=np.int64).argmin(axis=0)
    chosen = options[best, np.arange(len(x))].astype(np.uint8)
    return np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1)


def write_png16(stream: BinaryIO, arr: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """Write an HxWxC uint16 array (C = 1-4) as a 16-bit PNG with iCCP and eXIf chunks."""
    height, width, channels = arr.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stream.write(_PNG_SIGNATURE)
    stream.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)))
    if icc:
        stream.write(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    if exif:
        stream.write(_chunk(b"eXIf", exif.removeprefix(EXIF_PREFIX)))
    data = (
        np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(height, width * channels * 2)
    )
    deflate = zlib.compressobj(6)
    band = max(1, (1 << 19) // data.shape[1])
    for y0 in range(0, height, band):
        cur = data[y0 : y0 + band]
        prev = data[y0 - 1 : y0 - 1 + len(cur)] if y0 else np.vstack([data[:1] * 0, cur[:-1]])
        compressed = deflate.compress(_filter_rows(cur, prev, 2 * channels).tobytes())
        if compressed:
            stream.write(_chunk(b"IDAT", compressed))
    stream.write(_chunk(b"IDAT", deflate.flush()))
    stream.write(_chunk(b"IEND", b""))
