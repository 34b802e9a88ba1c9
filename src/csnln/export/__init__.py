"""Exporting a CSNLN model for other runners (``csnln export``), one module per job, so that
a second format is a new file and a line in :data:`FORMATS`:

* :mod:`.common`: :class:`ExportReport` and :class:`ExportError`, shared by every format;
* ONNX (``--format onnx``, the default): :mod:`.onnx_export` traces and writes the graph,
  :mod:`.onnx_check` checks it with onnxruntime, :mod:`.onnx_runtime` runs a file
  (:class:`OnnxModel`).

Every export is verified before the file appears: onnxruntime against PyTorch in float32 on
random tiles at batch 1, 3 and 8 (and on any inputs given), max abs difference at most
``tolerance`` (1e-4); a graph that fails is deleted and :class:`ExportError` says by how much.

::

    from csnln.export import export_onnx, OnnxModel
    from csnln import Upscaler

    report = export_onnx("small", "small_x2.onnx", scale=2)   # tile 32, opset 18
    upscaler = Upscaler(OnnxModel("small_x2.onnx"))          # our tiler over onnxruntime

Needs the ``onnx`` extra: ``pip install "csnln[onnx]"`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .common import ExportError, ExportReport
from .onnx_check import verify_onnx
from .onnx_export import OPSET, export_onnx, graph_plan
from .onnx_runtime import OnnxModel

__all__ = [
    "FORMATS",
    "OPSET",
    "ExportError",
    "ExportReport",
    "OnnxModel",
    "export",
    "export_onnx",
    "graph_plan",
    "verify_onnx",
]

#: The formats ``csnln export --format`` writes: name -> (file suffix, exporter).
FORMATS: dict[str, tuple[str, Callable[..., ExportReport]]] = {"onnx": (".onnx", export_onnx)}


def export(model: Any, path: Any, *, format: str = "onnx", **options: Any) -> ExportReport:
    """Export ``model`` to ``path`` in ``format`` (see :data:`FORMATS`; ``options``: the
    format's exporter's, e.g. :func:`export_onnx`'s ``scale``, ``tile``, ``overwrite``)."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r} (one of: {', '.join(FORMATS)})")
    return FORMATS[format][1](model, path, **options)
