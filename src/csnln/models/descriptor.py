"""What a runner must know about a model, stated once by the model (as spandrel's
``ImageModelDescriptor`` does), never guessed from the object.

Every model that :mod:`csnln.inference` runs has a ``descriptor`` property returning a
:class:`ModelDescriptor`: :class:`csnln.CSNLN` and :class:`csnln.models.Bicubic` do. The runner
reads the scale, the size the input is padded to, whether tiling bounds the model's cost and
memory, the precisions it runs in, and what the network is (its width, its weights, the window
it was trained in), from which :mod:`csnln.inference.profiles` derives its memory model and
tile plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ModelDescriptor:
    """What a model is, as far as a runner needs to know: facts of the network only (how to
    run it, tile plans and memory, is :mod:`csnln.inference.profiles`' job).

    ``scale``: output / input size. ``size_multiple``: the model pads its input to a multiple
    of this internally (1: none). ``tileable``: its cost and memory per pixel grow with the
    piece it sees (attention), so cutting large images into tiles bounds both; a model without
    that (bicubic) runs whole, where tiling would only change the result. ``precisions``: what
    it runs in. ``quadratic_cost``: its work per pixel grows with the piece it sees (non-local
    attention), so on a CPU tiles smaller than the memory allows are faster; without it (a
    local-only CSNLN cell) the runner runs whole images when they fit, tiles when not.
    ``architecture``: ``"CSNLN"`` or ``"bicubic"``; ``n_feats``: the network's width (0:
    none). ``weights``: the bundled weights it carries (e.g. ``"small"``), None for any
    other. ``trained_window``: the LR patch side it was trained on, None when its checkpoint
    does not say. ``trained_attention_window``: the attention window (LR pixels) its weights
    were trained in, which runs use unless told otherwise; None: whole patches (the
    authors' computation). ``input_size``: the one LR (height, width) it takes, smaller
    pieces padded to it (an exported graph), None for any size. ``patch_size``: the
    attention's matching patch (1: none), the least a tile must hold.
    ``smallest_attention_window``: the smallest window (LR pixels) its attentions can be
    confined to (``set_attention_window``), None when it cannot confine them (no attention,
    or an exported graph).
    """

    scale: int
    size_multiple: int = 1
    tileable: bool = True
    precisions: tuple[str, ...] = PRECISIONS
    quadratic_cost: bool = True
    architecture: str = "CSNLN"
    n_feats: int = 0
    weights: str | None = None
    trained_window: int | None = None
    trained_attention_window: int | None = None
    input_size: tuple[int, int] | None = None
    patch_size: int = 1
    smallest_attention_window: int | None = None


@runtime_checkable
class AttentionWindowed(Protocol):
    """A model whose descriptor gives a ``smallest_attention_window``: it can confine its
    attentions to windows of that many LR pixels or more (None: the whole input)."""

    def set_attention_window(self, size: int | None) -> None: ...


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
