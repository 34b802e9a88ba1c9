"""Keeping freed memory in the process: glibc ``mallopt`` settings for CPU inference.

PyTorch's CPU tensors come straight from ``malloc``. With glibc's defaults a freed block of a
few MB or more goes back to the operating system (``munmap``, or heap trimming), so the next
tensor of that size page-faults again and the kernel zeroes its pages: a CSNLN forward pass
allocates and frees the same large feature maps step after step. ``benchmarks/inference.py``
(x2, LR 192x192, tiles of 64, paper-size model, side by side in one run): bf16 15.8 s with
:func:`keep_freed_memory`, 23.1 s with glibc's defaults; fp32 36.1 s and 43.5 s.

The price is memory: blocks below 1 GB then come from the heap, which fragments, and freed
memory stays in the process. Peak resident memory of whole-image calls rose (x2 LR 96x96
fp32: 930 MB, against 489 MB in the previous run of the same benchmark; x4 LR 48x48 fp32:
991 MB against 623 MB), while the tiled default plan's did not (523 MB against 550 MB).

``csnln upscale`` and ``csnln eval`` call it at start unless ``--max-memory`` is given (a
budget must hold). Training calls it only when its config says so (``train.keep_freed_memory``,
on in the small CPU configs, whose steps allocate the same tensors each time): for the
paper-size model with activation checkpointing the heap's fragmentation grew the resident size
step after step (see ``benchmarks/train_step.py``). A no-op outside Linux/glibc.
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
