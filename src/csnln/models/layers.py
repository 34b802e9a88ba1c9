"""Small building blocks shared by the CSNLN modules."""

from __future__ import annotations

import torch
from torch import nn


class ConvPReLU(nn.Module):
    """A convolution (or transposed convolution) followed by a single-slope PReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int | None = None,
        transpose: bool = False,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        conv_type = nn.ConvTranspose2d if transpose else nn.Conv2d
        self.conv = conv_type(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding
        )
        self.act = nn.PReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class ResBlock(nn.Module):
    """z + conv3x3(PReLU(conv3x3(z))): no activation after the second conv, residual scale 1."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.act = nn.PReLU()
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.conv2(self.act(self.conv1(z)))


class MeanShift(nn.Conv2d):
    """Frozen 1x1 conv adding ``sign * mean`` to each RGB channel (identity weight, std 1).

    Kept as a (frozen) convolution rather than a buffer so that the parameter count and the
    checkpoint layout match the authors' release.
    """

    def __init__(self, mean: tuple[float, float, float], *, sign: int) -> None:
        super().__init__(3, 3, kernel_size=1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * torch.tensor(mean))
        self.weight.requires_grad_(False)
        self.bias.requires_grad_(False)
