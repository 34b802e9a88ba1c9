"""The two non-local attentions of CSNLN, computed in query chunks.

Both attentions compare every position of a feature map with every other one, so a naive
implementation materialises a score matrix quadratic in the pixel count. Here the queries are
processed ``chunk_size`` positions at a time: peak memory is ``chunk_size x keys`` per chunk,
linear in the pixel count, and the result is the same as the unchunked computation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvPReLU

DEFAULT_CHUNK_SIZE = 1024


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim, computed in float32 even under bf16/fp16 autocast."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        return torch.softmax(scores.float(), dim=-1).to(scores.dtype)
    return torch.softmax(scores, dim=-1)


class InScaleAttention(nn.Module):
    """Pixel-to-pixel non-local attention on the input grid (the paper's in-scale branch).

    ``score[i, j] = <query_i, key_j>`` (no scaling), softmax over ``j``, output
    ``sum_j softmax[i, j] * value_j``. Output has the shape of the input.
    """

    def __init__(
        self, channels: int, *, reduction: int = 2, chunk_size: int | None = DEFAULT_CHUNK_SIZE
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
        chunk = h * w if self.chunk_size is None else self.chunk_size
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
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
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

        # Keys: p x p patches on the small grid, L2-normalised: N, L, C/2 * p * p.
        key = F.unfold(key, p, padding=half)
        key = key / key.norm(dim=1, keepdim=True).clamp_min(self.norm_floor)
        key = key * self.temperature
        # Values: the (u p) x (u p) region of the input grid each key patch was made from:
        # N, C * (u p)^2, L.
        value = F.unfold(value, u * p, stride=u, padding=pad)

        # Queries, one band of rows at a time (with a halo of `half` rows for the patches).
        query = F.pad(query, (half, half, half, half))
        rows = h if self.chunk_size is None else max(1, self.chunk_size // w)
        # The canvas accumulates in at least float32, also under bf16/fp16 autocast.
        acc_dtype = torch.promote_types(value.dtype, torch.float32)
        canvas = x.new_zeros(n, c, u * h + 2 * pad, u * w + 2 * pad, dtype=acc_dtype)
        for top in range(0, h, rows):
            bottom = min(h, top + rows)
            band = F.unfold(query[:, :, top : bottom + 2 * half], p)  # N, C/2 p p, R W
            attn = _softmax(torch.bmm(band.transpose(1, 2), key))  # N, R W, L
            patches = torch.bmm(value, attn.transpose(1, 2))  # N, C (u p)^2, R W
            pasted = F.fold(
                patches.to(acc_dtype),
                output_size=(u * (bottom - top) + 2 * pad, u * w + 2 * pad),
                kernel_size=u * p,
                stride=u,
            )
            if top == 0 and bottom == h:
                canvas = pasted
            else:
                canvas[:, :, u * top : u * bottom + 2 * pad] += pasted
        out = canvas[:, :, pad : pad + u * h, pad : pad + u * w] / self.overlap_divisor
        return out.to(value.dtype)
