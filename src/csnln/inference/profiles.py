"""Run profiles: everything the runner knows about running a model that is not a fact of the
network itself, in one place.

* :class:`TilePlan`, the shape of a tiled run;
* the plan for a model nobody measured (:data:`GENERIC_CPU_PLAN`, :data:`CPU_TILE_PIXELS`),
  the default overlap and its rule (:func:`overlap_for`), the CPU's concurrent calls;
* the memory model (:func:`memory_model`: peak bytes of one call from the descriptor);
* the CPU plans measured for the bundled weights (:data:`MEASURED_PLANS`).

A model's :class:`~csnln.models.ModelDescriptor` says what the network is (scale, size
multiple, width, which weights); this module turns that into how to run it. Changing the
tile planner's defaults, the memory model or a bundled plan means editing this file only.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..models.descriptor import ModelDescriptor
from ..models.network import MIN_INPUT_SIZE


@dataclass(frozen=True)
class TilePlan:
    """Square LR tiles of ``tile`` pixels overlapping by ``overlap``, ``batch`` tiles per call;
    the outer ``margin`` pixels of each overlap are left to the neighbouring tile."""

    tile: int
    overlap: int
    batch: int = 1
    margin: int = 0

    def __post_init__(self) -> None:
        if (
            self.tile < 1
            or not 0 <= self.overlap < self.tile
            or self.batch < 1
            or not 0 <= 2 * self.margin < max(self.overlap, 1)
        ):
            raise ValueError(
                "a tile plan needs tile >= 1, 0 <= overlap < tile, batch >= 1 and "
                f"0 <= 2 margin < overlap; got {self}"
            )


#: The tile of the whole image, spelled so everywhere: ``--tile 0``, ``RunOptions(tile=0)``, a
#: config's ``val.tile: 0``, and a :class:`~csnln.inference.Plan` that does not tile.
WHOLE = 0
#: Overlap of an explicit tile when none is given (capped at a quarter of the tile).
DEFAULT_OVERLAP = 16
#: Concurrent model calls on a CPU with at least this many threads, each call on its share of
#: the threads: a small model's kernels use one core better than two (tile batches, two
#: streams against one: benchmarks/results/photo_x2.md). GPUs run one call at a time.
CPU_STREAMS = 2
#: The plan for a model nobody measured a plan for, on a CPU: whole images up to this many LR
#: pixels (the attentions' cost per pixel grows with the piece), else tiles of 64
#: overlapping by 16.
CPU_TILE_PIXELS = 96 * 96
GENERIC_CPU_PLAN = TilePlan(tile=64, overlap=DEFAULT_OVERLAP, batch=1)
#: Tiles per call of a model of one input size (an exported graph) without a measured plan.
GENERIC_EXPORT_BATCH = 8

#: The CPU tile plans measured best for the bundled weights, by bundled name and scale
#: (``benchmarks/tile_plan.py``: the fastest plan within 0.01 dB of the best candidate's
#: PSNR on B100 and on Set5, and no more than 0.01 dB under the plan before issue 1/5, in
#: float32; its output is ``benchmarks/results/tile_plan.md``). Re-run it when the weights
#: change.
MEASURED_PLANS: dict[str, dict[int, TilePlan]] = {
    "small": {
        2: TilePlan(tile=32, overlap=8, batch=8, margin=3),
        3: TilePlan(tile=27, overlap=6, batch=8),
        4: TilePlan(tile=24, overlap=6, batch=8),
    },
}

#: Growth of peak memory during one float32 CSNLN forward pass (n_feats 128, default
#: chunking) as ``bytes_per_lr_pixel * h * w + constant`` per scale, an upper bound of the
#: measurements of benchmarks/memory_model.py (2 cores, PyTorch 2.13 CPU).
CSNLN_MEMORY: dict[int, tuple[int, int]] = {
    2: (17_472, 234_000_000),
    3: (25_029, 457_000_000),
    4: (48_331, 283_000_000),
}


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes of one float32 call grow as ``per_pixel * h * w + constant`` (an upper
    bound; the pixels of a batch of tiles all count)."""

    per_pixel: int
    constant: int = 0

    def __call__(self, h: int, w: int) -> int:
        return self.per_pixel * h * w + self.constant


