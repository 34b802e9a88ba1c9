"""ONNX export of a CSNLN model, checked by onnxruntime before it counts as written
(``csnln export``).

The graph is the network in export mode (:meth:`csnln.CSNLN.set_export_mode`: attentions in
one chunk, the paste's shift sum as padding and slices) traced by PyTorch's dynamo exporter at
a fixed tile, the model's own tile plan, with a dynamic batch: a runner cuts images into
overlapping tiles of that size (the plan's overlap and blend margin are in the file's
metadata) and runs any number per call. Sizes other than the tile are not exported: the
network pads each input to its size multiple and lays its attentions out by the input's size,
and graphs exported with dynamic height and width came out fixed to the traced size or wrong
at odd sizes, without an error from the exporter; a tile plan is what every SR runner
(chaiNNer, ComfyUI, our tiler) uses anyway.

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

import ast
import contextlib
import dataclasses
import io
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .atomic import atomic_write
from .inference import GENERIC_CPU_PLAN, Plan, RunOptions, plan_run
from .inference.profiles import preferred_plan
from .models.descriptor import ModelDescriptor, describe
from .models.network import CSNLN

__all__ = ["OPSET", "ExportError", "ExportReport", "OnnxModel", "export_onnx", "verify_onnx"]

#: The ONNX opset of the exported graphs (the dynamo exporter's; chaiNNer and onnxruntime
#: read it).
OPSET = 18
#: Batches every export is checked at.
CHECK_BATCHES = (1, 3, 8)
PathArg = str | os.PathLike[str]


class ExportError(RuntimeError):
    """An export that did not produce a graph matching PyTorch (nothing was written)."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how it was checked."""

    path: Path
    scale: int
    tile: tuple[int, int]  # height, width
    overlap: int
    margin: int
    opset: int
    checked_batches: tuple[int, ...]
    max_abs_difference: float  # onnxruntime against PyTorch, float32, over every check

    def summary(self) -> str:
        return (
            f"{self.path}: x{self.scale}, input N x 3 x {self.tile[0]} x {self.tile[1]} (any N), "
            f"opset {self.opset}; onnxruntime matches PyTorch to {self.max_abs_difference:.1e} "
            f"(batches {', '.join(map(str, self.checked_batches))}); tile it with overlap "
            f"{self.overlap}"
        )


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            f'ONNX export needs the onnx extra ({exc.name} is missing): pip install "csnln[onnx]"'
        ) from None
    return onnx, onnxruntime


def export_onnx(
    model: str | PathArg | nn.Module,
    path: PathArg,
    *,
    scale: int | None = None,
    tile: int | tuple[int, int] | None = None,
    opset: int = OPSET,
    overwrite: bool = False,
    check_inputs: Sequence[torch.Tensor] = (),
    tolerance: float = 1e-4,
) -> ExportReport:
    """Export ``model`` (a bundled name, a checkpoint file or a :class:`csnln.CSNLN`) to
    ``path`` as ONNX at LR tiles of ``tile`` pixels (default: the model's tile plan, else 64;
    a pair: height, width) with a dynamic batch, verify it (see the module doc) and return the
    report.

    Raises:
        ExportError: onnxruntime's output differs from PyTorch's by more than ``tolerance``.
        FileExistsError: ``path`` exists and not ``overwrite``.
        ImportError: the onnx extra is not installed.
    """
    onnx, _ = _onnx_modules()
    from . import __version__
    from .zoo import load_model

    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (pass overwrite / --overwrite to replace it)")
    net = model if isinstance(model, nn.Module) else load_model(model, scale)
    if not isinstance(net, CSNLN):
        raise ValueError(f"only CSNLN models are exported, got {type(net).__name__}")
    net = net.float().cpu().eval()
    descriptor = describe(net)
    if tile is None:
        tile = (preferred_plan(descriptor) or GENERIC_CPU_PLAN).tile
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    if min(th, tw) < 8:
        raise ValueError(f"tile must be at least 8 LR pixels, got {tw}x{th}")
    descriptor = dataclasses.replace(descriptor, input_size=(th, tw))
    plan = graph_plan(descriptor)
    overlap, margin = plan.overlap, plan.margin
    for x in check_inputs:
        if tuple(x.shape[1:]) != (3, th, tw):
            raise ValueError(f"check inputs must be N x 3 x {th} x {tw}, got {tuple(x.shape)}")

    graph = _trace(net, (th, tw), opset)
    metadata = {
        "csnln_version": __version__,
        "architecture": "CSNLN",
        "scale": str(descriptor.scale),
        "tile": str(th) if th == tw else f"{th}x{tw}",
        "tile_overlap": str(overlap),
        "tile_blend_margin": str(margin),
        "tile_batch": str(plan.batch),
        "input": f"N x 3 x {th} x {tw} float32 RGB in [0, 1] (N dynamic)",
        "output": f"N x 3 x {descriptor.scale * th} x {descriptor.scale * tw} float32 RGB",
        "opset": str(opset),
        "config": repr(net.config.to_dict()),
        "weights": descriptor.weights or "",
    }
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    data = graph.SerializeToString()

    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(b, 3, th, tw, generator=generator) for b in CHECK_BATCHES]
    inputs += list(check_inputs)
    difference = verify_onnx(data, net, inputs)
    if not difference <= tolerance:
        raise ExportError(
            f"the exported graph differs from PyTorch by {difference:.2e} (more than "
            f"{tolerance:.0e}): not written"
        )
    atomic_write(target, lambda tmp: tmp.write_bytes(data))
    return ExportReport(
        path=target,
        scale=descriptor.scale,
        tile=(th, tw),
        overlap=overlap,
        margin=margin,
        opset=opset,
        checked_batches=tuple(sorted({int(x.shape[0]) for x in inputs})),
        max_abs_difference=difference,
    )


