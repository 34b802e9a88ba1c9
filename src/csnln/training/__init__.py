"""Training CSNLN: YAML configs, exact resume, DDP, mixed precision (``csnln train``).

Python API::

    from csnln.training import load_config, train

    config = load_config("configs/cpu_small_x2.yaml", ["train.steps=1000"])
    weights = train(config)                 # runs/cpu_small_x2/final.safetensors
    weights = train(config, resume=True)    # continue from the latest checkpoint

Modules: :mod:`~csnln.training.config` (every key documented), :mod:`~csnln.training.data`
(HR folders, cached bicubic LR, deterministic patches), :mod:`~csnln.training.loop`,
:mod:`~csnln.training.checkpointing`, :mod:`~csnln.training.distributed`.
"""

from .config import ConfigError, TrainConfig, apply_overrides, config_table, load_config
from .loop import (
    TrainResult,
    build_model,
    learning_rate,
    run_training,
    train,
    validation_curve,
)

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "build_model",
    "config_table",
    "learning_rate",
    "load_config",
    "run_training",
    "train",
    "validation_curve",
]
