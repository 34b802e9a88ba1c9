"""Running a super-resolution model on whole images: tiling, the authors' chop, self-ensemble,
precision and device.

Every function here takes LR batches ``N x 3 x h x w`` (float, [0, 1]) and returns
``N x 3 x sh x sw``. :class:`Upscaler` bundles the options used by ``csnln upscale`` and
``csnln eval``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import itertools
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from .models.descriptor import PRECISIONS, ModelDescriptor, TilePlan, describe
from .models.network import MIN_INPUT_SIZE

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)
Forward = Callable[[torch.Tensor], torch.Tensor]

#: The plan for a model nobody measured a plan for (``ModelDescriptor.tile_plan`` None), on a
#: CPU: whole images up to this many LR pixels (the attentions' cost per pixel grows with the
#: piece), else tiles of 64 overlapping by 16.
CPU_TILE_PIXELS = 96 * 96
GENERIC_CPU_PLAN = TilePlan(tile=64, overlap=16, batch=1)
#: Overlap of an explicit ``tile`` when none is given (capped at a quarter of the tile).
DEFAULT_OVERLAP = 16
#: Concurrent model calls on a CPU with at least this many threads, each call on its share of
#: the threads: a small model's kernels use one core better than two (tile batches, two
#: streams against one: benchmarks/results/photo_x2.md). GPUs run one call at a time.
CPU_STREAMS = 2
_DONE = object()


# --- device and precision --------------------------------------------------------------------


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ValueError(f"device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


@contextlib.contextmanager
def _strict_float32() -> Iterator[None]:
    """CUDA float32 as float32: no TF32 in convolutions (on by default in PyTorch) or matmuls."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


#: How much faster than float32 a bf16 matrix product must run for ``auto`` to pick bf16.
BF16_MIN_SPEEDUP = 1.2


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """float32 seconds over bf16 seconds of a 1024² matrix product here (best of three each,
    measured once per process, about 0.1 s). The CPU flags alone do not tell: a CPU with
    AVX512-BF16 but no AMX ran a bf16 product at about half the float32 speed, one with AMX
    at over four times (the matmul peaks of ``benchmarks/results/photo.md`` runs 7 and 5)."""
    a = torch.randn(1024, 1024)

    def best(x: torch.Tensor) -> float:
        torch.mm(x, x)  # warm-up: oneDNN picks and caches its kernel on the first call
        times = []
        for _ in range(3):
            start = time.perf_counter()
            torch.mm(x, x)
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a) / best(a.bfloat16())


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX); without them bf16
    runs emulated and slower than float32."""
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 runs fast here: a CUDA GPU that supports it, or a CPU with bf16 matrix
    instructions (AVX512-BF16 or AMX) on which a bf16 matrix product measures at least
    :data:`BF16_MIN_SPEEDUP` times faster than float32 (:func:`cpu_bf16_speedup`)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if not cpu_has_bf16():
        return False
    return cpu_bf16_speedup() >= BF16_MIN_SPEEDUP


def resolve_precision(
    precision: str, device: torch.device, descriptor: ModelDescriptor | None = None
) -> str:
    """``"auto"`` -> ``"bf16"`` where bf16 is fast (:func:`fast_bf16`) and the model runs in it,
    else ``"fp32"``; an explicit precision is checked against the device and the model."""
    if precision == "auto":
        supported = PRECISIONS if descriptor is None else descriptor.precisions
        return "bf16" if "bf16" in supported and fast_bf16(device) else "fp32"
    precision_context(precision, device)  # validates
    if descriptor is not None and precision not in descriptor.precisions:
        raise ValueError(f"this model runs in {', '.join(descriptor.precisions)}, not {precision}")
    return precision


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for bf16/fp16 (fp16 only on GPU). fp32 is plain float32, also on a GPU:
    TF32 (PyTorch's default for CUDA convolutions, 10-bit mantissas) is off inside."""
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {precision!r}"
        )
    if precision == "fp32":
        return _strict_float32() if device.type == "cuda" else contextlib.nullcontext()
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("fp16 is for GPUs; on the CPU use bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


# --- memory ----------------------------------------------------------------------------------


def parse_memory(text: str | int | float) -> int:
    """``"4GB"``, ``"512MB"``, ``"1.5G"`` or a number of bytes -> bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    units = {
        "": 1,
        "B": 1,
        "K": 2**10,
        "KB": 2**10,
        "M": 2**20,
        "MB": 2**20,
        "G": 2**30,
        "GB": 2**30,
        "T": 2**40,
        "TB": 2**40,
        "KIB": 2**10,
        "MIB": 2**20,
        "GIB": 2**30,
    }
    s = text.strip().upper().replace(" ", "")
    number = s.rstrip("KMGTIB")
    unit = s[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise ValueError(f"cannot read memory size {text!r}: expected e.g. 4GB, 512MB")
    return int(value * units[unit])


def estimate_memory(model: nn.Module, h: int, w: int, *, precision: str = "fp32") -> int:
    """Estimated peak bytes of one forward pass of ``model`` on ``h x w`` LR pixels (a batch
    of tiles counts all of its pixels)."""
    # bf16/fp16 need less, but only float32 was measured: its bound is used for all precisions.
    del precision
    return describe(model).memory(h, w)


def tile_for_memory(
    model: nn.Module, budget: int, *, precision: str = "fp32", batch: int = 1
) -> int:
    """The largest square LR tile whose estimated peak, ``batch`` tiles per call, fits
    ``budget`` bytes."""
    descriptor = describe(model)
    constant, unit = descriptor.memory_constant, descriptor.memory_per_pixel * batch
    if budget <= constant + unit * MIN_INPUT_SIZE**2:
        raise MemoryError(
            f"a memory budget of {budget / 2**30:.2f} GB cannot fit even a "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} tile (the model alone needs about "
            f"{constant / 2**30:.2f} GB)"
        )
    return max(MIN_INPUT_SIZE, int(math.sqrt((budget - constant) / max(unit, 1))))


def available_memory(device: torch.device) -> int:
    """Free memory on ``device`` in bytes (GPU: free CUDA memory; CPU: MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


# --- tiling ----------------------------------------------------------------------------------


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


def count_tiles(h: int, w: int, tile: int | None, overlap: int) -> int:
    if tile is None:
        return 1
    return len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap))


