"""MATLAB-exact bicubic upscaling as a model: the baseline of every super-resolution table."""

from __future__ import annotations

import torch
from torch import nn

from ..data.imresize import imresize
from .descriptor import ModelDescriptor


class Bicubic(nn.Module):
    """MATLAB-exact bicubic upscaling by ``scale`` (no weights)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    @property
    def descriptor(self) -> ModelDescriptor:
        # Each output pixel depends on a 4-tap neighbourhood only: tiles would change the
        # result at their seams and save nothing, so bicubic always runs whole.
        return ModelDescriptor(
            scale=self.scale, tileable=False, quadratic_cost=False, architecture="bicubic"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, float(self.scale))
