"""What a runner must know about a model, stated once by the model (as spandrel's
``ImageModelDescriptor`` does), never guessed from the object.

Every model that :mod:`csnln.inference` runs has a ``descriptor`` property returning a
:class:`ModelDescriptor`: :class:`csnln.CSNLN` and :class:`csnln.models.Bicubic` do. The runner
reads the scale, the size the input is padded to, whether tiling bounds the model's cost and
memory, the precisions it runs in, its memory model and its preferred CPU tile plan from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


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


@dataclass(frozen=True)
class ModelDescriptor:
    """How to run a model.

    ``scale``: output / input size. ``size_multiple``: the model pads its input to a multiple
    of this internally (1: none). ``tileable``: its cost and memory per pixel grow with the
    piece it sees (attention), so cutting large images into tiles bounds both; a model without
    that (bicubic) runs whole, where tiling would only change the result. ``precisions``: what
    it runs in. ``memory_per_pixel``/``memory_constant``: peak bytes of one float32 call grow
    as ``memory_per_pixel * h * w + memory_constant`` (an upper bound, measured by
    ``benchmarks/memory_model.py``). ``tile_plan``: the CPU tile plan measured best for this
    model's weights (``benchmarks/tile_plan.py``), None when nobody measured it.
    ``quadratic_cost``: its work per pixel grows with the piece it sees (non-local
    attention), so on a CPU tiles smaller than the memory allows are faster; without it (a
    local-only CSNLN cell) the runner runs whole images when they fit, tiles when not.
    """

    scale: int
    size_multiple: int = 1
    tileable: bool = True
    precisions: tuple[str, ...] = PRECISIONS
    memory_per_pixel: int = 0
    memory_constant: int = 0
    tile_plan: TilePlan | None = None
    quadratic_cost: bool = True

    def memory(self, h: int, w: int) -> int:
        """Estimated peak bytes of one call on ``h x w`` LR pixels (all images of a batch)."""
        return self.memory_per_pixel * h * w + self.memory_constant


@runtime_checkable
class DescribedModel(Protocol):
    @property
    def descriptor(self) -> ModelDescriptor: ...


def describe(model: nn.Module) -> ModelDescriptor:
    """The descriptor of ``model``; a clear error for a module that states none."""
    if isinstance(model, DescribedModel):
        return model.descriptor
    raise TypeError(
        f"{type(model).__name__} is not a model csnln can run: it has no `descriptor` "
        "(csnln.models.ModelDescriptor: scale, size multiple, tiling, precisions)"
    )
