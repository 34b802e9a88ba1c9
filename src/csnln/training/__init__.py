"""Training CSNLN: YAML configs, exact resume, DDP, mixed precision (``csnln train``).

Python API::

    from csnln.training import load_config, train

    config = load_config("configs/cpu_small_x2.yaml", ["train.steps=1000"])
    weights = train(config)                 # runs/cpu_small_x2/final.safetensors
    weights = train(config, resume=True)    # continue from the latest checkpoint

Modules, one job each: :mod:`~.config` (every key documented), :mod:`~.data` (HR folders,
cached bicubic LR, deterministic patches), :mod:`~.model_init` (the network, warm starts),
:mod:`~.schedule` (loss, learning rate), :mod:`~.precision` (``auto``: the faster of fp32 and
bf16), :mod:`~.trainer` (the loop), :mod:`~.checkpointing` (checkpoints and exact resume),
:mod:`~.validation`, :mod:`~.logs` (log.csv, train.log, TensorBoard), :mod:`~.distributed`
(DDP).
"""

from .config import ConfigError, TrainConfig, apply_overrides, config_table, load_config
from .logs import validation_curve
from .model_init import build_model
from .schedule import learning_rate
from .trainer import TrainResult, run_training, train

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
