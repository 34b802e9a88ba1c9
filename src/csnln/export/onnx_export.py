"""ONNX export of a CSNLN model (``csnln export --format onnx``), checked by
:mod:`.onnx_check` before it counts as written.

The graph is the network in export mode (:meth:`csnln.CSNLN.set_export_mode`: attentions in
one chunk, the paste's shift sum as padding and slices) traced by PyTorch's dynamo exporter at
a fixed tile, the model's own tile plan, with a dynamic batch: a runner cuts images into
overlapping tiles of that size (the plan's overlap and blend margin are in the file's
metadata) and runs any number per call. Sizes other than the tile are not exported: the
network pads each input to its size multiple and lays its attentions out by the input's size,
and graphs exported with dynamic height and width came out fixed to the traced size or wrong
at odd sizes, without an error from the exporter; a tile plan is what every SR runner
(chaiNNer, ComfyUI, our tiler) uses anyway.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write
from ..inference import GENERIC_CPU_PLAN, Plan, RunOptions, plan_run
from ..inference.profiles import preferred_plan
from ..models.descriptor import ModelDescriptor, describe
from ..models.network import CSNLN
from .common import ExportError, ExportReport
from .onnx_check import CHECK_BATCHES, onnx_modules, verify_onnx

#: The ONNX opset of the exported graphs (the dynamo exporter's; chaiNNer and onnxruntime
#: read it).
OPSET = 18
PathArg = str | os.PathLike[str]


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
    onnx, _ = onnx_modules()
    from .. import __version__
    from ..zoo import load_model

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
    onnx, _ = onnx_modules()
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
