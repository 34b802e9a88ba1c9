"""The CSNLN network: head, one recurrent SEM cell unrolled ``depth`` times, tail."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import (
    CheckpointPolicy,
    SelectiveCheckpointContext,
    checkpoint,
    create_selective_checkpoint_contexts,
)

from .attention import (
    DEFAULT_CHUNK_SIZE,
    ChunkSize,
    CrossScaleAttention,
    InScaleAttention,
)
from .descriptor import ModelDescriptor
from .layers import ConvPReLU, MeanShift
from .sem import BRANCHES, FUSIONS, SelfExemplarsMining, attention_factor
from .windowed import AttentionWindow

RGB_MEAN = (0.4488, 0.4371, 0.4040)
#: The smallest LR height and width accepted (one 3x3 matching patch).
MIN_INPUT_SIZE = 3
#: Activation checkpointing of the SEM steps (see :meth:`CSNLN.set_gradient_checkpointing`).
CHECKPOINTING_MODES = ("none", "full", "selective")


def _keep_convolutions(
    ctx: SelectiveCheckpointContext, op: Any, *args: Any, **kwargs: Any
) -> CheckpointPolicy:
    """Selective checkpointing policy: keep convolution outputs, recompute everything else."""
    del ctx, args, kwargs
    if op is torch.ops.aten.convolution.default:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _selective_contexts() -> Any:
    return create_selective_checkpoint_contexts(_keep_convolutions)


def _in_float32(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*tensors)``, but in float32 when autocast is on.

    For the layers that touch pixels (the mean shifts, the first conv, the tail): with all of
    the network under bf16 autocast, the input image and the output image would be rounded to
    bf16's 8 bits, about one grey level in 255 (on Set5 x2 with the bundled weights, -0.058 dB
    on average; -0.016 dB with these layers in float32; `benchmarks/inference.py`). They have
    3 input or output channels, so this costs little.
    """
    device_type = tensors[0].device.type
    if not torch.is_autocast_enabled(device_type):
        return fn(*tensors)
    with torch.autocast(device_type, enabled=False):
        return fn(*(t.float() for t in tensors))


def _without_autocast_cache(device_type: str) -> Any:
    """Autocast as it is, minus its cache of cast weights.

    Selective checkpointing replays the step's operations one for one in the backward pass;
    autocast's cache would make the forward cast each weight once per autocast region and the
    replay once more, and the replay would not match.
    """
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    dtype = torch.get_autocast_dtype(device_type)
    return torch.autocast(device_type, dtype=dtype, cache_enabled=False)


def checkpointing_mode(mode: bool | str) -> str:
    """A checkpointing setting as a mode name: False -> "none", True -> "full"."""
    if isinstance(mode, bool):
        return "full" if mode else "none"
    if mode not in CHECKPOINTING_MODES:
        raise ValueError(
            f"gradient checkpointing must be true, false or one of "
            f"{', '.join(CHECKPOINTING_MODES)}; got {mode!r}"
        )
    return str(mode)


