"""The project's own checkpoint format: safetensors weights + the model config as JSON."""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..atomic import atomic_write
from .network import CSNLN, CSNLNConfig
from .official import CheckpointError

FORMAT = "csnln"
FORMAT_VERSION = "1"


def save_checkpoint(
    model: CSNLN,
    path: str | PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write ``model``'s weights and config to ``path`` (``.safetensors``), atomically.

    ``metadata`` (JSON-serialisable, e.g. training step, data, PSNR) is stored beside them.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; not overwriting it (overwrite=True, or --overwrite)")
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_dict()),
        "metadata": json.dumps(metadata or {}),
    }
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def read_checkpoint(
    path: str | PathLike[str],
) -> tuple[CSNLNConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """Config, weights and metadata of a project checkpoint, without building the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from exc
    if header.get("format") != FORMAT or "config" not in header:
        raise CheckpointError(f"{path}: not a csnln checkpoint (no csnln config in its header)")
    config = CSNLNConfig.from_dict(json.loads(header["config"]))
    return config, tensors, json.loads(header.get("metadata", "{}"))


def load_checkpoint(
    path: str | PathLike[str], *, dtype: torch.dtype = torch.float32, **runtime: Any
) -> CSNLN:
    """Build the model a project checkpoint describes and load its weights (eval mode)."""
    config, tensors, metadata = read_checkpoint(path)
    model = CSNLN.from_config(config, **runtime)
    window = metadata.get("trained_window")  # the LR patch side it was trained on
    model.trained_window = window if isinstance(window, int) else None
    attention = metadata.get("attention_window")  # the attention window it was trained in
    model.trained_attention_window = attention if isinstance(attention, int) else None
    result = model.load_state_dict(tensors, strict=False)
    expected = model.state_dict()
    wrong = [
        f"{k}: shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in tensors.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if result.missing_keys or result.unexpected_keys or wrong:
        raise CheckpointError(
            f"{path}: weights do not fit its config: missing {result.missing_keys}, "
            f"unexpected {result.unexpected_keys}, {wrong}"
        )
    return model.to(dtype).eval()
