"""The network a run trains: built from ``config.model``, optionally started from other weights
(``model.init``), also of another scale (the shared layers)."""

from __future__ import annotations

import logging
from typing import Any

from ..models.network import CSNLN, CSNLNConfig
from .config import ConfigError, TrainConfig

__all__ = ["build_model"]

log = logging.getLogger("csnln.training")


def build_model(config: TrainConfig) -> CSNLN:
    """The network of ``config.model`` (initialised from ``model.init`` when set)."""
    m = config.model
    model = CSNLN(
        m.scale,
        m.n_feats,
        m.depth,
        branches=m.branches,
        fusion=m.fusion,
        patch_size=m.patch_size,
        chunk_size=m.chunk_size,
    )
    model.set_gradient_checkpointing(m.gradient_checkpointing)
    if m.attention_window is not None:
        try:
            model.set_attention_window(m.attention_window)
        except ValueError as exc:
            raise ConfigError(f"model.attention_window: {exc}") from None
    if m.init:
        from ..zoo import BUNDLED, load_model

        # A bundled name has one file per scale: its x{scale} weights (fine-tuning).
        source = load_model(m.init, m.scale if m.init in BUNDLED else None)
        if not isinstance(source, CSNLN) or _architecture(source.config) != _architecture(
            model.config
        ):
            got = source.config if isinstance(source, CSNLN) else type(source).__name__
            raise ConfigError(
                f"model.init {m.init}: its architecture ({got}) differs from the model's "
                f"({model.config})"
            )
        if source.scale == m.scale:
            model.load_state_dict(source.state_dict())
        else:
            # Warm start across scales: the weights whose names and shapes agree (the head,
            # the attentions, the fusion, the 3x3 convs) come from the source; the layers that
            # depend on the scale (strided convs of another size, x4's second stage, the
            # tail's order) keep their initialisation.
            own = model.state_dict()
            shared = {
                k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape
            }
            model.load_state_dict(shared, strict=False)
            log.info(
                "model.init %s (x%d): %d of %d tensors loaded into the x%d model; new: %s",
                m.init,
                source.scale,
                len(shared),
                len(own),
                m.scale,
                ", ".join(sorted(set(own) - set(shared))[:8])
                + (" ..." if len(own) - len(shared) > 8 else ""),
            )
    return model


def _architecture(config: CSNLNConfig) -> tuple[Any, ...]:
    """What two networks must share for one's weights to load into the other (any scale)."""
    return (config.n_feats, config.depth, config.branches, config.fusion, config.patch_size)
