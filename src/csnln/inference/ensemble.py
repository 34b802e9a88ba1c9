"""Self-ensemble: the average of the model's outputs on the 8 flips and transposes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .tiling import Forward


def _transforms() -> Iterator[
    tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]
]:
    """The 8 flips/transposes of the dihedral group with their inverses."""
    for transpose in (False, True):
        for flip_v in (False, True):
            for flip_h in (False, True):
                dims = [d for d, on in ((-2, flip_v), (-1, flip_h)) if on]

                def forward(x: torch.Tensor, dims=dims, transpose=transpose) -> torch.Tensor:
                    x = x.flip(dims) if dims else x
                    return x.transpose(-2, -1) if transpose else x

                def inverse(x: torch.Tensor, dims=dims, transpose=transpose) -> torch.Tensor:
                    x = x.transpose(-2, -1) if transpose else x
                    return x.flip(dims) if dims else x

                yield forward, inverse


def self_ensemble(forward: Forward, lr: torch.Tensor) -> torch.Tensor:
    """The x8 geometric self-ensemble: mean of the outputs of the 8 flips/transposes."""
    total = None
    for transform, inverse in _transforms():
        out = inverse(forward(transform(lr))).float()
        total = out if total is None else total + out
    assert total is not None
    return total / 8
