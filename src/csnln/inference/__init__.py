"""Running a super-resolution model on whole images: the one door (:class:`Upscaler`).

Every function here takes LR batches ``N x 3 x h x w`` (float, [0, 1]) and returns
``N x 3 x sh x sw``. One job per module:

* :mod:`.profiles`: run profiles, the one home of :class:`TilePlan`, the generic plan and
  CPU limits, the default overlap, the memory model and the bundled models' measured plans;
* :mod:`.options`: :class:`RunOptions` (how to run) and :class:`Plan` (how one image runs);
* :mod:`.planner`: :func:`plan_run`, the tiling that fits the memory budget;
* :mod:`.memory`: budgets, the memory model, free memory;
* :mod:`.tiling`: overlapping tiles cross-faded without seams, several calls at once;
* :mod:`.chop`: the authors' tiling; :mod:`.ensemble`: the x8 self-ensemble;
* :mod:`.upscaler`: :class:`Upscaler`, a model plus its options.

Device and precision live in :mod:`csnln.device` (training uses them too); they are
re-exported here for the callers that run models.
"""

from ..device import (
    PRECISION_CHOICES,
    Precision,
    cpu_bf16_speedup,
    cpu_has_bf16,
    fast_bf16,
    precision_context,
    resolve_device,
    resolve_precision,
)
from .chop import chop_fits, chop_split, chop_tile_count, run_chop
from .ensemble import self_ensemble
from .memory import (
    MemoryBudgetError,
    available_memory,
    estimate_memory,
    output_bytes,
    parse_memory,
    tile_for_memory,
)
from .options import Plan, RunOptions, TileChoice, check_tile
from .planner import plan_run
from .profiles import (
    CPU_STREAMS,
    CPU_TILE_PIXELS,
    DEFAULT_OVERLAP,
    GENERIC_CPU_PLAN,
    MEASURED_PLANS,
    WHOLE,
    MemoryModel,
    TilePlan,
    measured_plan,
    memory_model,
)
from .tiling import Forward, count_tiles, run_tiled, tile_starts
from .upscaler import Upscaler

__all__ = [
    "CPU_STREAMS",
    "CPU_TILE_PIXELS",
    "DEFAULT_OVERLAP",
    "GENERIC_CPU_PLAN",
    "MEASURED_PLANS",
    "MemoryModel",
    "PRECISION_CHOICES",
    "Forward",
    "MemoryBudgetError",
    "Plan",
    "Precision",
    "RunOptions",
    "TileChoice",
    "TilePlan",
    "WHOLE",
    "Upscaler",
    "available_memory",
    "check_tile",
    "chop_fits",
    "chop_split",
    "chop_tile_count",
    "count_tiles",
    "cpu_bf16_speedup",
    "cpu_has_bf16",
    "estimate_memory",
    "fast_bf16",
    "measured_plan",
    "memory_model",
    "output_bytes",
    "parse_memory",
    "plan_run",
    "precision_context",
    "resolve_device",
    "resolve_precision",
    "run_chop",
    "run_tiled",
    "self_ensemble",
    "tile_for_memory",
    "tile_starts",
]
