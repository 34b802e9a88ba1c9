"""The two non-local attentions of CSNLN, computed in query chunks.

Both attentions compare every position of a feature map with every other one, so a naive
implementation materialises a score matrix quadratic in the pixel count. Here the queries are
processed in chunks (``chunk_size``: a number of query positions, ``"auto"`` for as many as
keep a chunk's scores under :data:`AUTO_SCORE_ELEMENTS`, or ``None`` for all at once). Peak
memory then grows linearly with the pixel count, and the result is the same as unchunked.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvPReLU

ChunkSize: TypeAlias = int | Literal["auto"] | None

#: Default chunking: as many queries per chunk as keep one chunk's score matrix at this many
#: elements (64 MB in float32), over the whole batch.
AUTO_SCORE_ELEMENTS = 2**24
DEFAULT_CHUNK_SIZE: ChunkSize = "auto"


def queries_per_chunk(chunk_size: ChunkSize, *, batch: int, queries: int, keys: int) -> int:
    """How many query positions one chunk holds: all (None), a fixed number, or "auto"."""
    if chunk_size is None:
        return queries
    if chunk_size == "auto":
        return max(1, min(queries, AUTO_SCORE_ELEMENTS // max(1, batch * keys)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, 'auto' or None, got {chunk_size!r}")
    return min(queries, chunk_size)


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim, computed in float32 even under bf16/fp16 autocast."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(scores.float(), dim=-1).to(scores.dtype)
    return torch.softmax(scores, dim=-1)


def _softmax_dim1(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1, computed in float32 even under bf16/fp16 autocast."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(scores.float(), dim=1).to(scores.dtype)
    return torch.softmax(scores, dim=1)


class InScaleAttention(nn.Module):
    """Pixel-to-pixel non-local attention on the input grid (the paper's in-scale branch).

    ``score[i, j] = <query_i, key_j>`` (no scaling), softmax over ``j``, output
    ``sum_j softmax[i, j] * value_j``. Output has the shape of the input.
    """

    def __init__(
        self, channels: int, *, reduction: int = 2, chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE
    ) -> None:
        super().__init__()
        self.query = ConvPReLU(channels, channels // reduction, 1)
        self.key = ConvPReLU(channels, channels // reduction, 1)
        self.value = ConvPReLU(channels, channels, 1)
        self.chunk_size = chunk_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # N, HW, C/2
        key = self.key(x).flatten(2)  # N, C/2, HW
        value = self.value(x).flatten(2).transpose(1, 2)  # N, HW, C
        chunk = queries_per_chunk(self.chunk_size, batch=n, queries=h * w, keys=h * w)
        out = [
            torch.bmm(_softmax(torch.bmm(query[:, start : start + chunk], key)), value)
            for start in range(0, h * w, chunk)
        ]
        out = out[0] if len(out) == 1 else torch.cat(out, dim=1)  # N, HW, C
        return out.transpose(1, 2).reshape(n, c, h, w)


class CrossScaleAttention(nn.Module):
    """Cross-scale non-local attention: output ``factor`` times larger than the input.

    Every ``patch_size``-square patch of the queries (on the input grid, H x W) is matched
    against the normalised patches of the keys computed on the input downscaled by ``factor``
    (bilinear), and pastes the matching ``factor * patch_size``-square patches of the values
    (on the input grid) onto a ``factor`` times larger canvas, weighted by
    ``softmax(temperature * score)``. The canvas is divided by ``overlap_divisor``.

    Input height and width must be divisible by ``factor`` (the network pads to ensure it).
    """

    def __init__(
        self,
        channels: int,
        *,
        factor: int,
        reduction: int = 2,
        patch_size: int = 3,
        temperature: float = 10.0,
        overlap_divisor: float = 6.0,
        norm_floor: float = 1e-4,
        chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        if patch_size % 2 != 1:
            raise ValueError(f"patch_size must be odd, got {patch_size}")
        self.query = ConvPReLU(channels, channels // reduction, 1)
        self.key = ConvPReLU(channels, channels // reduction, 1)
        self.value = ConvPReLU(channels, channels, 1)
        self.factor = factor
        self.patch_size = patch_size
        self.temperature = temperature
        self.overlap_divisor = overlap_divisor
        self.norm_floor = norm_floor
        self.chunk_size = chunk_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        u, p = self.factor, self.patch_size
        if h % u or w % u:
            raise ValueError(f"CrossScaleAttention needs H, W divisible by {u}, got {h}x{w}")
        half = p // 2
        pad = u * half  # canvas margin of a pasted patch around its query's u x u block

        value = self.value(x)  # N, C, H, W
        query = self.query(x)  # N, C/2, H, W
        small = F.interpolate(x, size=(h // u, w // u), mode="bilinear", align_corners=False)
        key = self.key(small)  # N, C/2, H/u, W/u

        # Keys: p x p patches on the small grid, L2-normalised (temperature folded in):
        # N, C/2 p p, L.
        key = F.unfold(key, p, padding=half)
        key = key / key.norm(dim=1, keepdim=True).clamp_min(self.norm_floor)
        key = key * self.temperature
        # Values, as deconvolution kernels: for every key l, the (u p) x (u p) region of the
        # input grid its patch was made from: N L, C, u p, u p.
        k = u * p
        kernels = F.unfold(value, k, stride=u, padding=pad)  # N, C k k, L
        kernels = kernels.view(n, c, k, k, -1).permute(0, 4, 1, 2, 3).reshape(-1, c, k, k)
        key_t = key.transpose(1, 2)  # N, L, C/2 p p

        # Queries, one band of rows at a time (with a halo of `half` rows for the patches).
        query = F.pad(query, (half, half, half, half))
        rows = max(
            1, queries_per_chunk(self.chunk_size, batch=n, queries=h * w, keys=key.shape[-1]) // w
        )
        bands = []
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            band = F.unfold(query[:, :, top : bottom + 2 * half], p)  # N, C/2 p p, R W
            attn = _softmax_dim1(torch.bmm(key_t, band))  # N, L, R W: softmax over keys
            # Paste: conv_transpose places each query's weighted sum of patches at stride u.
            attn = attn.reshape(1, -1, bottom - top, w)
            bands.append(F.conv_transpose2d(attn, kernels.to(attn.dtype), stride=u, groups=n))
        if len(bands) == 1:
            canvas = bands[0].view(n, c, *bands[0].shape[-2:])
        else:
            acc_dtype = torch.promote_types(bands[0].dtype, torch.float32)
            canvas = x.new_zeros(n, c, u * h + 2 * pad, u * w + 2 * pad, dtype=acc_dtype)
            top = 0
            for band in bands:
                band = band.view(n, c, *band.shape[-2:])
                canvas[:, :, u * top : u * top + band.shape[-2]] += band
                top += band.shape[-2] // u - 2 * half
        out = canvas[:, :, pad : pad + u * h, pad : pad + u * w] / self.overlap_divisor
        return out.to(value.dtype)
