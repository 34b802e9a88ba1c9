"""Resolving a ``--model`` argument: ``bicubic``, a bundled model name, or a checkpoint file.

* ``bicubic``: MATLAB-exact bicubic upscaling (the baseline of every SR table);
* a bundled name (see :data:`BUNDLED`): weights shipped inside the package;
* a project checkpoint (``.safetensors``, weights + config);
* an authors' checkpoint (``model_x2.pt`` etc., recognised by its keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .models.bicubic import Bicubic
from .models.checkpoint import load_checkpoint, read_checkpoint
from .models.descriptor import TilePlan
from .models.official import (
    CheckpointError,
    infer_official_config,
    is_official_state_dict,
    load_official,
)

WEIGHTS_DIR = Path(__file__).parent / "weights"

@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside the package: its weight file and CPU tile plan per scale.

    The tile plans are measured for these weights by ``benchmarks/tile_plan.py`` (the fastest
    plan within 0.01 dB of the best candidate's PSNR on B100 and on Set5, and no more than
    0.01 dB under the plan before issue 1/5, tiles of 64 in float32; the runs' output is
    ``benchmarks/results/tile_plan.md``): re-run it when the weights change.
    """

    files: dict[int, str]
    tile_plans: dict[int, TilePlan]
    #: Set5 PSNR (dB, Y) per scale as ``csnln eval --model NAME`` printed it with the default
    #: options (benchmarks/results/eval_small.md); shown by ``csnln models``.
    set5_psnr: dict[int, float] = field(default_factory=dict)


#: Bundled model names; the first name with weights for a scale is the default of
#: ``csnln upscale``. ``csnln models`` lists what is installed. "small": trained here (each
#: weight file carries its config): n_feats 64, depth 1 (``trained/campaign3_wide_x2/``,
#: ``trained/campaign_wide_x3/``, ``trained/restart_wide_x4/``); docs/models.md has every run.
BUNDLED: dict[str, BundledModel] = {
    "small": BundledModel(
        files={s: f"csnln_small_x{s}.safetensors" for s in (2, 3, 4)},
        tile_plans={
            2: TilePlan(tile=32, overlap=8, batch=8, margin=3),
            3: TilePlan(tile=27, overlap=6, batch=8),
            4: TilePlan(tile=24, overlap=6, batch=8),
        },
        # csnln eval's default options (these tile plans, fp32) on Set5, as `csnln eval --data
        # Set5 Set14 B100` printed it (benchmarks/results/eval_small.md: x2 run 12, x3 run 10,
        # x4 run 13)
        set5_psnr={2: 37.075, 3: 33.308, 4: 31.262},
    ),
}


def bundled_models() -> dict[str, dict[int, Path]]:
    """The bundled models whose weight files are installed: name -> {scale: path}."""
    found: dict[str, dict[int, Path]] = {}
    for name, entry in BUNDLED.items():
        paths = {
            s: WEIGHTS_DIR / f for s, f in entry.files.items() if (WEIGHTS_DIR / f).is_file()
        }
        if paths:
            found[name] = paths
    return found


def _load_failure(exc: Exception) -> str:
    """torch.load's reason in a few words (its weights_only message is a paragraph)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if text.startswith("Weights only load failed"):
        return "not a PyTorch tensor file, or it holds more than tensors"
    if not any(c.isalpha() for c in text) or "invalid load key" in text:
        # e.g. KeyError(101): the first byte of a file that is no pickle at all
        return "not a PyTorch file"
    return text.split(". ")[0][:200]


def load_model(spec: str | Path, scale: int | None = None, **runtime: object) -> nn.Module:
    """The model ``spec`` names, for ``scale`` (checked against checkpoints; inferred if None).

    Errors name the file or the value and what was expected.
    """
    text = str(spec)
    if text == "bicubic":
        if scale is None:
            raise ValueError("--model bicubic needs a --scale")
        return Bicubic(scale)
    bundled = bundled_models()
    if text in BUNDLED:
        files = bundled.get(text, {})
        if scale is None and len(files) == 1:
            scale = next(iter(files))
        have = ", ".join(f"x{s}" for s in sorted(files)) or "none installed"
        if scale is None:
            raise ValueError(
                f"bundled model {text!r} has one file per scale ({have}): give a scale"
            )
        if scale not in files:
            raise ValueError(f"bundled model {text!r} has no x{scale} weights (has: {have})")
        model = load_checkpoint(files[scale], **runtime)
        model.tile_plan = BUNDLED[text].tile_plans.get(scale)
        return model
    path = Path(text)
    if not path.exists():
        names = ", ".join(["bicubic", *sorted(BUNDLED)])
        raise FileNotFoundError(f"model {text!r}: no such file, and not a model name ({names})")
    if path.suffix == ".safetensors":
        config, _, _ = read_checkpoint(path)
        if scale is not None and config.scale != scale:
            raise CheckpointError(f"{path} is a x{config.scale} model, but x{scale} was asked for")
        return load_checkpoint(path, **runtime)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: not a loadable checkpoint ({_load_failure(exc)}; expected a "
            ".safetensors from csnln or the authors' model_x{2,3,4}.pt)"
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not is_official_state_dict(state):
        raise CheckpointError(
            f"{path}: not a CSNLN checkpoint (expected a .safetensors from csnln or the "
            "authors' model_x{2,3,4}.pt)"
        )
    if scale is not None and infer_official_config(state)["scale"] != scale:
        found = infer_official_config(state)["scale"]
        raise CheckpointError(f"{path} is a x{found} model, but x{scale} was asked for")
    return load_official(state, scale, **runtime)  # type: ignore[arg-type]
