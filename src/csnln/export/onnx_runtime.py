"""An exported ONNX graph run by onnxruntime as a model :class:`csnln.Upscaler` tiles."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models.descriptor import ModelDescriptor
from .onnx_check import onnx_modules

PathArg = str | os.PathLike[str]


class OnnxModel(nn.Module):
    """An exported graph, run by onnxruntime, as a model :class:`csnln.Upscaler` tiles:
    its descriptor is the exported tile plan; a piece smaller than the tile (a small image)
    is padded to it (edge pixels repeated) and the output cropped."""

    def __init__(self, path: PathArg, *, threads: int | None = None) -> None:
        super().__init__()
        onnx, ort = onnx_modules()
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
        from ..inference import CPU_STREAMS

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
