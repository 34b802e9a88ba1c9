"""What training minimises and how fast: the L1 loss and the learning-rate schedule (a pure
function of the step, so that a resumed run computes what an uninterrupted one does)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import OptimSection

__all__ = ["l1_loss", "learning_rate"]


def learning_rate(optim: OptimSection, total_steps: int, step: int) -> float:
    """The scheduled learning rate of step ``step`` (0-based), before rollback halvings."""
    if optim.schedule == "step":
        lr = optim.lr * optim.gamma ** (step // optim.step_size)
    elif optim.schedule == "cosine":
        progress = min(1.0, step / max(1, total_steps))
        lr = optim.min_lr + (optim.lr - optim.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        lr = optim.lr
    if optim.warmup_steps and step < optim.warmup_steps:
        lr *= (step + 1) / optim.warmup_steps
    return lr


def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The training loss: mean absolute error (float32)."""
    return F.l1_loss(sr, hr)
