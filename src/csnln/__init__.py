"""csnln: CSNLN super-resolution (Mei et al., CVPR 2020), exact to the authors' release."""

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

__all__ = [
    "CSNLN",
    "CSNLNConfig",
    "CheckpointError",
    "load_checkpoint",
    "load_official",
    "save_checkpoint",
    "upscale",
]
