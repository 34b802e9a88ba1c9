"""How to run a model (:class:`RunOptions`, the caller's wishes) and how one image is run
(:class:`Plan`, the planner's answer)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..device import PRECISION_CHOICES
from ..models.network import MIN_INPUT_SIZE
from .chop import chop_tile_count
from .memory import parse_memory
from .profiles import WHOLE
from .tiling import count_tiles

TileChoice = int | Literal["auto"]


def check_tile(tile: object, name: str = "tile") -> TileChoice:
    """``tile`` if it is one: ``"auto"``, :data:`WHOLE` (0, the whole image) or an LR tile
    side of at least :data:`~csnln.models.MIN_INPUT_SIZE`; else ValueError naming ``name``.
    The one check of a tile, for the CLI, :class:`RunOptions` and configs alike."""
    if tile == "auto" or (
        isinstance(tile, int)
        and not isinstance(tile, bool)
        and (tile == WHOLE or tile >= MIN_INPUT_SIZE)
    ):
        return tile  # type: ignore[return-value]
    raise ValueError(
        f"{name} must be auto, 0 (the whole image) or an LR tile side >= {MIN_INPUT_SIZE}, "
        f"got {tile!r}"
    )


@dataclass(frozen=True)
class RunOptions:
    """How to run a model on whole images: the one description every caller shares
    (``csnln upscale``/``eval``/``demo``, the Python API, training's validation), validated
    once, here.

    ``tile``: ``"auto"`` (the default: on a CPU the model's measured tile plan, on a GPU the
    whole image when it fits the memory budget, else the largest tile that does), an LR tile
    size, or 0 (:data:`WHOLE`) for whole images. ``tile_overlap``/``tile_batch``: the tiles' overlap
    in LR pixels and tiles per model call (None: the plan's; an explicit tile overlaps by
    :data:`DEFAULT_OVERLAP`). ``tile_margin``: the outer pixels of each overlap left to the
    neighbouring tile in the blend (None: the plan's; 0 with an explicit tile).
    ``tile_streams``: model calls running at once, each on its share of the CPU threads (None:
    :data:`CPU_STREAMS` on a CPU with that many threads, else 1). ``chop``: the authors'
    recursive tiling instead.
    ``self_ensemble``: average the 8 flips/transposes. ``precision``: ``"auto"`` (bf16 where
    it is fast, :func:`fast_bf16`; else fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (GPU).
    ``device``: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda[:N]"``.
    ``max_memory``: the memory budget in bytes (or ``"4GB"``), default: the free memory.
    ``attention_window``: confine the attentions to windows of this many LR pixels inside
    each tile or image (each query block over the keys around it; faster, and not the
    authors' computation: docs/benchmarks.md has its speed and PSNR); 0: each piece whole
    (the authors' computation); None: the window the weights were trained in (the model's
    ``descriptor.trained_attention_window``), whole pieces when they were trained so.
    """

    tile: TileChoice = "auto"
    tile_overlap: int | None = None
    tile_batch: int | None = None
    tile_margin: int | None = None
    tile_streams: int | None = None
    chop: bool = False
    self_ensemble: bool = False
    precision: str = "auto"
    device: str | torch.device = "auto"
    max_memory: int | str | None = None
    attention_window: int | None = None

    def __post_init__(self) -> None:
        tile = check_tile(self.tile)
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {self.tile_overlap}")
        if self.tile_batch is not None and self.tile_batch < 1:
            raise ValueError(f"tiles per call must be >= 1, got {self.tile_batch}")
        if self.tile_margin is not None and self.tile_margin < 0:
            raise ValueError(f"tile margin must be >= 0, got {self.tile_margin}")
        window = self.attention_window
        if window is not None and (isinstance(window, bool) or not isinstance(window, int)):
            raise ValueError(f"attention window must be a number of LR pixels, got {window!r}")
        if self.tile_streams is not None and self.tile_streams < 1:
            raise ValueError(f"tile streams must be >= 1, got {self.tile_streams}")
        if self.chop and tile not in ("auto", WHOLE):
            raise ValueError("give either a tile size or chop, not both")
        if self.precision not in PRECISION_CHOICES:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}"
            )
        if self.max_memory is not None:
            object.__setattr__(self, "max_memory", parse_memory(self.max_memory))

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Plan:
    """How one image is run: ``tile`` LR pixels square (:data:`WHOLE`: not tiled) overlapping by
    ``overlap`` (its outer ``margin`` pixels left to the neighbour in the blend), ``batch``
    tiles per model call and ``streams`` calls at once, or the authors' chop; in ``precision``.

    ``calls``: tiles run (x8 with self-ensemble); ``needed``: estimated peak bytes (output
    buffers + the model on ``streams`` calls); ``budget``: the bytes available (0: not
    planned for memory); ``attention_window``: the attentions' window (None: whole pieces).
    """

    tile: int
    overlap: int
    batch: int = 1
    chop: bool = False
    precision: str = "fp32"
    margin: int = 0
    streams: int = 1
    calls: int = 1
    needed: int = 0
    budget: int = 0
    attention_window: int | None = None

    def tiles(self, h: int, w: int, scale: int) -> int:
        if self.chop:
            return chop_tile_count(h, w, scale=scale)
        return count_tiles(h, w, self.tile, self.overlap)