def graph_plan(descriptor: ModelDescriptor) -> Plan:
    """How a runner tiles the graph ``descriptor`` describes (its ``input_size`` the export's
    tile): the planner's plan on a CPU for an image larger than the tile, without a memory
    bound, so a graph is run as its file's metadata says."""
    assert descriptor.input_size is not None
    h, w = descriptor.input_size
    options = RunOptions(device="cpu", precision="fp32", max_memory=2**50, tile_streams=1)
    return plan_run(descriptor, 4 * h, 4 * w, options)


def _trace(net: CSNLN, tile: tuple[int, int], opset: int) -> Any:
    """The ONNX ModelProto of ``net`` in export mode at ``tile`` (h, w), dynamic batch."""
    onnx, _ = _onnx_modules()
    batch = torch.export.Dim("batch", min=1, max=1024)
    example = torch.rand(2, 3, *tile)
    net.set_export_mode(True)
    # The exporter logs a line per torchvision op it skips and prints its optimizer's notes:
    # none of it concerns this network.
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                dynamic_shapes={"x": {0: batch}},
                input_names=["input"],
                output_names=["output"],
                opset_version=opset,
                verbose=False,
            )
    finally:
        net.set_export_mode(False)
        quiet.setLevel(level)
    buffer = io.BytesIO()
    program.save(buffer)  # type: ignore[union-attr]
    return onnx.load_from_string(buffer.getvalue())


def verify_onnx(graph: bytes | PathArg, net: nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Max abs difference between onnxruntime (CPU) running ``graph`` and ``net`` in float32
    over ``inputs`` (each a batch)."""
    _, ort = _onnx_modules()
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


class OnnxModel(nn.Module):
    """An exported graph, run by onnxruntime, as a model :class:`csnln.Upscaler` tiles:
    its descriptor is the exported tile plan; a piece smaller than the tile (a small image)
    is padded to it (edge pixels repeated) and the output cropped."""

    def __init__(self, path: PathArg, *, threads: int | None = None) -> None:
        super().__init__()
        onnx, ort = _onnx_modules()
        self.path = Path(path)
        graph = onnx.load(str(self.path), load_external_data=False)
        meta = {p.key: p.value for p in graph.metadata_props}
        if meta.get("architecture") != "CSNLN":
            raise ValueError(f"{self.path}: not an ONNX file written by csnln export")
        self.scale = int(meta["scale"])
        h, _, w = meta["tile"].partition("x")
        self.tile = (int(h), int(w or h))
        self._config = ast.literal_eval(meta.get("config", "{}"))
        self._weights = meta.get("weights") or None
        options = ort.SessionOptions()
        # The tiler runs CPU_STREAMS calls at once, each on its share of the threads.
        from .inference import CPU_STREAMS

        options.intra_op_num_threads = threads or max(1, torch.get_num_threads() // CPU_STREAMS)
        self.session = ort.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )
        self.metadata = meta

    @property
    def descriptor(self) -> ModelDescriptor:
        return ModelDescriptor(
            scale=self.scale,
            tileable=True,
            precisions=("fp32",),
            architecture="CSNLN",
            n_feats=int(self._config.get("n_feats", 0)),
            weights=self._weights,
            input_size=self.tile,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        th, tw = self.tile
        if h > th or w > tw:
            raise ValueError(
                f"{self.path} runs {tw}x{th} tiles; got {w}x{h} (run it through "
                "csnln.Upscaler, which tiles)"
            )
        padded = F.pad(x.float(), (0, tw - w, 0, th - h), mode="replicate")
        out = self.session.run(None, {"input": padded.cpu().numpy()})[0]
        s = self.scale
        return torch.from_numpy(out[..., : s * h, : s * w]).to(x.device)
