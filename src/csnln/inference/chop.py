"""The authors' tiling ("chop"): split in four overlapping quarters until a piece is small,
as the released code evaluates (its published numbers were made with it)."""

from __future__ import annotations

import torch

from .tiling import Forward


def chop_split(
    h: int, w: int, *, scale: int, shave: int = 10, min_size: int = 3600
) -> tuple[int, int] | None:
    """The quarter size ``(h_size, w_size)`` the authors' chop cuts an ``h x w`` image into
    (half + ``shave``, rounded up past a multiple of ``scale``), or None when a quarter would
    not fit in the image (too small to chop: run whole)."""
    h_size = h // 2 + shave
    w_size = w // 2 + shave
    h_size += scale - h_size % scale  # (sic: adds `scale` when already a multiple)
    w_size += scale - w_size % scale
    if h_size > h or w_size > w:
        return None
    if w_size * h_size >= min_size and h_size >= h and w_size >= w:
        raise ValueError(f"chop cannot split {h}x{w} below {min_size} pixels with shave {shave}")
    return h_size, w_size


def chop_fits(h: int, w: int, *, scale: int, shave: int = 10, min_size: int = 3600) -> bool:
    """Whether the chop can cut ``h x w`` all the way down (the authors' code crashes, and
    :func:`run_chop` runs the piece whole, where a quarter would not fit its parent)."""
    while True:
        split = chop_split(h, w, scale=scale, shave=shave, min_size=min_size)
        if split is None:
            return False
        h, w = split
        if h * w < min_size:
            return True


def chop_tile_count(h: int, w: int, *, scale: int, shave: int = 10, min_size: int = 3600) -> int:
    """How many model calls :func:`run_chop` makes on an ``h x w`` image."""
    split = chop_split(h, w, scale=scale, shave=shave, min_size=min_size)
    if split is None:
        return 1
    if split[0] * split[1] < min_size:
        return 4
    return 4 * chop_tile_count(*split, scale=scale, shave=shave, min_size=min_size)


def run_chop(
    forward: Forward, lr: torch.Tensor, *, scale: int, shave: int = 10, min_size: int = 3600
) -> torch.Tensor:
    """The authors' recursive ``forward_chop``, exactly: split into 4 overlapping quarters
    (:func:`chop_split`) until a quarter has fewer than ``min_size`` LR pixels, run each,
    paste the quarters' inner parts.

    Reproduces the tiles (about 60x60 LR) behind the released numbers. An image too small to
    be cut into overlapping quarters (under about 24 pixels a side) is run whole.
    """
    _, _, h, w = lr.shape
    split = chop_split(h, w, scale=scale, shave=shave, min_size=min_size)
    if split is None:
        # Too small to cut in overlapping quarters (the authors' code crashes here): whole.
        return forward(lr)
    h_size, w_size = split
    h_half, w_half = h // 2, w // 2
    pieces = [
        lr[:, :, 0:h_size, 0:w_size],
        lr[:, :, 0:h_size, (w - w_size) : w],
        lr[:, :, (h - h_size) : h, 0:w_size],
        lr[:, :, (h - h_size) : h, (w - w_size) : w],
    ]
    if w_size * h_size < min_size:
        outs = [forward(piece) for piece in pieces]
    else:
        outs = [
            run_chop(forward, piece, scale=scale, shave=shave, min_size=min_size)
            for piece in pieces
        ]
    s = scale
    h, w, h_half, w_half, h_size, w_size = (
        s * h,
        s * w,
        s * h_half,
        s * w_half,
        s * h_size,
        s * w_size,
    )
    out = outs[0].new_empty(lr.shape[0], outs[0].shape[1], h, w)
    out[:, :, 0:h_half, 0:w_half] = outs[0][:, :, 0:h_half, 0:w_half]
    out[:, :, 0:h_half, w_half:w] = outs[1][:, :, 0:h_half, (w_size - w + w_half) : w_size]
    out[:, :, h_half:h, 0:w_half] = outs[2][:, :, (h_size - h + h_half) : h_size, 0:w_half]
    out[:, :, h_half:h, w_half:w] = outs[3][
        :, :, (h_size - h + h_half) : h_size, (w_size - w + w_half) : w_size
    ]
    return out
