"""The upscaler: a model plus the options of how to run it, the one door for running a model
on whole images."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..device import precision_context, resolve_device, resolve_precision
from ..models.descriptor import AttentionWindowed, describe
from .chop import run_chop
from .ensemble import self_ensemble
from .options import Plan, RunOptions
from .planner import plan_run
from .profiles import attention_window_for, check_attention_window, check_model_tile
from .tiling import run_tiled


class Upscaler:
    """A model plus the :class:`RunOptions` of how to run it on whole images.

    ``Upscaler(model, options)`` or ``Upscaler(model, tile=..., precision=...)`` (keywords of
    :class:`RunOptions`). :meth:`plan` gives the :class:`Plan` for an image size; calling the
    upscaler runs it.
    """

    def __init__(self, model: nn.Module, options: RunOptions | None = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise ValueError("give either RunOptions or option keywords, not both")
        self.options = options if options is not None else RunOptions(**kwargs)
        self.device = resolve_device(self.options.device)
        self.descriptor = describe(model)
        check_model_tile(self.descriptor, self.options.tile)  # the test window, once
        self.precision = resolve_precision(self.options.precision, self.device, self.descriptor)
        asked = self.options.attention_window
        check_attention_window(self.descriptor, asked)
        window = attention_window_for(self.descriptor, asked)
        if window is not None or asked is not None:
            model = self._windowed(model, window)
        self.model = model.to(self.device).eval()
        self.scale = self.descriptor.scale

    def _windowed(self, model: nn.Module, window: int | None) -> nn.Module:
        """A copy of ``model`` with its attentions confined to ``window`` (None: whole
        pieces); the given model, perhaps the zoo's shared one, is left as it is."""
        if self.descriptor.smallest_attention_window is None:
            return model  # nothing to confine (asked for whole pieces: 0)
        assert isinstance(model, AttentionWindowed)  # its descriptor said it can
        windowed = copy.deepcopy(model)
        windowed.set_attention_window(window)
        return windowed

    @property
    def chop(self) -> bool:
        return self.options.chop

    @property
    def self_ensemble(self) -> bool:
        return self.options.self_ensemble

    def plan(self, h: int, w: int, *, images: int = 1, alpha: bool = False) -> Plan:
        """The plan for ``images`` LR images of ``h x w`` (see :func:`plan_run`)."""
        return plan_run(
            self.descriptor,
            h,
            w,
            self.options,
            images=images,
            alpha=alpha,
            precision=self.precision,
        )

    def _forward(self, lr: torch.Tensor, precision: str) -> torch.Tensor:
        with torch.no_grad(), precision_context(precision, self.device):
            return self.model(lr).float()

    def __call__(
        self,
        lr: torch.Tensor,
        *,
        plan: Plan | None = None,
        on_tile: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Super-resolve ``lr`` (N x 3 x h x w, [0, 1]) by ``plan`` (default: :meth:`plan`);
        returns float32 N x 3 x sh x sw."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(lr.shape)}")
        lr = lr.to(self.device, torch.float32)
        if plan is None:
            plan = self.plan(*lr.shape[-2:], images=lr.shape[0])

        def forward(piece: torch.Tensor) -> torch.Tensor:  # in the plan's precision
            return self._forward(piece, plan.precision)

        def run(x: torch.Tensor) -> torch.Tensor:
            if plan.chop:

                def counted(piece: torch.Tensor) -> torch.Tensor:
                    out = forward(piece)
                    if on_tile:
                        on_tile()
                    return out

                return run_chop(counted, x, scale=self.scale)
            return run_tiled(
                forward,
                x,
                scale=self.scale,
                tile=plan.tile,
                overlap=plan.overlap,
                batch=plan.batch * x.shape[0],
                margin=plan.margin,
                streams=plan.streams,
                on_tile=on_tile,
            )

        if self.options.self_ensemble:
            return self_ensemble(run, lr)
        return run(lr)

    def tiles_per_image(self, h: int, w: int) -> int:
        """How many tiles one ``h x w`` image takes (for progress bars)."""
        return self.plan(h, w).calls
