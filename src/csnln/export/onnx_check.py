"""The check of an exported ONNX graph: onnxruntime against PyTorch, in float32, on random
tiles at batch 1, 3 and 8 (and on any inputs given); a graph that differs by more than the
tolerance is not written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

#: Batches every export is checked at.
CHECK_BATCHES = (1, 3, 8)
PathArg = str | os.PathLike[str]


def onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f'ONNX export needs the onnx extra ({exc.name} is missing): pip install "csnln[onnx]"'
        ) from None
    return onnx, onnxruntime


def verify_onnx(graph: bytes | PathArg, net: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Max abs difference between onnxruntime (CPU) running ``graph`` and ``net`` in float32
    over ``inputs`` (each a batch)."""
    _, ort = onnx_modules()
    source = graph if isinstance(graph, bytes) else str(graph)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = net(x.float()).numpy()
        got = session.run(None, {name: x.float().numpy()})[0]
        if got.shape != expected.shape:
            return float("inf")
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
