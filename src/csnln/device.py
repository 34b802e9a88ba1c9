"""Where and in what precision a model runs: the device, and float32 / bf16 / fp16.

Running (:mod:`csnln.inference`), training (:mod:`csnln.training`) and the benchmarks all
import these from here. ``auto`` picks bf16 only where it measures faster (:func:`fast_bf16`).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from typing import Literal

import torch

from .models.descriptor import PRECISIONS, ModelDescriptor

__all__ = [
    "BF16_MIN_SPEEDUP",
    "PRECISION_CHOICES",
    "Precision",
    "cpu_bf16_speedup",
    "cpu_has_bf16",
    "fast_bf16",
    "precision_context",
    "resolve_device",
    "resolve_precision",
]

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISION_CHOICES: tuple[str, ...] = ("auto", *PRECISIONS)


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
