"""MATLAB-exact bicubic ``imresize`` on torch tensors.

This reproduces MATLAB's ``imresize(A, scale)`` / ``imresize(A, [rows cols])`` with the
default ``'bicubic'`` method and ``'Antialiasing', true``:

* cubic convolution kernel with ``a = -0.5`` (Keys), support ``[-2, 2]``;
* when shrinking (scale < 1) with antialiasing the kernel is stretched by ``1/scale``
  (``h(x) = scale * cubic(scale * x)``, width ``4 / scale``);
* output size ``ceil(in * scale)`` per dimension (the same scale for both dimensions),
  or an explicit ``size`` in which case the per-dimension scale is ``out / in``;
* contribution weights and indices exactly as MATLAB's private ``contributions()``:
  ``u = x / scale + 0.5 * (1 - 1 / scale)``, ``left = floor(u - width / 2)``,
  ``P = ceil(width) + 2`` taps, weights normalised to sum to 1, symmetric (mirror)
  border handling through ``aux = [1:in, in:-1:1]`` and ``mod``, all-zero tap columns
  dropped;
* the dimension with the smaller scale factor is resized first (ties: rows first),
  each one as a weighted gather accumulated tap by tap, in MATLAB's order.

Weights and indices are built in float64 on the input's device; only torch ops are
used, so it runs on CPU and GPU alike. Every element of the leading (batch/channel)
dimensions is processed independently, so results do not depend on the batch.
"""

from __future__ import annotations

import math

import torch

__all__ = ["imresize", "modcrop", "cubic", "contributions"]


def cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bicubic kernel (Keys, ``a = -0.5``), evaluated elementwise on ``x``."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1).to(x.dtype)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2)).to(x.dtype)
    return inner + outer


def contributions(
    in_length: int,
    out_length: int,
    scale: float,
    *,
    antialias: bool = True,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation weights and source indices along one dimension (MATLAB ``contributions``).

    Returns ``(weights, indices)``, both of shape ``(out_length, P')``: ``weights`` float64
    (each row sums to 1), ``indices`` int64 0-based into ``[0, in_length)``. ``P'`` is
    ``ceil(kernel_width) + 2`` minus the tap columns whose weights are all zero.
    """
    kernel_width = 4.0
    if scale < 1 and antialias:
        kernel_width = kernel_width / scale

        def h(t: torch.Tensor) -> torch.Tensor:
            return scale * cubic(scale * t)

    else:
        h = cubic

    x = torch.arange(1, out_length + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    p = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(p, dtype=torch.float64, device=device)[None, :]
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Mirror boundary: aux = [1:in, in:-1:1]; indices = aux(mod(indices - 1, 2 * in) + 1).
    idx = torch.remainder(indices.to(torch.int64) - 1, 2 * in_length)
    idx = torch.where(idx < in_length, idx, 2 * in_length - 1 - idx)  # 0-based
    keep = (weights != 0).any(dim=0)
    return weights[:, keep], idx[:, keep]


def _resize_along_dim(
    x: torch.Tensor, dim: int, weights: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """Apply ``out[j] = sum_k weights[j, k] * x[indices[j, k]]`` along ``dim``."""
    shape = [1] * x.dim()
    shape[dim] = weights.shape[0]
    w = weights.to(x.dtype)
    out = None
    for k in range(weights.shape[1]):
        term = x.index_select(dim, indices[:, k]).mul_(w[:, k].reshape(shape))
        # In place, and the term freed before the next one: two output-sized arrays alive at
        # a time, not four (the same sums); the memory planner counts on it.
        out = term if out is None else out.add_(term)
        del term
    assert out is not None
    return out


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize the last two dimensions of ``x`` exactly like MATLAB's bicubic ``imresize``.

    Args:
        x: tensor of shape ``(..., H, W)`` (e.g. ``N×C×H×W``, ``C×H×W`` or ``H×W``), any
            device. float32/float64 are computed in their own dtype (weights built in
            float64); float16/bfloat16 are computed in float32 and cast back. ``uint8`` input
            is converted to float64 and the float64 result is returned **unrounded and
            unclamped**, i.e. ``imresize(x.double(), ...)``. (MATLAB itself, given uint8,
            rounds to uint8 after each of the two 1-D passes; to match MATLAB's
            ``imresize(double(A), s)`` followed by ``uint8(...)``, round the result half
            away from zero and clamp to ``[0, 255]``.) Values keep their range (``[0, 1]``
            or ``[0, 255]``); bicubic overshoot is not clipped.
        scale: scale factor applied to both dimensions; output size is
            ``ceil(H * scale) × ceil(W * scale)``. Mutually exclusive with ``size``.
        size: explicit output size ``(H_out, W_out)``; the per-dimension scale is then
            ``H_out / H`` and ``W_out / W``.
        antialias: widen the kernel when shrinking (MATLAB default ``true``).

    Returns:
        Tensor of shape ``(..., H_out, W_out)`` on ``x.device``.
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of `scale` or `size`")
    if x.dim() < 2:
        raise ValueError(f"expected a tensor of shape (..., H, W), got {tuple(x.shape)}")
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    if scale is not None:
        scale = float(scale)
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        scales = (scale, scale)
        out_size = (math.ceil(scale * in_h), math.ceil(scale * in_w))
    else:
        assert size is not None
        out_size = (int(size[0]), int(size[1]))
        if out_size[0] <= 0 or out_size[1] <= 0:
            raise ValueError(f"size must be positive, got {size}")
        scales = (out_size[0] / in_h, out_size[1] / in_w)
    if in_h == 0 or in_w == 0:
        raise ValueError("cannot resize an empty image")

    orig_dtype = x.dtype
    if x.dtype == torch.uint8:
        y = x.to(torch.float64)
    elif x.dtype in (torch.float16, torch.bfloat16):
        y = x.to(torch.float32)
    elif x.dtype in (torch.float32, torch.float64):
        y = x
    else:
        raise TypeError(f"unsupported dtype {x.dtype}; use uint8, float32 or float64")

    # MATLAB: [~, order] = sort(scale) -- smaller scale first, stable (rows first on ties).
    order = sorted(range(2), key=lambda d: scales[d])
    in_sizes = (in_h, in_w)
    for d in order:
        w, idx = contributions(
            in_sizes[d], out_size[d], scales[d], antialias=antialias, device=y.device
        )
        y = _resize_along_dim(y, y.dim() - 2 + d, w, idx)

    if orig_dtype in (torch.float16, torch.bfloat16):
        y = y.to(orig_dtype)
    return y


def modcrop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the last two dims of ``x`` (``(..., H, W)``) to multiples of ``scale``.

    Rows/columns are removed at the bottom/right, as in the usual ``modcrop`` of SR code.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    return x[..., : h - h % scale, : w - w % scale]
