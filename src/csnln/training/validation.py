"""Validation during training: the evaluation protocol of ``csnln eval`` on ``val.dirs``
(folders, or image files: a split held out of the training data, ``data.exclude``)."""

from __future__ import annotations

import logging
import math

import torch

from ..models.network import CSNLN
from .config import TrainConfig

__all__ = ["validate_model"]

log = logging.getLogger("csnln.training")


def validate_model(model: CSNLN, config: TrainConfig, device: torch.device) -> tuple[float, float]:
    """Mean PSNR/SSIM over the validation folders (evaluation protocol of csnln eval)."""
    from ..evaluation import evaluate

    try:
        results = evaluate(
            model,
            config.val.dirs,
            config.model.scale,
            tile=config.val.tile,
            tile_overlap=config.val.tile_overlap,
            precision=config.val.precision,
            device=device,
            progress=False,
        )
    finally:
        model.train()
    psnrs = [r.psnr for r in results if math.isfinite(r.psnr)]
    ssims = [r.ssim for r in results if math.isfinite(r.ssim)]
    for r in results:
        log.info(
            "  %s x%d: %.4f dB / %.5f (%d images)", r.dataset, r.scale, r.psnr, r.ssim, r.images
        )
    return (
        sum(psnrs) / len(psnrs) if psnrs else math.nan,
        sum(ssims) / len(ssims) if ssims else math.nan,
    )
