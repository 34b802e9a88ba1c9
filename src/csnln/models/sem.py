"""The Self-Exemplars-Mining (SEM) cell and its multi-source projection."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from .attention import DEFAULT_CHUNK_SIZE, ChunkSize, CrossScaleAttention, InScaleAttention
from .layers import ConvPReLU, ResBlock

BRANCHES = ("local", "in_scale", "cross_scale")
FUSIONS = ("projection", "concat")

# (kernel, stride, padding) of the strided (de)convolutions that move between grids.
_STRIDED = {2: (6, 2, 2), 3: (9, 3, 3), 4: (8, 4, 2)}


def attention_factor(scale: int) -> int:
    """The up factor of the multi-source projections: 3 at x3, 2 at x2 and x4 (two stages)."""
    return 3 if scale == 3 else 2


def _strided(channels: int, factor: int, *, transpose: bool) -> ConvPReLU:
    kernel, stride, padding = _STRIDED[factor]
    return ConvPReLU(
        channels, channels, kernel, stride=stride, padding=padding, transpose=transpose
    )


class MultiSourceProjection(nn.Module):
    """Fuses the in-scale and cross-scale attentions into features ``factor`` x larger.

    ``in = PReLU(deconv(InScale(x)))``, ``cross = CrossScale(x)``; mutual projection
    (the paper's fusion) returns ``in + ResBlock(cross - in)``; ``fusion="concat"`` returns
    ``conv1x1([in, cross])``. With one non-local branch its map is returned; with none, the
    plain learned upsampling ``PReLU(deconv(x))``.
    """

    def __init__(
        self,
        channels: int,
        *,
        factor: int,
        in_scale: bool = True,
        cross_scale: bool = True,
        fusion: str = "projection",
        patch_size: int = 3,
        temperature: float = 10.0,
        overlap_divisor: float = 6.0,
        norm_floor: float = 1e-4,
        chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        self.in_scale = InScaleAttention(channels, chunk_size=chunk_size) if in_scale else None
        self.cross_scale = (
            CrossScaleAttention(
                channels,
                factor=factor,
                patch_size=patch_size,
                temperature=temperature,
                overlap_divisor=overlap_divisor,
                norm_floor=norm_floor,
                chunk_size=chunk_size,
            )
            if cross_scale
            else None
        )
        # Learned upsampling of the in-scale map (or of x itself when no branch is non-local).
        self.upsample = (
            _strided(channels, factor, transpose=True) if in_scale or not cross_scale else None
        )
        self.fuse: nn.Module | None = None
        if in_scale and cross_scale:
            if fusion == "projection":
                self.fuse = ResBlock(channels)
            elif fusion == "concat":
                self.fuse = nn.Conv2d(2 * channels, channels, 1)
            else:
                raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.fusion = fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: N, C, H, W  ->  N, C, uH, uW
        if self.cross_scale is None:
            source = x if self.in_scale is None else self.in_scale(x)
            assert self.upsample is not None
            return self.upsample(source)
        cross = self.cross_scale(x)
        if self.in_scale is None:
            return cross
        assert self.upsample is not None and self.fuse is not None
        inner = self.upsample(self.in_scale(x))
        if self.fusion == "concat":
            return self.fuse(torch.cat([inner, cross], dim=1))
        return inner + self.fuse(cross - inner)


class SelfExemplarsMining(nn.Module):
    """The recurrent SEM cell: ``(x_next, h) = SEM(x)``, ``x`` on the LR grid, ``h`` on HR.

    At x2 and x3: ``up = MSP(x)``; ``h = up + deconv(x - conv(up))`` (back-projection of the
    error, the paper's local branch); ``x_next = post_conv(conv(h))``. At x4 a second
    projection stage on the 2x grid takes ``h`` to 4x with its own MSP and 8x8 (de)convs.
    """

    def __init__(
        self,
        channels: int,
        *,
        scale: int,
        branches: Collection[str] = BRANCHES,
        fusion: str = "projection",
        patch_size: int = 3,
        temperature: float = 10.0,
        overlap_divisor: float = 6.0,
        norm_floor: float = 1e-4,
        chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
        self.scale = scale
        self.local = "local" in branches
        factor = attention_factor(scale)

        def projection() -> MultiSourceProjection:
            return MultiSourceProjection(
                channels,
                factor=factor,
                in_scale="in_scale" in branches,
                cross_scale="cross_scale" in branches,
                fusion=fusion,
                patch_size=patch_size,
                temperature=temperature,
                overlap_divisor=overlap_divisor,
                norm_floor=norm_floor,
                chunk_size=chunk_size,
            )

        self.projection = projection()
        if self.local:
            self.project_down = _strided(channels, factor, transpose=False)
            self.error_up = _strided(channels, factor, transpose=True)
        if scale == 4:
            self.projection2 = projection()
            if self.local:
                self.project_down2 = _strided(channels, 4, transpose=False)
                self.error_up2 = _strided(channels, 4, transpose=True)
        self.output_down = _strided(channels, scale, transpose=False)
        self.post_conv = ConvPReLU(channels, channels, 3)

    def forward(
        self, x: torch.Tensor, *, next_state: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(x_next, h); ``next_state=False`` (the last step, whose x_next nothing reads):
        (None, h), without its down-projection and conv."""
        # x: N, C, H, W (LR)  ->  x_next: N, C, H, W;  h: N, C, sH, sW
        h = self.projection(x)
        if self.local:
            h = h + self.error_up(x - self.project_down(h))
        if self.scale == 4:
            h = self.projection2(h)
            if self.local:
                h = h + self.error_up2(x - self.project_down2(h))
        if not next_state:
            return None, h
        return self.post_conv(self.output_down(h)), h
