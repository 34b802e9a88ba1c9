"""CSNLN networks, their building blocks and checkpoint I/O."""

from .attention import CrossScaleAttention, InScaleAttention
from .bicubic import Bicubic
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .descriptor import ModelDescriptor, describe
from .network import CSNLN, MIN_INPUT_SIZE, CSNLNConfig
from .official import (
    CheckpointError,
    convert_official_state_dict,
    infer_official_config,
    is_official_state_dict,
    load_official,
)
from .sem import MultiSourceProjection, SelfExemplarsMining

__all__ = [
    "CSNLN",
    "Bicubic",
    "ModelDescriptor",
    "describe",
    "MIN_INPUT_SIZE",
    "CSNLNConfig",
    "CheckpointError",
    "CrossScaleAttention",
    "InScaleAttention",
    "MultiSourceProjection",
    "SelfExemplarsMining",
    "convert_official_state_dict",
    "infer_official_config",
    "is_official_state_dict",
    "load_checkpoint",
    "load_official",
    "read_checkpoint",
    "save_checkpoint",
]
