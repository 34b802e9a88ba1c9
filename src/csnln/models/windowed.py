"""Windowed attention: each block of queries attends to the keys of a window around it.

The whole-image attentions compare every position with every other one, so their cost per
pixel grows with the image. Cutting the image into overlapping tiles bounds it, but every
layer then pays for the overlap (a 32-pixel tile that overlaps by 8 computes 1.78x the
pixels). Here only the attentions are confined: the queries are cut into non-overlapping
``block x block`` blocks, and each block attends to the ``block + 2 halo`` square window
centred on it (shifted inside the image at the borders), so each query sees about as many
keys as in a tile of that size, centred on it, and nothing is computed twice. The
convolutions run on the whole input.

This module is the geometry (blocks, windows, crops); the two attentions' windowed math is in
:mod:`csnln.models.attention`. This is not the authors' computation (that is the whole-image
path, ``window`` None): a query's softmax runs over its window's keys only. The cross-scale
attention pastes each query's exemplars as the whole-image one does (overlap-add onto one
canvas), from the window's downscaled keys; its window starts on multiples of its factor,
so the downscaled window is the window of the downscaled image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Score elements of one group of blocks computed at once (as the chunked attentions').
GROUP_SCORE_ELEMENTS = 2**24


@dataclass(frozen=True)
class AttentionWindow:
    """Query blocks of ``block`` pixels, each attending to the window of ``block + 2 halo``
    pixels around it (on the attention's own grid)."""

    block: int
    halo: int

    @property
    def size(self) -> int:
        return self.block + 2 * self.halo

    def covers(self, h: int, w: int) -> bool:
        """Whether one window holds the whole ``h x w`` map (then the attention runs whole)."""
        return h <= self.size and w <= self.size


def _starts(size: int, block: int) -> list[int]:
    """Block starts covering ``0..size``: every ``block``, the last one ending at ``size``
    (overlapping its neighbour when ``block`` does not divide ``size``)."""
    if size <= block:
        return [0]
    starts = list(range(0, size - block, block))
    return [*starts, size - block]


@dataclass(frozen=True)
class Block:
    y: int  # query block start
    x: int
    wy: int  # its key window's start
    wx: int
    own_y: int  # queries before these rows / columns of the block belong to an earlier block
    own_x: int


def blocks(h: int, w: int, window: AttentionWindow) -> tuple[int, int, int, int, list[Block]]:
    """(block h, block w, window h, window w, the blocks) of an ``h x w`` map."""
    by, bx = min(window.block, h), min(window.block, w)
    wh, ww = min(h, by + 2 * window.halo), min(w, bx + 2 * window.halo)
    ys, xs = _starts(h, by), _starts(w, bx)

    def owned(starts: list[int], i: int, block: int) -> int:
        return 0 if i == 0 else max(0, starts[i - 1] + block - starts[i])

    found = [
        Block(
            y,
            x,
            min(max(0, y - window.halo), h - wh),
            min(max(0, x - window.halo), w - ww),
            owned(ys, i, by),
            owned(xs, j, bx),
        )
        for i, y in enumerate(ys)
        for j, x in enumerate(xs)
    ]
    return by, bx, wh, ww, found


def group_blocks(items: list[Block], per_group: int) -> list[list[Block]]:
    """``items`` in groups of ``per_group`` (the last may be shorter)."""
    return [items[i : i + per_group] for i in range(0, len(items), per_group)]


def crop_blocks(
    x: torch.Tensor, group: list[Block], h: int, w: int, *, window: bool, u: int = 1
) -> torch.Tensor:
    """The windows (``window``) or query blocks of ``group`` from ``x``, stacked on the batch:
    G N, C, h, w (coordinates divided by ``u``: a map on a grid ``u`` times smaller)."""
    parts = []
    for b in group:
        y, x0 = (b.wy, b.wx) if window else (b.y, b.x)
        parts.append(x[:, :, y // u : y // u + h, x0 // u : x0 // u + w])
    return torch.cat(parts, dim=0)
