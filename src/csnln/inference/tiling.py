"""Overlapping tiles, several per model call, cross-faded without seams; two calls at once
on a CPU (each on half of the threads)."""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ..models.network import MIN_INPUT_SIZE
from .profiles import DEFAULT_OVERLAP, WHOLE

Forward = Callable[[torch.Tensor], torch.Tensor]

_DONE = object()


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)``, overlapping by at least
    ``overlap``, spread evenly; the last tile ends at ``length``."""
    if tile >= length:
        return [0]
    if overlap >= tile:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile {tile}")
    count = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def _ramp(
    length: int, fade_start: int, fade_end: int, device, dtype, *, margin: int = 0
) -> torch.Tensor:
    """1-D weights of a tile: linear ramps over its first ``fade_start`` and last ``fade_end``
    samples (its overlaps with the neighbours), the outermost ``margin`` samples of each
    overlap left out (weight 0: a tile's border, where its attention saw least, is not used
    where the neighbour covers it) and the ramp spread over the rest."""
    weights = torch.ones(length, device=device, dtype=dtype)
    for fade, at_start in ((fade_start, True), (fade_end, False)):
        if not fade:
            continue
        cut = min(margin, (fade - 1) // 2)  # keep a ramp of at least one sample
        ramp = (torch.arange(fade - 2 * cut, device=device, dtype=dtype) + 0.5) / (fade - 2 * cut)
        part = torch.cat([ramp.new_zeros(cut), ramp, ramp.new_ones(cut)])
        if at_start:
            weights[:fade] = part
        else:
            weights[length - fade :] = part.flip(0)
    return weights


def count_tiles(h: int, w: int, tile: int, overlap: int) -> int:
    if tile == WHOLE:
        return 1
    return len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))


def run_tiled(
    forward: Forward,
    lr: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
    batch: int = 1,
    margin: int = 0,
    streams: int = 1,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run ``forward`` on overlapping ``tile x tile`` LR tiles and blend them without seams.

    Where two tiles overlap, their outputs are cross-faded with linear weights over the
    overlap (image borders are not faded), so each output pixel is a convex combination of the
    tiles covering it. With one tile covering the image (or ``tile=0``: :data:`WHOLE`) this is
    exactly ``forward(lr)``. ``batch`` tiles (all of one size) go through ``forward`` in one
    call, as one batch: small tiles alone leave the CPU's matrix kernels underfed. ``streams`` calls
    run at once, each on its own thread with its share of the intra-op threads (the same
    result up to float rounding; see :data:`CPU_STREAMS`). ``on_tile`` is called once per
    tile, in tile order.
    """
    n, _, h, w = lr.shape
    if tile == WHOLE or (tile >= h and tile >= w):
        out = forward(lr)
        if on_tile:
            on_tile()
        return out
    tile = max(tile, MIN_INPUT_SIZE)
    overlap = min(overlap, tile - 1)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    s = scale
    # Linear fades over the actual overlap with the neighbour on each side, per row/column.
    row_fades = [
        (ys[i - 1] + th - y if i else 0, y + th - ys[i + 1] if i + 1 < len(ys) else 0)
        for i, y in enumerate(ys)
    ]
    col_fades = [
        (xs[j - 1] + tw - x if j else 0, x + tw - xs[j + 1] if j + 1 < len(xs) else 0)
        for j, x in enumerate(xs)
    ]
    tiles = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    per_call = max(1, batch // n)  # tiles per call; each tile holds all n images
    groups = [tiles[first : first + per_call] for first in range(0, len(tiles), per_call)]

    def call(group: list[tuple[int, int]]) -> torch.Tensor:
        pieces = [lr[:, :, ys[i] : ys[i] + th, xs[j] : xs[j] + tw] for i, j in group]
        return forward(torch.cat(pieces) if len(pieces) > 1 else pieces[0]).float()

    out = weight = None
    for group, sr in zip(groups, _concurrent_map(call, groups, streams), strict=True):
        if out is None:
            out = sr.new_zeros(n, sr.shape[1], s * h, s * w)
            weight = sr.new_zeros(1, 1, s * h, s * w)
        for k, (i, j) in enumerate(group):
            y, x = ys[i], xs[j]
            fy, fx = row_fades[i], col_fades[j]
            wy = _ramp(s * th, s * fy[0], s * fy[1], sr.device, sr.dtype, margin=s * margin)
            wx = _ramp(s * tw, s * fx[0], s * fx[1], sr.device, sr.dtype, margin=s * margin)
            window = wy[:, None] * wx[None, :]
            region = (..., slice(s * y, s * (y + th)), slice(s * x, s * (x + tw)))
            out[region] += sr[k * n : (k + 1) * n] * window
            weight[region] += window
            if on_tile:
                on_tile()
    assert out is not None and weight is not None
    return out.div_(weight)


def _concurrent_map(
    fn: Callable[[Any], torch.Tensor], items: list[Any], streams: int
) -> Iterator[torch.Tensor]:
    """``map(fn, items)`` in order, with up to ``streams`` calls running at once on worker
    threads that share this thread's intra-op threads between them (at least one each).

    At most ``streams`` results are pending at a time, so memory is ``streams`` calls' worth.
    PyTorch's kernels release the GIL; autocast and grad mode are per thread, so ``fn`` sets
    its own. Threads per worker are set in the worker (OpenMP keeps them per thread).
    """
    if streams <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    streams = min(streams, len(items))
    caller_threads = torch.get_num_threads()
    threads = max(1, caller_threads // streams)
    pool = ThreadPoolExecutor(streams, initializer=torch.set_num_threads, initargs=(threads,))
    queue = iter(items)
    pending = collections.deque(pool.submit(fn, item) for item in itertools.islice(queue, streams))
    try:
        while pending:
            result = pending.popleft().result()
            following = next(queue, _DONE)
            if following is not _DONE:  # keep every stream busy while the caller blends
                pending.append(pool.submit(fn, following))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if torch.get_num_threads() != caller_threads:  # a build whose thread count is global
            torch.set_num_threads(caller_threads)
