"""csnln: CSNLN super-resolution (Mei et al., CVPR 2020), exact to the authors' release."""

from .inference import RunOptions, Upscaler
from .models import (
    CSNLN,
    CheckpointError,
    CSNLNConfig,
    load_checkpoint,
    load_official,
    save_checkpoint,
)
from .upscaling import upscale

__version__ = "0.1.0"

#: Submodules reachable as attributes after ``import csnln`` (imported on first use, so that
#: ``import csnln`` stays light): ``csnln.evaluation.evaluate``, ``csnln.training.train``, ...
_SUBMODULES = frozenset(
    {
        "attention_maps",
        "data",
        "demo",
        "evaluation",
        "imageio",
        "inference",
        "metrics",
        "models",
        "training",
        "upscaling",
        "zoo",
    }
)


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'csnln' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)


__all__ = [
    "CSNLN",
    "CSNLNConfig",
    "CheckpointError",
    "RunOptions",
    "Upscaler",
    "load_checkpoint",
    "load_official",
    "save_checkpoint",
    "upscale",
]
