"""Resolving a ``--model`` argument: ``bicubic``, a bundled model name, or a checkpoint file.

* ``bicubic``: MATLAB-exact bicubic upscaling (the baseline of every SR table);
* a bundled name (see :data:`BUNDLED`): weights shipped inside the package;
* a project checkpoint (``.safetensors``, weights + config);
* an authors' checkpoint (``model_x2.pt`` etc., recognised by its keys).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .device import resolve_device
from .models.bicubic import Bicubic
from .models.checkpoint import load_checkpoint, read_checkpoint
from .models.descriptor import describe
from .models.official import (
    CheckpointError,
    infer_official_config,
    is_official_state_dict,
    load_official,
)

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside the package: its weight file per scale (the CPU tile plans
    measured for these weights are run facts: :data:`csnln.inference.MEASURED_PLANS`)."""

    files: dict[int, str]
    #: Set5 PSNR (dB, Y) per scale as ``csnln eval --model NAME`` printed it with the default
    #: options (benchmarks/results/eval_small.md); shown by ``csnln models``.
    set5_psnr: dict[int, float] = field(default_factory=dict)


#: Bundled model names; the first name with weights for a scale is the default of
#: ``csnln upscale``. ``csnln models`` lists what is installed. "small": trained here (each
#: weight file carries its config): n_feats 64, depth 1 (``trained/window24_x2/``: the ×2 of
#: ``trained/campaign3_wide_x2/`` adapted to attention windows of 24, which it records,
#: ``trained/campaign_wide_x3/``, ``trained/restart_wide_x4/``); docs/models.md has every run.
BUNDLED: dict[str, BundledModel] = {
    "small": BundledModel(
        files={s: f"csnln_small_x{s}.safetensors" for s in (2, 3, 4)},
        # csnln eval's default options (these tile plans, fp32) on Set5, as `csnln eval --data
        # Set5 Set14 B100` printed it (benchmarks/results/eval_small.md: x2 run 14, x3 run 10,
        # x4 run 13)
        set5_psnr={2: 37.076, 3: 33.308, 4: 31.262},
    ),
}


def bundled_models() -> dict[str, dict[int, Path]]:
    """The bundled models whose weight files are installed: name -> {scale: path}."""
    found: dict[str, dict[int, Path]] = {}
    for name, entry in BUNDLED.items():
        paths = {s: WEIGHTS_DIR / f for s, f in entry.files.items() if (WEIGHTS_DIR / f).is_file()}
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
        model.weights = text  # the runner's profile knows these weights' measured plan
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


# --------------------------------------------------------------------------------------------
# the model to run: the bundled default, a label, and a cache of loaded models
# --------------------------------------------------------------------------------------------

#: What names a model: a module, a bundled name or a checkpoint path, or None (the default).
ModelSpec = nn.Module | str | os.PathLike[str] | None


class NoBundledModelError(LookupError):
    """``model=None`` was asked for, but no bundled weights are installed for the scale."""

    def __init__(self, scale: int) -> None:
        self.scale = scale
        super().__init__(
            f"no bundled weights are installed for x{scale}: pass model='bicubic' "
            f"(--model bicubic) or a checkpoint (.safetensors, or the authors' model_x{scale}.pt)"
        )


def default_model_name(scale: int) -> str:
    """The bundled model used when none is given: the first name in :data:`csnln.zoo.BUNDLED`
    whose ``x{scale}`` weights are installed. Raises :class:`NoBundledModelError`."""
    installed = bundled_models()
    for name in BUNDLED:
        if scale in installed.get(name, {}):
            return name
    raise NoBundledModelError(scale)


def model_label(model: ModelSpec, scale: int | None = None) -> str:
    """A short name for ``model`` (for captions): ``bicubic``, ``csnln <bundled name>``, the
    checkpoint's file stem, or the module's class name."""
    if isinstance(model, nn.Module):
        return "bicubic" if isinstance(model, Bicubic) else type(model).__name__.lower()
    if model is None:
        try:
            return f"csnln {default_model_name(scale if scale is not None else 4)}"
        except NoBundledModelError:
            return "csnln"
    text = os.fspath(model)
    if text in BUNDLED:
        return f"csnln {text}"
    return text if text == "bicubic" else Path(text).stem


@functools.lru_cache(maxsize=4)
def _load_cached(
    spec: str, stamp: tuple[int, int] | None, scale: int | None, device: str
) -> nn.Module:
    del stamp  # part of the cache key only: a rewritten checkpoint file is loaded again
    return load_model(spec, scale).to(device).eval()


def clear_model_cache() -> None:
    """Forget the models loaded by :func:`resolve_model` (frees their memory)."""
    _load_cached.cache_clear()


def resolve_model(
    model: ModelSpec, scale: int | None = 4, device: str | torch.device = "auto"
) -> nn.Module:
    """The model to run, on ``device``, in eval mode.

    ``model``: an ``nn.Module`` (its ``scale`` must equal ``scale``; used as it is), a name or
    path for :func:`csnln.zoo.load_model`, or ``None`` for the bundled default of ``scale``
    (:class:`NoBundledModelError` when none is installed). ``scale=None`` takes the scale of a
    checkpoint file. Loaded models are cached (see :func:`clear_model_cache`).
    """
    dev = resolve_device(device)
    if isinstance(model, nn.Module):
        own = describe(model).scale
        if scale is not None and own != scale:
            raise ValueError(f"the model upscales x{own}, but scale={scale} was asked for")
        return model.to(dev).eval()
    if model is None:
        if scale is None:
            raise ValueError("model=None (the bundled default) needs a scale")
        spec = default_model_name(scale)
    else:
        spec = os.fspath(model)
    stamp = None
    path = Path(spec)
    if spec != "bicubic" and spec not in BUNDLED and path.is_file():
        info = path.stat()
        spec, stamp = str(path.resolve()), (info.st_mtime_ns, info.st_size)
    return _load_cached(spec, stamp, scale, str(dev))