def memory_model(descriptor: ModelDescriptor) -> MemoryModel:
    """The memory model of the network ``descriptor`` describes."""
    scale = descriptor.scale
    if descriptor.architecture == "bicubic":
        return MemoryModel(2 * 3 * 4 * scale * scale)  # the float32 output and one intermediate
    per_pixel, constant = CSNLN_MEMORY[scale]
    # Measured at n_feats 128 and scaled up for wider networks, never down: the attentions'
    # score chunks and the allocator's arenas do not shrink with the width (the bundled
    # 32-wide x2 model, 8 tiles of 48 per call: 197-509 MB of growth in the same job, the
    # high end on a busy machine; tests/test_memory_bound.py).
    return MemoryModel(per_pixel * max(descriptor.n_feats, 128) // 128, constant)


def measured_plan(descriptor: ModelDescriptor) -> TilePlan | None:
    """The CPU plan measured for the model's weights (bundled ones), else None."""
    if descriptor.weights is None:
        return None
    return MEASURED_PLANS.get(descriptor.weights, {}).get(descriptor.scale)


def preferred_plan(descriptor: ModelDescriptor) -> TilePlan | None:
    """The CPU plan to run the model by: the one measured for its weights; for a model of one
    input size (an exported graph), tiles of that size, overlapping as measured when the
    size is the measured plan's, else by :func:`overlap_for`. None: nobody measured one."""
    measured = measured_plan(descriptor)
    if descriptor.input_size is None:
        return measured
    tile = min(descriptor.input_size)
    if measured is not None and measured.tile == tile:
        return measured
    batch = measured.batch if measured is not None else GENERIC_EXPORT_BATCH
    return TilePlan(tile=tile, overlap=overlap_for(tile, default=DEFAULT_OVERLAP), batch=batch)


def smallest_tile(descriptor: ModelDescriptor) -> int:
    """The smallest tile a model runs as it was meant to: its attention's patch (and the
    network's 3x3 minimum), rounded up to its size multiple."""
    m = descriptor.size_multiple
    return -(-max(descriptor.patch_size, MIN_INPUT_SIZE) // m) * m


def check_model_tile(descriptor: ModelDescriptor, tile: object) -> None:
    """Refuse, in one line naming the smallest valid value, an explicit tile (the test
    window) smaller than the model's attention patch or not a multiple of its size multiple
    (the network would pad each tile, and its attention would see padding). A tile larger
    than the image runs the whole image; "auto", 0 (whole) and models that are not tiled
    pass."""
    if not isinstance(tile, int) or tile == WHOLE or not descriptor.tileable:
        return
    m, low = descriptor.size_multiple, smallest_tile(descriptor)
    if tile < low or tile % m:
        raise ValueError(
            f"tile {tile}: a x{descriptor.scale} model's tiles must be multiples of {m} of at "
            f"least {low} LR pixels (the smallest valid tile: {low}; 0 runs the whole image)"
        )


def attention_window_for(descriptor: ModelDescriptor, asked: int | None) -> int | None:
    """The attention window a run uses: the one asked for (:data:`WHOLE`: each piece whole,
    the authors' computation), else the one the weights were trained in (None: whole)."""
    if asked is None:
        return descriptor.trained_attention_window
    return None if asked == WHOLE else asked


def check_attention_window(descriptor: ModelDescriptor, window: int | None) -> None:
    """Refuse, in one line naming the smallest valid value, an attention window the model
    cannot take: it has no attention to confine, or the window is under its smallest or not
    a multiple of its size multiple. None (the default) and :data:`WHOLE` pass."""
    if window is None or window == WHOLE:
        return
    smallest = descriptor.smallest_attention_window
    if smallest is None:
        raise ValueError(
            f"attention window {window}: this {descriptor.architecture} model has no attention "
            "to confine to windows"
        )
    m = descriptor.size_multiple
    if window < smallest or window % m:
        raise ValueError(
            f"attention window {window}: a x{descriptor.scale} model's attention windows must be "
            f"multiples of {m} of at least {smallest} LR pixels (the smallest valid: {smallest}; "
            "0 runs each piece whole)"
        )


def overlap_for(tile: int, requested: int | None = None, default: int = 0) -> int:
    """The overlap of a tile: the one asked for, else ``default`` capped at a quarter of
    ``tile`` (:data:`WHOLE`: uncapped)."""
    if requested is not None:
        return requested
    return default if tile == WHOLE else min(default, tile // 4)
