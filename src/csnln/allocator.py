"""Keeping freed memory in the process: glibc ``mallopt`` settings for CPU inference.

PyTorch's CPU tensors come straight from ``malloc``. With glibc's defaults a freed block of a
few MB or more goes back to the operating system (``munmap``, or heap trimming), so the next
tensor of that size page-faults again and the kernel zeroes its pages: in a CSNLN forward pass,
which allocates and frees the same large feature maps step after step, that kernel time was
~25% of the wall-clock time of a bf16 call on 2 cores (``benchmarks/inference.py``, x2 192x192
in tiles of 64: system time 63 s of 345 s CPU time by default, 1 s with these settings; bf16
16.6 s instead of 22.2 s). With :func:`keep_freed_memory` blocks below 1 GB come from the heap
and freed memory stays mapped for reuse; peak memory was unchanged there.

``csnln upscale`` and ``csnln eval`` call it at start. Training does not: over thousands of
steps, heap allocation of big blocks can fragment and grow the resident size (see
``benchmarks/train_step.py``). A no-op outside Linux/glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory(
    *, mmap_threshold: int = 2**30, trim_threshold: int = 2**30, top_pad: int = 64 * 2**20
) -> bool:
    """Tell glibc's ``malloc`` to keep freed memory for reuse. Returns whether it applied.

    ``mmap_threshold``: blocks at least this large get their own mapping (returned on free);
    ``trim_threshold``: free heap top kept before returning it; ``top_pad``: extra heap
    requested at each growth. Process-wide and lasting: call it in programs, not libraries.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = [
        (_M_MMAP_THRESHOLD, mmap_threshold),
        (_M_TRIM_THRESHOLD, trim_threshold),
        (_M_TOP_PAD, top_pad),
    ]
    return all(mallopt(option, value) == 1 for option, value in settings)
