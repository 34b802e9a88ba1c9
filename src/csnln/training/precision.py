"""``train.precision: auto``: the faster of float32 and bf16 autocast for this model, measured.

On a CPU neither the flags nor a matrix-product probe decide it: a training step mixes
convolutions and attention products whose bf16 kernels gain or lose differently per CPU, per
model shape and per batch (benchmarks/results/train_step_small.md). So the choice times the
configured model's own forward + backward on one batch of the configured shape, in each
precision, before the first step; weights are not changed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from ..device import cpu_has_bf16, precision_context

#: How much faster than float32 a bf16 step must run for ``auto`` to pick it (bf16 rounds
#: activations; a tie goes to float32).
BF16_MIN_STEP_SPEEDUP = 1.1


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision ``auto`` resolved to, and why (seconds per forward + backward; empty
    when nothing was timed)."""

    precision: str
    seconds: dict[str, float]
    reason: str


def choose_precision(
    model: nn.Module,
    *,
    scale: int,
    batch: int,
    patch: int,
    device: torch.device,
    repeats: int = 2,
) -> PrecisionChoice:
    """Resolve ``auto`` for training ``model`` on batches of ``batch`` LR patches of
    ``patch``² pixels: bf16 on a GPU that supports it; fp32 on a CPU without bf16
    instructions; otherwise the faster of the two, timed (best of ``repeats`` after one
    warm-up each, alternating)."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", {}, "a GPU with bf16")
        return PrecisionChoice("fp32", {}, "a GPU without bf16")
    if not cpu_has_bf16():
        return PrecisionChoice("fp32", {}, "a CPU without bf16 instructions")

    generator = torch.Generator().manual_seed(0)  # the global RNG stays as the seed left it
    lr = torch.rand(batch, 3, patch, patch, generator=generator).to(device)
    hr = torch.rand(batch, 3, scale * patch, scale * patch, generator=generator).to(device)

    def step(precision: str) -> float:
        start = time.perf_counter()
        with precision_context(precision, device):
            sr = model(lr)
        (sr.float() - hr).abs().mean().backward()
        return time.perf_counter() - start

    seconds: dict[str, float] = {"fp32": float("inf"), "bf16": float("inf")}
    was_training = model.training
    model.train()
    try:
        for precision in seconds:  # warm-up: oneDNN builds its kernels on the first call
            step(precision)
        for _ in range(repeats):
            for precision in seconds:
                seconds[precision] = min(seconds[precision], step(precision))
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    speedup = seconds["fp32"] / seconds["bf16"]
    precision = "bf16" if speedup >= BF16_MIN_STEP_SPEEDUP else "fp32"
    return PrecisionChoice(
        precision,
        seconds,
        f"a forward + backward timed here: fp32 {seconds['fp32']:.3f} s, bf16 "
        f"{seconds['bf16']:.3f} s (bf16 when at least {BF16_MIN_STEP_SPEEDUP}x faster)",
    )