@dataclass(frozen=True)
class CSNLNConfig:
    """Everything that defines a CSNLN network; saved beside the weights in checkpoints.

    Defaults are the paper's (and the authors' released checkpoints').
    """

    scale: int
    n_feats: int = 128
    depth: int = 12
    branches: tuple[str, ...] = BRANCHES
    fusion: str = "projection"
    patch_size: int = 3
    temperature: float = 10.0
    overlap_divisor: float = 6.0
    norm_floor: float = 1e-4
    rgb_mean: tuple[float, float, float] = field(default=RGB_MEAN)

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale!r}")
        if self.n_feats < 2 or self.n_feats % 2:
            raise ValueError(f"n_feats must be an even number >= 2, got {self.n_feats!r}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth!r}")
        branches = tuple(self.branches)
        unknown = [b for b in branches if b not in BRANCHES]
        if unknown or not branches:
            raise ValueError(f"branches must be a non-empty subset of {BRANCHES}, got {branches}")
        object.__setattr__(self, "branches", tuple(b for b in BRANCHES if b in branches))
        object.__setattr__(self, "rgb_mean", tuple(float(m) for m in self.rgb_mean))
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.patch_size not in (1, 3, 5):
            raise ValueError(f"patch_size must be 1, 3 or 5, got {self.patch_size!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CSNLNConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown CSNLN config keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class CSNLN(nn.Module):
    """Cross-Scale Non-Local attention network with exhaustive Self-Exemplars Mining.

    ``CSNLN(scale=4)(x)``: ``x`` is N x 3 x h x w, RGB in [0, 1] (any h, w >= 3); the output is
    N x 3 x (s h) x (s w), not clamped. Sizes that the attention cannot take directly are
    reflect-padded on the bottom/right and the output cropped back.

    ``chunk_size`` is the number of query positions each attention processes at a time
    (``"auto"``: bounded score memory, ``None``: all at once); it changes memory and speed,
    never the result.
    """

    def __init__(
        self,
        scale: int,
        n_feats: int = 128,
        depth: int = 12,
        *,
        branches: Sequence[str] = BRANCHES,
        fusion: str = "projection",
        patch_size: int = 3,
        temperature: float = 10.0,
        overlap_divisor: float = 6.0,
        norm_floor: float = 1e-4,
        rgb_mean: tuple[float, float, float] = RGB_MEAN,
        chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        self.config = CSNLNConfig(
            scale=scale,
            n_feats=n_feats,
            depth=depth,
            branches=tuple(branches),
            fusion=fusion,
            patch_size=patch_size,
            temperature=temperature,
            overlap_divisor=overlap_divisor,
            norm_floor=norm_floor,
            rgb_mean=rgb_mean,
        )
        self.scale = scale
        self.depth = depth
        self.n_feats = n_feats
        self.size_multiple = attention_factor(scale)
        self.subtract_mean = MeanShift(rgb_mean, sign=-1)
        self.head = nn.Sequential(ConvPReLU(3, n_feats, 3), ConvPReLU(n_feats, n_feats, 3))
        self.cell = SelfExemplarsMining(
            n_feats,
            scale=scale,
            branches=self.config.branches,
            fusion=fusion,
            patch_size=patch_size,
            temperature=temperature,
            overlap_divisor=overlap_divisor,
            norm_floor=norm_floor,
            chunk_size=chunk_size,
        )
        # One 3x3 conv over the concatenation [h_1, ..., h_D] of all steps' HR features.
        self.tail = nn.Conv2d(n_feats * depth, 3, 3, padding=1)
        self.add_mean = MeanShift(rgb_mean, sign=1)
        self.gradient_checkpointing = "none"
        #: The bundled weights this network carries (set by the model zoo; None: any other).
        self.weights: str | None = None
        #: The LR patch side it was trained on (set from its checkpoint; None: unknown).
        self.trained_window: int | None = None
        #: The attention window it was trained in (set from its checkpoint; None: whole).
        self.trained_attention_window: int | None = None
        #: The attentions' window (:meth:`set_attention_window`); None: whole.
        self.attention_window: int | None = None

    @property
    def descriptor(self) -> ModelDescriptor:
        attends = bool({"in_scale", "cross_scale"} & set(self.config.branches))
        return ModelDescriptor(
            scale=self.scale,
            size_multiple=self.size_multiple,
            tileable=True,
            quadratic_cost=attends,
            smallest_attention_window=self.smallest_attention_window() if attends else None,
            architecture="CSNLN",
            n_feats=self.n_feats,
            weights=self.weights,
            trained_window=self.trained_window,
            trained_attention_window=self.trained_attention_window if attends else None,
            patch_size=self.config.patch_size,
        )

    @classmethod
    def from_config(cls, config: CSNLNConfig, **runtime: Any) -> CSNLN:
        return cls(**config.to_dict() | runtime)

    def unrolled(self, depth: int, *, tail: str = "resample") -> CSNLN:
        """This network run for ``depth`` SEM steps instead of the ``self.depth`` it was
        trained with: a new module sharing every weight but the tail's.

        The SEM cell's weights are shared across steps, so only the tail, one 3x3 conv over
        the concatenation of every step's HR features, depends on the step count.
        ``tail="resample"``: its per-step slices are resampled along the step axis (linear
        interpolation between the first and the last step; one step gets their mean) and
        scaled by ``self.depth / depth``, so the tail keeps about its total weight.
        ``tail="window"`` (``depth >= self.depth`` only): the trained tail reads the last
        ``self.depth`` steps, the earlier ones get zero weight (the extra steps refine the
        features the trained tail sees). With ``depth == self.depth`` the output is this
        network's either way.
        """
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth!r}")
        if tail not in ("resample", "window"):
            raise ValueError(f"tail must be resample or window, got {tail!r}")
        if tail == "window" and depth < self.depth:
            raise ValueError(
                f"tail='window' needs depth >= the trained {self.depth} steps, got {depth}"
            )
        config = dataclasses.replace(self.config, depth=depth)
        first = next(iter(self.cell.parameters()))
        model = CSNLN.from_config(config, chunk_size=self._chunk_size()).to(
            device=first.device, dtype=first.dtype
        )
        # (3, D*F, k, k) -> (3*k*k, F, D): the step axis last, as interpolate wants it.
        weight = self.tail.weight.detach()
        out_ch, _, k, _ = weight.shape
        steps = weight.view(out_ch, self.depth, self.n_feats, k, k)
        steps = steps.permute(0, 3, 4, 2, 1).reshape(-1, self.n_feats, self.depth)
        if tail == "window":
            resampled = F.pad(steps, (depth - self.depth, 0))  # zeros for the first steps
        elif depth == 1:
            resampled = steps.mean(dim=-1, keepdim=True)
        else:
            resampled = F.interpolate(steps, size=depth, mode="linear", align_corners=True)
        if tail == "resample":
            resampled = resampled * (self.depth / depth)
        resampled = resampled.reshape(out_ch, k, k, self.n_feats, depth).permute(0, 4, 3, 1, 2)
        state = {k: v for k, v in self.state_dict().items() if k != "tail.weight"}
        state["tail.weight"] = resampled.reshape(out_ch, depth * self.n_feats, k, k)
        model.load_state_dict(state)
        # Every weight but the tail's is shared: it runs as its source does.
        model.weights, model.trained_window = self.weights, self.trained_window
        model.trained_attention_window = self.trained_attention_window
        model.gradient_checkpointing = self.gradient_checkpointing
        return model.train(self.training)

    def _chunk_size(self) -> ChunkSize:
        for module in self.modules():
            if isinstance(module, (InScaleAttention, CrossScaleAttention)):
                return module.chunk_size
        return DEFAULT_CHUNK_SIZE

    def set_chunk_size(self, chunk_size: ChunkSize) -> None:
        """Set how many query positions the attentions process at a time (None: all)."""
        for module in self.modules():
            if isinstance(module, (InScaleAttention, CrossScaleAttention)):
                module.chunk_size = chunk_size

    def set_attention_window(self, size: int | None) -> None:
        """Windowed attention (:mod:`csnln.models.windowed`): each attention's queries in
        blocks, each block over the keys of the ``size``-pixel square window around it (LR
        pixels; on the 2x grid of x4's second stage, twice that); None: the whole input (the
        authors' computation). ``size`` must be a multiple of :attr:`size_multiple` no smaller
        than :meth:`smallest_attention_window`."""
        self.attention_window = size
        windows = (None, None) if size is None else self._windows(size)
        stages = [self.cell.projection] + ([self.cell.projection2] if self.scale == 4 else [])
        for stage, window in zip(stages, windows, strict=False):
            for module in (stage.in_scale, stage.cross_scale):
                if module is not None:
                    module.window = window

    def _windows(self, size: int) -> tuple[AttentionWindow, AttentionWindow]:
        smallest = self.smallest_attention_window()
        m = self.size_multiple
        if isinstance(size, bool) or not isinstance(size, int) or size < smallest or size % m:
            raise ValueError(
                f"attention window must be a multiple of {m} and at least {smallest} "
                f"(the smallest valid value at x{self.scale}), got {size!r}"
            )
        # A halo of about an eighth of the window on each side, in whole blocks of the factor.
        halo = m * max(1, math.ceil(size / 8 / m))
        first = AttentionWindow(block=size - 2 * halo, halo=halo)
        return first, AttentionWindow(block=2 * first.block, halo=2 * first.halo)

    def smallest_attention_window(self) -> int:
        """The smallest valid attention window: a multiple of the size multiple that holds the
        matching patch and leaves a query block of at least the size multiple."""
        m, size = self.size_multiple, self.size_multiple
        while size < self.config.patch_size or size - 2 * m * max(1, math.ceil(size / 8 / m)) < m:
            size += m
        return size

    def set_export_mode(self, on: bool = True) -> None:
        """Export mode: the attentions in one chunk, without fused kernels, the paste's shift
        sum as padding and slices: the same outputs (to float rounding) in ops that
        ``torch.onnx.export`` traces into a graph right for every batch. Peak memory then grows
        with the square of the input's pixels: for fixed tiles (``csnln.export``)."""
        for module in self.modules():
            if isinstance(module, (InScaleAttention, CrossScaleAttention)):
                module.export = on

    def set_gradient_checkpointing(self, mode: bool | str = True) -> None:
        """Trade compute for training memory by checkpointing each SEM step.

        ``"full"`` (or True): keep only each step's LR input and 3-channel tail term and
        recompute the whole step in the backward pass: memory no longer grows with ``depth``,
        for about one more forward pass of time. ``"selective"``: keep the convolution outputs
        and recompute the rest (attention matrices, softmaxes, activations, sums): most of
        the saving for a few percent of time. ``"none"`` (or False): keep everything.
        Gradients are the same in every mode.
        """
        self.gradient_checkpointing = checkpointing_mode(mode)

    def _step(
        self, x: torch.Tensor, tail_weight: torch.Tensor, last: bool = False
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """One SEM step and its term of the tail conv: (x_next, conv(h, W_t)); the last
        step's x_next is not computed (None): only its HR features reach the output."""
        x, hr = self.cell(x, next_state=not last)
        # The tail's terms make the output pixels: float32 under autocast (see `_in_float32`).
        term = _in_float32(
            lambda hr, weight: F.conv2d(hr, weight.to(hr.dtype), padding=1), hr, tail_weight
        )
        return x, term

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"CSNLN expects N x 3 x H x W images, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(h, w) < MIN_INPUT_SIZE:
            raise ValueError(
                f"input of {w}x{h} pixels (width x height) is too small: CSNLN needs at "
                f"least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
            )
        m = self.size_multiple
        pad_h, pad_w = -h % m, -w % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")

        # The mean shift and the first conv see the input pixels: float32 under autocast.
        x = _in_float32(lambda x: self.head[0](self.subtract_mean(x)), x)
        x = self.head[1](x)
        # The tail conv over the concatenation is a sum over steps: accumulate it step by step
        # so that only one step's HR features are alive at a time.
        weights = self.tail.weight.split(self.n_feats, dim=1)
        out = None
        mode = self.gradient_checkpointing if torch.is_grad_enabled() else "none"
        for step in range(self.depth):
            last = step == self.depth - 1
            if mode == "full":
                state, term = checkpoint(self._step, x, weights[step], last, use_reentrant=False)
            elif mode == "selective":
                with _without_autocast_cache(x.device.type):
                    state, term = checkpoint(
                        self._step,
                        x,
                        weights[step],
                        last,
                        use_reentrant=False,
                        context_fn=_selective_contexts,
                    )
            else:
                state, term = self._step(x, weights[step], last)
            if state is not None:
                x = state
            out = term if out is None else out + term
        assert out is not None
        out = _in_float32(
            lambda out, bias: self.add_mean(out + bias.to(out.dtype).view(1, 3, 1, 1)),
            out,
            self.tail.bias,
        )
        s = self.scale
        return out[:, :, : s * h, : s * w]
