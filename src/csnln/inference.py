"""Running a super-resolution model on whole images: tiling, the authors' chop, self-ensemble,
precision and device.

Every function here takes LR batches ``N x 3 x h x w`` (float, [0, 1]) and returns
``N x 3 x sh x sw``. :class:`Upscaler` bundles the options used by ``csnln upscale`` and
``csnln eval``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .models.network import CSNLN, MIN_INPUT_SIZE

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
Forward = Callable[[torch.Tensor], torch.Tensor]

#: Growth of peak memory during one float32 forward pass (batch 1, n_feats 128, default
#: chunking) as ``bytes_per_lr_pixel * h * w + constant`` per scale, an upper bound of the
#: measurements of benchmarks/memory_model.py. Scaled by n_feats and the precision.
MEMORY_MODEL: dict[int, tuple[int, int]] = {
    # Measured 2026-11-25 on the development machine (2 cores, PyTorch 2.13 CPU).
    2: (17_472, 234_000_000),
    3: (25_029, 457_000_000),
    4: (48_331, 283_000_000),
}

#: Default on the CPU: the largest LR tile (pixels) run in one piece. The attentions make the
#: cost per pixel grow with the tile's pixel count, so big tiles are slow on a CPU, not only big.
CPU_TILE_PIXELS = 96 * 96
DEFAULT_CPU_TILE = 64
DEFAULT_OVERLAP = 16


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


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast for bf16/fp16 (fp16 only on GPU). fp32 is plain float32, also on a GPU:
    TF32 (PyTorch's default for CUDA convolutions, 10-bit mantissas) is off inside."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
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
    """Estimated peak bytes of one forward pass of ``model`` on an ``h x w`` LR image."""
    scale = int(getattr(model, "scale", 4))
    per_pixel, constant = MEMORY_MODEL.get(scale, MEMORY_MODEL[4])
    width = int(getattr(model, "n_feats", 128)) / 128
    # bf16/fp16 need less, but only float32 was measured: its bound is used for all precisions.
    del precision
    return int(per_pixel * width * h * w + constant)


def tile_for_memory(model: nn.Module, budget: int, *, precision: str = "fp32") -> int:
    """The largest square LR tile whose estimated peak fits ``budget`` bytes."""
    scale = int(getattr(model, "scale", 4))
    per_pixel, constant = MEMORY_MODEL.get(scale, MEMORY_MODEL[4])
    unit = estimate_memory(model, 1, 1, precision=precision) - constant
    if budget <= constant + unit * MIN_INPUT_SIZE**2:
        raise MemoryError(
            f"a memory budget of {budget / 2**30:.2f} GB cannot fit even a "
            f"{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} tile (the model alone needs about "
            f"{constant / 2**30:.2f} GB)"
        )
    return max(MIN_INPUT_SIZE, int(math.sqrt((budget - constant) / unit)))


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


def _ramp(length: int, fade_start: int, fade_end: int, device, dtype) -> torch.Tensor:
    """1-D weights: linear ramps over the first ``fade_start`` and last ``fade_end`` samples."""
    weights = torch.ones(length, device=device, dtype=dtype)
    if fade_start:
        weights[:fade_start] = (
            torch.arange(fade_start, device=device, dtype=dtype) + 0.5
        ) / fade_start
    if fade_end:
        weights[length - fade_end :] = (
            torch.arange(fade_end, 0, -1, device=device, dtype=dtype) - 0.5
        ) / fade_end
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
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Run ``forward`` on overlapping ``tile x tile`` LR tiles and blend them without seams.

    Where two tiles overlap, their outputs are cross-faded with linear weights over the
    overlap (image borders are not faded), so each output pixel is a convex combination of the
    tiles covering it. With one tile covering the image (or ``tile=None``) this is exactly
    ``forward(lr)``.
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
    s = scale
    out = weight = None
    for y in ys:
        for x in xs:
            th, tw = min(tile, h), min(tile, w)
            sr = forward(lr[:, :, y : y + th, x : x + tw]).float()
            if out is None:
                out = sr.new_zeros(n, sr.shape[1], s * h, s * w)
                weight = sr.new_zeros(1, 1, s * h, s * w)
            # Fade over the actual overlap with the neighbouring tile on each side.
            top = (ys[ys.index(y) - 1] + th - y) if y > 0 else 0
            bottom = (y + th - ys[ys.index(y) + 1]) if y + th < h else 0
            left = (xs[xs.index(x) - 1] + tw - x) if x > 0 else 0
            right = (x + tw - xs[xs.index(x) + 1]) if x + tw < w else 0
            wy = _ramp(s * th, s * top, s * bottom, sr.device, sr.dtype)
            wx = _ramp(s * tw, s * left, s * right, sr.device, sr.dtype)
            window = wy[:, None] * wx[None, :]
            out[:, :, s * y : s * (y + th), s * x : s * (x + tw)] += sr * window
            weight[:, :, s * y : s * (y + th), s * x : s * (x + tw)] += window
            if on_tile:
                on_tile()
    assert out is not None and weight is not None
    return out.div_(weight)


def run_chop(
    forward: Forward, lr: torch.Tensor, *, scale: int, shave: int = 10, min_size: int = 3600
) -> torch.Tensor:
    """The authors' recursive ``forward_chop``, exactly: split into 4 overlapping quarters
    (``shave`` LR pixels of overlap, sizes rounded up to a multiple of ``scale``) until a
    quarter has fewer than ``min_size`` LR pixels, run each, paste the quarters' inner parts.

    Reproduces the tiles (about 60x60 LR) behind the released numbers. An image too small to
    be cut into overlapping quarters (under about 24 pixels a side) is run whole.
    """
    _, _, h, w = lr.shape
    h_half, w_half = h // 2, w // 2
    h_size, w_size = h_half + shave, w_half + shave
    h_size += scale - h_size % scale  # (sic: adds `scale` when already a multiple)
    w_size += scale - w_size % scale
    if h_size > h or w_size > w:
        # Too small to cut in overlapping quarters (the authors' code crashes here): whole.
        return forward(lr)
    if w_size * h_size >= min_size and h_size >= h and w_size >= w:
        raise ValueError(f"chop cannot split {h}x{w} below {min_size} pixels with shave {shave}")
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


def chop_tile_count(h: int, w: int, *, scale: int, shave: int = 10, min_size: int = 3600) -> int:
    """How many model calls :func:`run_chop` makes on an ``h x w`` image."""
    h_size = h // 2 + shave
    w_size = w // 2 + shave
    h_size += scale - h_size % scale
    w_size += scale - w_size % scale
    if h_size > h or w_size > w:
        return 1
    if w_size * h_size < min_size:
        return 4
    if h_size >= h and w_size >= w:
        raise ValueError(f"chop cannot split {h}x{w} below {min_size} pixels with shave {shave}")
    return 4 * chop_tile_count(h_size, w_size, scale=scale, shave=shave, min_size=min_size)


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


@dataclass
class TilePlan:
    """How an image is cut: ``tile`` LR pixels square (None: whole), or the authors' chop."""

    tile: int | None
    overlap: int
    chop: bool = False

    def tiles(self, h: int, w: int, scale: int) -> int:
        if self.chop:
            return chop_tile_count(h, w, scale=scale)
        return count_tiles(h, w, self.tile, self.overlap)


