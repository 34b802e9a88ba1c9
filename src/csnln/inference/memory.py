"""Memory: reading a budget ("4GB"), the model's peak by its memory model, the free memory
of a device, the full-size buffers beside the model, and the error when nothing fits."""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..models.descriptor import describe
from ..models.network import MIN_INPUT_SIZE
from .profiles import memory_model

_FLOAT = 4  # bytes per float32


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
    return memory_model(describe(model))(h, w)


def tile_for_memory(
    model: nn.Module, budget: int, *, precision: str = "fp32", batch: int = 1
) -> int:
    """The largest square LR tile whose estimated peak, ``batch`` tiles per call, fits
    ``budget`` bytes."""
    memory = memory_model(describe(model))
    constant, unit = memory.constant, memory.per_pixel * batch
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


class MemoryBudgetError(MemoryError):
    """An image that cannot be upscaled within the memory budget, even with the smallest tile.

    ``needed`` is the estimated peak in bytes (output canvas and buffers + the model on one
    tile), ``budget`` the bytes available; the message gives both on one line.
    """

    def __init__(self, message: str, *, needed: int, budget: int) -> None:
        self.needed = needed
        self.budget = budget
        super().__init__(message)


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
