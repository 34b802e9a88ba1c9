"""The planner: how an image is run within a memory budget (:func:`plan_run`).

The memory budget is ``options.max_memory``, else the free memory of the device (of which an
automatic plan gives the model half). The full-size buffers (output, blending, alpha,
self-ensemble) are set aside first; the model's tiles get what is left: fewer calls at once
first, then fewer tiles per call, then smaller tiles. Where not even the smallest tile fits,
:class:`~csnln.inference.memory.MemoryBudgetError` says so with the numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..device import resolve_device, resolve_precision
from ..models.descriptor import ModelDescriptor
from ..models.network import MIN_INPUT_SIZE
from .memory import MemoryBudgetError, _gb, available_memory, output_bytes
from .options import Plan, RunOptions
from .profiles import (
    CPU_STREAMS,
    CPU_TILE_PIXELS,
    DEFAULT_OVERLAP,
    GENERIC_CPU_PLAN,
    WHOLE,
    MemoryModel,
    attention_window_for,
    check_model_tile,
    memory_model,
    overlap_for,
    preferred_plan,
)

Piece = tuple[int, int]  # (height, width) of what one model call sees per image


@dataclass(frozen=True)
class _Request:
    """One planning question: ``images`` LR images of ``h x w`` by ``options``, with ``total``
    bytes of memory (``explicit``: the caller's budget, None when it is the free memory)."""

    descriptor: ModelDescriptor
    h: int
    w: int
    options: RunOptions
    images: int
    alpha: bool
    device: torch.device
    total: int
    explicit: int | None

    @property
    def scale(self) -> int:
        return self.descriptor.scale

    @property
    def memory(self) -> MemoryModel:
        return memory_model(self.descriptor)

    def reserved(self, tiled: bool) -> int:
        """Bytes of the full-size buffers beside the model."""
        return output_bytes(
            self.scale,
            self.h,
            self.w,
            self.images,
            tiled=tiled,
            alpha=self.alpha,
            ensemble=self.options.self_ensemble,
        )

    def model_bytes(self, piece: Piece, batch: int, streams: int) -> int:
        """The model's memory for ``streams`` calls at once on ``batch`` pieces each."""
        return streams * self.memory(piece[0] * batch * self.images, piece[1])

    def refusal(
        self, reserve: int, piece: Piece | None = None, batch: int = 1, streams: int = 1
    ) -> MemoryBudgetError:
        """The error for a plan that does not fit (``piece`` None: not even the smallest)."""
        h, w, scale = self.h, self.w, self.scale
        smallest = piece is None
        piece = piece or (min(MIN_INPUT_SIZE, h), min(MIN_INPUT_SIZE, w))
        model = self.model_bytes(piece, batch, streams)
        needed = reserve + model
        if self.explicit is not None:
            where, hint = "--max-memory / max_memory", ""
        else:
            where = "the free memory"
            hint = "" if smallest else "; use tiling (--tile N or --max-memory) or a smaller tile"
            hint += " or --tile-streams 1" if streams > 1 else ""
        if smallest:
            on = "the smallest tile"
        elif piece == (h, w):
            on = "the whole image"
        else:
            on = f"{piece[1]}x{piece[0]} tiles" + (
                f", {streams} calls at once" if streams > 1 else ""
            )
        return MemoryBudgetError(
            f"{w}x{h} at x{scale} needs about {_gb(needed)} ({_gb(reserve)} for the "
            f"{scale * w}x{scale * h} output and its buffers + {_gb(model)} for the model "
            f"on {on}), more than the {_gb(self.total)} memory budget ({where}){hint}",
            needed=needed,
            budget=self.total,
        )


def plan_run(
    descriptor: ModelDescriptor,
    h: int,
    w: int,
    options: RunOptions,
    *,
    images: int = 1,
    alpha: bool = False,
    precision: str | None = None,
) -> Plan:
    """The plan for ``images`` LR images of ``h x w``: the one planner (see the module doc).
    ``precision``: the run's, already resolved (an :class:`Upscaler` resolves it once);
    None: resolved here from ``options``.

    Raises:
        MemoryBudgetError: not even the smallest tile fits the budget.
    """
    check_model_tile(descriptor, options.tile)
    device = resolve_device(options.device)
    if precision is None:
        precision = resolve_precision(options.precision, device, descriptor)
    explicit = options.max_memory
    assert explicit is None or isinstance(explicit, int)  # RunOptions parsed it
    total = explicit if explicit is not None else available_memory(device)
    request = _Request(descriptor, h, w, options, images, alpha, device, total, explicit)
    # The model's share: the whole budget when explicit, else half the free memory; no bound
    # for a fixed tile without a budget.
    share = explicit if explicit is not None else (total // 2 if options.tile == "auto" else None)
    plan = _plan_for_share(request, share)
    return _checked(request, plan, precision)


def _plan_for_share(request: _Request, share: int | None) -> Plan:
    """The tiling for the model's ``share`` of the memory (None: unbounded); a tiled plan is
    planned again with the larger buffers that tiling needs."""
    if share is None:
        return _tiling(request, None)
    budget = min(share, request.total - request.reserved(False))
    plan = _tiling(request, budget) if budget > 0 else None
    if plan is None or plan.tiles(request.h, request.w, request.scale) > 1:
        budget = min(share, request.total - request.reserved(True))
        if budget <= 0:
            raise request.refusal(request.reserved(True))
        plan = _tiling(request, budget)
    return plan


def _tiling(request: _Request, budget: int | None) -> Plan:
    try:
        return _choose_tiling(request, budget)
    except MemoryError:
        raise request.refusal(request.reserved(True)) from None


def _checked(request: _Request, plan: Plan, precision: str) -> Plan:
    """``plan`` completed (calls, bytes needed, budget), or the refusal when its peak exceeds
    the memory budget."""
    h, w = request.h, request.w
    tiles = plan.tiles(h, w, request.scale)
    tiled = tiles > 1
    reserve = request.reserved(tiled)
    piece: Piece
    if plan.chop:
        piece, batch = (min(h, 64), min(w, 64)), 1  # the chop's pieces are under 3600 pixels
    elif tiled and plan.tile != WHOLE:
        piece, batch = (min(plan.tile, h), min(plan.tile, w)), plan.batch
    else:
        piece, batch = (h, w), 1
    streams = min(plan.streams, math.ceil(tiles / batch)) if tiled and not plan.chop else 1
    needed = reserve + request.model_bytes(piece, batch, streams)
    if needed > request.total:
        raise request.refusal(reserve, piece, batch, streams)
    return dataclasses.replace(
        plan,
        tile=plan.tile if tiled else WHOLE,
        overlap=plan.overlap if tiled else 0,
        batch=batch if tiled else 1,
        margin=plan.margin if tiled else 0,
        streams=streams,
        precision=precision,
        calls=tiles * (8 if request.options.self_ensemble else 1),
        needed=needed,
        budget=request.total,
        attention_window=attention_window_for(request.descriptor, request.options.attention_window),
    )


def fit_tile(request: _Request, budget: int, batch: int = 1) -> int:
    """The largest square tile whose call on ``batch`` tiles fits ``budget`` bytes."""
    memory = request.memory
    unit = memory.per_pixel * batch * request.images
    if budget <= memory.constant + unit * MIN_INPUT_SIZE**2:
        raise MemoryError
    return max(MIN_INPUT_SIZE, int(math.sqrt((budget - memory.constant) / unit)))


def _shrink(
    request: _Request, budget: int | None, tile: int, batch: int, streams: int
) -> tuple[int, int, int]:
    """Fewer streams first, then fewer tiles per call, then smaller tiles, until the calls
    running at once fit the budget. Returns (tile, batch, streams)."""
    if budget is None:
        return tile, batch, streams
    memory, images = request.memory, request.images
    while streams > 1 and streams * memory(tile * batch * images, tile) > budget:
        streams -= 1
    while batch > 1 and memory(tile * batch * images, tile) > budget:
        batch //= 2
    return min(tile, fit_tile(request, budget, batch)), batch, streams


def default_overlap(options: RunOptions, default: int, tile: int = WHOLE) -> int:
    """The overlap asked for, else ``default`` capped at a quarter of ``tile``."""
    return overlap_for(tile, options.tile_overlap, default)


def _choose_tiling(request: _Request, budget: int | None) -> Plan:
    """The tiling for the model's share ``budget`` of the memory (None: unbounded)."""
    options, descriptor, device = request.options, request.descriptor, request.device
    if options.tile_streams is not None:
        streams = options.tile_streams
    else:
        streams = min(CPU_STREAMS, torch.get_num_threads()) if device.type == "cpu" else 1
    if options.chop:
        return Plan(tile=WHOLE, overlap=0, chop=True)
    if not descriptor.tileable:
        # Nothing to bound, and tiling would change the result (e.g. bicubic).
        tile = WHOLE if options.tile == "auto" else options.tile
        return Plan(tile=tile, overlap=default_overlap(options, 0))
    measured = preferred_plan(descriptor)
    preferred = measured
    if device.type == "cpu" and preferred is None:
        preferred = GENERIC_CPU_PLAN
    batch = options.tile_batch or (preferred.batch if preferred else 1)
    if options.tile != "auto":
        if options.tile == WHOLE:  # as asked: the final check refuses what cannot fit
            return Plan(tile=WHOLE, overlap=default_overlap(options, 0))
        tile, batch, count = _shrink(request, budget, options.tile, batch, streams)
        return Plan(
            tile=tile,
            overlap=default_overlap(options, DEFAULT_OVERLAP, tile),
            batch=batch,
            margin=options.tile_margin or 0,
            streams=count,
        )
    assert budget is not None
    fit = fit_tile(request, budget)
    h, w = request.h, request.w
    fits_whole = request.memory(h * request.images, w) <= budget
    # A GPU, or a model whose work per pixel does not grow with the piece (no attention):
    # whole when it fits, else the largest tiles that fit.
    if device.type != "cpu" or preferred is None or not descriptor.quadratic_cost:
        if fits_whole:
            return Plan(tile=WHOLE, overlap=default_overlap(options, 0))
        overlap = default_overlap(options, DEFAULT_OVERLAP, fit)
        return Plan(tile=fit, overlap=overlap, batch=1, streams=1)
    whole = (
        h * w <= CPU_TILE_PIXELS  # the generic plan: whole images up to CPU_TILE_PIXELS
        if measured is None
        else h <= preferred.tile and w <= preferred.tile
    )
    if whole and fits_whole:
        return Plan(tile=WHOLE, overlap=default_overlap(options, 0))
    tile, batch, count = _shrink(request, budget, preferred.tile, batch, streams)
    margin = preferred.margin if options.tile_margin is None else options.tile_margin
    shrunk = tile if tile < preferred.tile else WHOLE
    return Plan(
        tile=tile,
        overlap=default_overlap(options, preferred.overlap, shrunk),
        batch=batch,
        margin=margin,
        streams=count,
    )
