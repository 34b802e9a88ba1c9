"""Several processes with ``torchrun`` (training, and folder inference): process group,
devices, rank-0-only writes.

``torchrun --nproc_per_node K -m csnln train CONFIG`` (or ``... -m csnln upscale``) starts K
processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment.
:func:`setup` joins them into a process group (``nccl`` on GPUs, one GPU per process by local
rank; ``gloo`` on CPUs). Without those variables everything here is a single-process no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import resolve_device

__all__ = ["DistInfo", "all_reduce_sum", "barrier", "cleanup", "gather_objects", "setup"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its device, and whether this
    module created the process group (and so destroys it in :func:`cleanup`)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if there is one; pick this process's device.

    ``device`` is ``auto``/``cpu``/``cuda``/``cuda:N`` (``auto``: CUDA when available). Under
    torchrun with CUDA, each process takes the GPU of its local rank.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = resolve_device(device)
    if world_size <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=chosen)
    if chosen.type == "cuda":
        index = chosen.index if chosen.index is not None and world_size <= 1 else local_rank
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"process of local rank {local_rank} needs GPU cuda:{index}, but this machine has "
                f"{torch.cuda.device_count()}: start at most that many processes per node "
                "(torchrun --nproc_per_node), one per GPU"
            )
        chosen = torch.device("cuda", index)
        torch.cuda.set_device(chosen)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=chosen,
        owns_group=owns,
    )


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index or 0])
        else:
            dist.barrier()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The element-wise sum of ``values`` over all processes (a copy; the input is kept)."""
    out = values.detach().clone().to(info.device)
    if info.distributed:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def gather_objects(value: object, info: DistInfo) -> list[object]:
    """Every process's ``value``, in rank order, on every process (``[value]`` alone)."""
    if not info.distributed:
        return [value]
    gathered: list[object] = [None] * info.world_size
    dist.all_gather_object(gathered, value)
    return gathered