class Upscaler:
    """A model plus the options of how to run it on whole images.

    ``tile``: an LR tile size, ``None`` for whole images, or ``"auto"`` (the default): whole
    images when they fit the memory budget (``max_memory``, default half the free memory of
    the device) and, on a CPU, the compute budget (:data:`CPU_TILE_PIXELS`); otherwise the
    largest tile that fits both. ``chop=True`` uses the authors' tiling instead.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        tile: int | Literal["auto"] | None = "auto",
        tile_overlap: int = DEFAULT_OVERLAP,
        chop: bool = False,
        self_ensemble: bool = False,
        precision: str = "fp32",
        device: str | torch.device = "auto",
        max_memory: int | str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        precision_context(precision, self.device)  # validate early
        if (
            tile is not None
            and tile != "auto"
            and (not isinstance(tile, int) or tile < MIN_INPUT_SIZE)
        ):
            raise ValueError(
                f"tile must be an integer >= {MIN_INPUT_SIZE}, 'auto' or None, got {tile!r}"
            )
        if tile_overlap < 0:
            raise ValueError(f"tile overlap must be >= 0, got {tile_overlap}")
        self.model = model.to(self.device).eval()
        self.scale = int(model.scale)
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.chop = chop
        self.self_ensemble = self_ensemble
        self.precision = precision
        self.max_memory = None if max_memory is None else parse_memory(max_memory)

    def memory_budget(self) -> int:
        return (
            self.max_memory if self.max_memory is not None else available_memory(self.device) // 2
        )

    def plan(self, h: int, w: int) -> TilePlan:
        """The tiling this upscaler uses for an ``h x w`` LR image."""
        if self.chop:
            return TilePlan(tile=None, overlap=0, chop=True)
        if not isinstance(self.model, CSNLN):
            # No attention (e.g. bicubic): nothing to bound, and tiling would change the result.
            return TilePlan(
                tile=None if self.tile == "auto" else self.tile, overlap=self.tile_overlap
            )
        if self.tile != "auto":
            if self.max_memory is not None and self.tile is not None:
                fit = tile_for_memory(self.model, self.max_memory, precision=self.precision)
                return TilePlan(tile=min(self.tile, fit), overlap=self.tile_overlap)
            return TilePlan(tile=self.tile, overlap=self.tile_overlap)
        fit = tile_for_memory(self.model, self.memory_budget(), precision=self.precision)
        limit = fit
        if self.device.type == "cpu":
            limit = min(limit, int(math.sqrt(CPU_TILE_PIXELS)))
        if h * w <= limit * limit and max(h, w) <= fit:
            return TilePlan(tile=None, overlap=self.tile_overlap)
        tile = min(limit, DEFAULT_CPU_TILE) if self.device.type == "cpu" else limit
        return TilePlan(tile=tile, overlap=min(self.tile_overlap, tile // 4))

    def _forward(self, lr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), precision_context(self.precision, self.device):
            return self.model(lr).float()

    def __call__(
        self, lr: torch.Tensor, *, on_tile: Callable[[], None] | None = None
    ) -> torch.Tensor:
        """Super-resolve ``lr`` (N x 3 x h x w, [0, 1]); returns float32 N x 3 x sh x sw."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(lr.shape)}")
        lr = lr.to(self.device, torch.float32)
        plan = self.plan(*lr.shape[-2:])

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
                on_tile=on_tile,
            )

        if self.self_ensemble:
            return self_ensemble(run, lr)
        return run(lr)

    def tiles_per_image(self, h: int, w: int) -> int:
        """How many model calls one ``h x w`` image takes (for progress bars)."""
        return self.plan(h, w).tiles(h, w, self.scale) * (8 if self.self_ensemble else 1)