def run_tiled(
    forward: Forward,
    lr: torch.Tensor,
    *,
    scale: int,
    tile: int | None,
    overlap: int = DEFAULT_OVERLAP,
    batch: int = 1,
    margin: int = 0,
    streams: int = 1,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run ``forward`` on overlapping ``tile x tile`` LR tiles and blend them without seams.

    Where two tiles overlap, their outputs are cross-faded with linear weights over the
    overlap (image borders are not faded), so each output pixel is a convex combination of the
    tiles covering it. With one tile covering the image (or ``tile=None``) this is exactly
    ``forward(lr)``. ``batch`` tiles (all of one size) go through ``forward`` in one call, as
    one batch: small tiles alone leave the CPU's matrix kernels underfed. ``streams`` calls
    run at once, each on its own thread with its share of the intra-op threads (the same
    result up to float rounding; see :data:`CPU_STREAMS`). ``on_tile`` is called once per
    tile, in tile order.
    """
    n, _, h, w = lr.shape
    if tile is None or (tile >= h and tile >= w):
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


# --- the bundle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """How to run a model on whole images: the one description every caller shares
    (``csnln upscale``/``eval``/``demo``, the Python API, training's validation), validated
    once, here.

    ``tile``: ``"auto"`` (the default: on a CPU the model's measured tile plan, on a GPU the
    whole image when it fits the memory budget, else the largest tile that does), an LR tile
    size, or None (or 0) for whole images. ``tile_overlap``/``tile_batch``: the tiles' overlap
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
    """

    tile: int | Literal["auto"] | None = "auto"
    tile_overlap: int | None = None
    tile_batch: int | None = None
    tile_margin: int | None = None
    tile_streams: int | None = None
    chop: bool = False
    self_ensemble: bool = False
    precision: str = "auto"
    device: str | torch.device = "auto"
    max_memory: int | str | None = None

    def __post_init__(self) -> None:
        tile = None if self.tile == 0 else self.tile
        if (
            tile is not None
            and tile != "auto"
            and (isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_INPUT_SIZE)
        ):
            raise ValueError(
                f"tile must be an integer >= {MIN_INPUT_SIZE}, 'auto' or None, got {tile!r}"
            )
        object.__setattr__(self, "tile", tile)
        if self.tile_overlap is not None and self.tile_overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {self.tile_overlap}")
        if self.tile_batch is not None and self.tile_batch < 1:
            raise ValueError(f"tiles per call must be >= 1, got {self.tile_batch}")
        if self.tile_margin is not None and self.tile_margin < 0:
            raise ValueError(f"tile margin must be >= 0, got {self.tile_margin}")
        if self.tile_streams is not None and self.tile_streams < 1:
            raise ValueError(f"tile streams must be >= 1, got {self.tile_streams}")
        if self.chop and tile not in ("auto", None):
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
    """How one image is run: ``tile`` LR pixels square (None: whole) overlapping by
    ``overlap`` (its outer ``margin`` pixels left to the neighbour in the blend), ``batch``
    tiles per model call and ``streams`` calls at once, or the authors' chop; in ``precision``.

    ``calls``: tiles run (x8 with self-ensemble); ``needed``: estimated peak bytes (output
    buffers + the model on ``streams`` calls); ``budget``: the bytes available (0: not
    planned for memory).
    """

    tile: int | None
    overlap: int
    batch: int = 1
    chop: bool = False
    precision: str = "fp32"
    margin: int = 0
    streams: int = 1
    calls: int = 1
    needed: int = 0
    budget: int = 0

    def tiles(self, h: int, w: int, scale: int) -> int:
        if self.chop:
            return chop_tile_count(h, w, scale=scale)
        return count_tiles(h, w, self.tile, self.overlap)


class MemoryBudgetError(MemoryError):
    """An image that cannot be upscaled within the memory budget, even with the smallest tile.

    ``needed`` is the estimated peak in bytes (output canvas and buffers + the model on one
    tile), ``budget`` the bytes available; the message gives both on one line.
    """

    def __init__(self, message: str, *, needed: int, budget: int) -> None:
        self.needed = needed
        self.budget = budget
        super().__init__(message)


_FLOAT = 4  # bytes per float32


def _gb(n: float) -> str:
    """Bytes for people: 1.50 GB, 286 MB, 12 KB."""
    if abs(n) >= 2**30:
        return f"{n / 2**30:.2f} GB"
    return f"{n / 2**20:.0f} MB" if abs(n) >= 2**20 else f"{max(n, 0) / 2**10:.0f} KB"


def output_bytes(
    scale: int, h: int, w: int, images: int, *, tiled: bool, alpha: bool, ensemble: bool
) -> int:
    """Bytes of the full-size buffers beside the model: the result and its conversion, the
    blending sum and weights when tiled, the running sum of the self-ensemble, the alpha."""
    floats = 3 * images  # converting/clamping the result
    if tiled:
        floats += 6 * images + 1  # weighted sum and its normalised copy, plus the weights
    if ensemble:
        floats += 6 * images  # running sum + one un-transformed output
    if alpha:
        floats += 2 * images  # resized alpha and its intermediate
    return scale * scale * h * w * floats * _FLOAT


def plan_run(
    descriptor: ModelDescriptor,
    h: int,
    w: int,
    options: RunOptions,
    *,
    images: int = 1,
    alpha: bool = False,
) -> Plan:
    """The plan for ``images`` LR images of ``h x w``: the one planner.

    The memory budget is ``options.max_memory``, else the free memory of the device (of which
    an automatic plan gives the model half). The full-size buffers (output, blending, alpha,
    self-ensemble) are set aside first; the model's tiles get what is left (fewer tiles per
    call first, then smaller tiles). Raises :class:`MemoryBudgetError` with the numbers when
    not even the smallest tile fits.
    """
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device, descriptor)
    scale = descriptor.scale
    calls_per_tile = 8 if options.self_ensemble else 1
    explicit = options.max_memory
    total = explicit if explicit is not None else available_memory(device)
    # The model's share: the whole budget when explicit, else half the free memory; no bound
    # for a fixed tile without a budget.
    share = explicit if explicit is not None else (total // 2 if options.tile == "auto" else None)

    def reserved(tiled: bool) -> int:
        return output_bytes(
            scale, h, w, images, tiled=tiled, alpha=alpha, ensemble=options.self_ensemble
        )

    def model_bytes(piece: tuple[int, int], batch: int, streams: int) -> int:
        """The model's memory for ``streams`` calls at once on ``batch`` pieces each."""
        return streams * descriptor.memory(piece[0] * batch * images, piece[1])

    def refuse(
        reserve: int, piece: tuple[int, int] | None = None, batch: int = 1, streams: int = 1
    ) -> Exception:
        smallest = piece is None
        piece = piece or (min(MIN_INPUT_SIZE, h), min(MIN_INPUT_SIZE, w))
        model = model_bytes(piece, batch, streams)
        needed = reserve + model
        if explicit is not None:
            where, hint = "--max-memory / max_memory", ""
        else:
            where = "the free memory"
            hint = "" if smallest else "; use tiling (--tile N or --max-memory) or a smaller tile"
            hint += " or --tile-streams 1" if streams > 1 else ""
        on = (
            "the smallest tile"
            if smallest
            else "the whole image"
            if piece == (h, w)
            else f"{piece[1]}x{piece[0]} tiles"
            + (f", {streams} calls at once" if streams > 1 else "")
        )
        return MemoryBudgetError(
            f"{w}x{h} at x{scale} needs about {_gb(needed)} ({_gb(reserve)} for the "
            f"{scale * w}x{scale * h} output and its buffers + {_gb(model)} for the model "
            f"on {on}), more than the {_gb(total)} memory budget ({where}){hint}",
            needed=needed,
            budget=total,
        )

    def tiling(budget: int | None) -> Plan:
        try:
            return _choose_tiling(descriptor, h, w, options, device, budget, images)
        except MemoryError:
            raise refuse(reserved(True)) from None

    if share is None:
        plan = tiling(None)
    else:
        budget = min(share, total - reserved(False))
        plan = tiling(budget) if budget > 0 else None
        if plan is None or plan.tiles(h, w, scale) > 1:  # tiled: its buffers are larger
            budget = min(share, total - reserved(True))
            if budget <= 0:
                raise refuse(reserved(True))
            plan = tiling(budget)
    tiles = plan.tiles(h, w, scale)
    tiled = tiles > 1
    reserve = reserved(tiled)
    if plan.chop:
        piece, batch = (min(h, 64), min(w, 64)), 1  # the chop's pieces are under 3600 pixels
    elif tiled and plan.tile is not None:
        piece, batch = (min(plan.tile, h), min(plan.tile, w)), plan.batch
    else:
        piece, batch = (h, w), 1
    streams = min(plan.streams, math.ceil(tiles / batch)) if tiled and not plan.chop else 1
    needed = reserve + model_bytes(piece, batch, streams)
    if needed > total:
        raise refuse(reserve, piece, batch, streams)
    return dataclasses.replace(
        plan,
        tile=plan.tile if tiled else None,
        overlap=plan.overlap if tiled else 0,
        batch=batch if tiled else 1,
        margin=plan.margin if tiled else 0,
        streams=streams,
        precision=precision,
        calls=tiles * calls_per_tile,
        needed=needed,
        budget=total,
    )


def _choose_tiling(
    descriptor: ModelDescriptor,
    h: int,
    w: int,
    options: RunOptions,
    device: torch.device,
    budget: int | None,
    images: int,
) -> Plan:
    """The tiling for the model's share ``budget`` of the memory (None: unbounded)."""

    def fit_tile(batch: int = 1) -> int:
        assert budget is not None
        unit = descriptor.memory_per_pixel * batch * images
        if budget <= descriptor.memory_constant + unit * MIN_INPUT_SIZE**2:
            raise MemoryError
        return max(MIN_INPUT_SIZE, int(math.sqrt((budget - descriptor.memory_constant) / unit)))

    def shrink(tile: int, batch: int) -> tuple[int, int, int]:
        """Fewer streams first, then fewer tiles per call, then smaller tiles, until the calls
        running at once fit the budget. Returns (tile, batch, streams)."""
        count = streams
        if budget is None:
            return tile, batch, count
        while count > 1 and count * descriptor.memory(tile * batch * images, tile) > budget:
            count -= 1
        while batch > 1 and descriptor.memory(tile * batch * images, tile) > budget:
            batch //= 2
        return min(tile, fit_tile(batch)), batch, count

    def overlap(default: int, cap: int | None = None) -> int:
        if options.tile_overlap is not None:
            return options.tile_overlap
        return default if cap is None else min(default, cap // 4)

    if options.tile_streams is not None:
        streams = options.tile_streams
    else:
        streams = min(CPU_STREAMS, torch.get_num_threads()) if device.type == "cpu" else 1
    if options.chop:
        return Plan(tile=None, overlap=0, chop=True)
    if not descriptor.tileable:
        # Nothing to bound, and tiling would change the result (e.g. bicubic).
        return Plan(tile=None if options.tile == "auto" else options.tile, overlap=overlap(0))
    preferred = descriptor.tile_plan
    if device.type == "cpu" and preferred is None:
        preferred = GENERIC_CPU_PLAN
    batch = options.tile_batch or (preferred.batch if preferred else 1)
    if options.tile != "auto":
        if options.tile is None:  # whole, as asked: the final check refuses what cannot fit
            return Plan(tile=None, overlap=overlap(0))
        tile, batch, count = shrink(options.tile, batch)
        return Plan(
            tile=tile,
            overlap=overlap(DEFAULT_OVERLAP),
            batch=batch,
            margin=options.tile_margin or 0,
            streams=count,
        )
    assert budget is not None
    fit = fit_tile()
    fits_whole = descriptor.memory(h * images, w) <= budget
    if device.type != "cpu" or preferred is None:  # a GPU: whole when it fits
        if fits_whole:
            return Plan(tile=None, overlap=overlap(0))
        return Plan(tile=fit, overlap=overlap(DEFAULT_OVERLAP, cap=fit), batch=1, streams=1)
    whole = (
        h * w <= CPU_TILE_PIXELS  # the generic plan: whole images up to CPU_TILE_PIXELS
        if descriptor.tile_plan is None
        else h <= preferred.tile and w <= preferred.tile
    )
    if whole and fits_whole:
        return Plan(tile=None, overlap=overlap(0))
    tile, batch, count = shrink(preferred.tile, batch)
    margin = preferred.margin if options.tile_margin is None else options.tile_margin
    return Plan(
        tile=tile,
        overlap=overlap(preferred.overlap, cap=tile if tile < preferred.tile else None),
        batch=batch,
        margin=margin,
        streams=count,
    )


class Upscaler:
    """A model plus the :class:`RunOptions` of how to run it on whole images.

    ``Upscaler(model, options)`` or ``Upscaler(model, tile=..., precision=...)`` (keywords of
    :class:`RunOptions`). :meth:`plan` gives the :class:`Plan` for an image size; calling the
    upscaler runs it.
    """

    def __init__(self, model: nn.Module, options: RunOptions | None = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise ValueError("give either RunOptions or option keywords, not both")
        self.options = options if options is not None else RunOptions(**kwargs)
        self.device = resolve_device(self.options.device)
        self.descriptor = describe(model)
        self.precision = resolve_precision(self.options.precision, self.device, self.descriptor)
        self.model = model.to(self.device).eval()
        self.scale = self.descriptor.scale

    @property
    def chop(self) -> bool:
        return self.options.chop

    @property
    def self_ensemble(self) -> bool:
        return self.options.self_ensemble

    def plan(self, h: int, w: int, *, images: int = 1, alpha: bool = False) -> Plan:
        """The plan for ``images`` LR images of ``h x w`` (see :func:`plan_run`)."""
        return plan_run(self.descriptor, h, w, self.options, images=images, alpha=alpha)

    def _forward(self, lr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), precision_context(self.precision, self.device):
            return self.model(lr).float()

    def __call__(
        self,
        lr: torch.Tensor,
        *,
        plan: Plan | None = None,
        on_tile: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Super-resolve ``lr`` (N x 3 x h x w, [0, 1]) by ``plan`` (default: :meth:`plan`);
        returns float32 N x 3 x sh x sw."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(lr.shape)}")
        lr = lr.to(self.device, torch.float32)
        if plan is None:
            plan = self.plan(*lr.shape[-2:], images=lr.shape[0])

        def run(x: torch.Tensor) -> torch.Tensor:
            if plan.chop:

                def counted(piece: torch.Tensor) -> torch.Tensor:
                    out = self._forward(piece)
                    if on_tile:
                        on_tile()
                    return out

                return run_chop(counted, x, scale=self.scale)
            return run_tiled(
                self._forward,
                x,
                scale=self.scale,
                tile=plan.tile,
                overlap=plan.overlap,
                batch=plan.batch * x.shape[0],
                margin=plan.margin,
                streams=plan.streams,
                on_tile=on_tile,
            )

        if self.options.self_ensemble:
            return self_ensemble(run, lr)
        return run(lr)

    def tiles_per_image(self, h: int, w: int) -> int:
        """How many tiles one ``h x w`` image takes (for progress bars)."""
        return self.plan(h, w).calls
