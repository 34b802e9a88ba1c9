"""PSNR / SSIM with the standard super-resolution evaluation protocol.

Protocol (as in the Python evaluation code of EDSR/RCAN/CSNLN-style repositories):

* images are brought to the ``[0, 255]`` scale in float64 (no rounding);
* with ``y_channel=True`` (default) RGB images are converted to the BT.601 luma
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (R, G, B in ``[0, 255]``, Y not
  rounded); a 1-channel image is used as is;
* ``crop`` pixels are removed at each of the four borders (usually ``crop = scale``);
* PSNR ``= 10 log10(255^2 / MSE)`` (``inf`` for identical images);
* SSIM uses an 11×11 Gaussian window (σ = 1.5), ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``,
  *valid* filtering (no padding) and the mean of the SSIM map; with several channels
  (``y_channel=False``) the per-channel SSIMs are averaged.

Canonical inputs are torch tensors ``(C, H, W)`` or ``(N, C, H, W)`` (more generally
``(..., C, H, W)``), float in ``[0, data_range]`` or ``uint8`` (which always means
``data_range = 255``). NumPy arrays are accepted in image layout ``H×W×C`` or ``H×W``
(see :func:`to_tensor`). A ``(C, H, W)`` input gives a Python ``float``; batched inputs give
a float64 tensor of the leading shape, e.g. ``(N,)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["to_tensor", "rgb_to_y", "psnr", "ssim"]

ImageLike = torch.Tensor | np.ndarray


def to_tensor(img: ImageLike) -> torch.Tensor:
    """Convert an image to a torch tensor in channel-first layout, keeping its dtype.

    * ``np.ndarray`` of shape ``H×W×C`` (e.g. ``uint8`` RGB from PIL) -> ``C×H×W``;
      ``H×W`` -> ``1×H×W``.
    * ``torch.Tensor`` is returned unchanged (assumed ``(..., C, H, W)`` already).
    """
    if isinstance(img, torch.Tensor):
        return img
    if isinstance(img, np.ndarray):
        if img.ndim == 2:
            return torch.from_numpy(np.ascontiguousarray(img))[None]
        if img.ndim == 3:
            return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        raise ValueError(f"numpy images must be H×W or H×W×C, got shape {img.shape}")
    raise TypeError(f"expected a torch.Tensor or np.ndarray, got {type(img).__name__}")


def _to_255(img: ImageLike, data_range: float) -> torch.Tensor:
    """Tensor ``(..., C, H, W)`` as float64 on the ``[0, 255]`` scale."""
    t = to_tensor(img)
    if t.dim() < 3:
        raise ValueError(f"expected (..., C, H, W), got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        return t.to(torch.float64)
    t = t.to(torch.float64)
    if data_range != 255:
        t = t * (255.0 / data_range)
    return t


def _y_from_255(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb[..., 0:1, :, :], rgb[..., 1:2, :, :], rgb[..., 2:3, :, :]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def rgb_to_y(img: ImageLike, data_range: float = 1.0) -> torch.Tensor:
    """BT.601 luma of an RGB image, on the ``[0, 255]`` scale (``[16, 235]`` for valid RGB).

    Args:
        img: torch tensor ``(..., 3, H, W)`` with values in ``[0, data_range]``
            (``uint8`` means ``[0, 255]`` whatever ``data_range``), or a numpy
            ``H×W×3`` array (see :func:`to_tensor`).
        data_range: the maximum value of the input scale (1.0 or 255.0).

    Returns:
        float64 tensor ``(..., 1, H, W)``: ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``
        with R, G, B on the ``[0, 255]`` scale; not rounded.
    """
    t = _to_255(img, data_range)
    if t.shape[-3] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels, got shape {tuple(t.shape)}")
    return _y_from_255(t)


def _prepare(
    sr: ImageLike, hr: ImageLike, crop: int, y_channel: bool, data_range: float
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    a = _to_255(sr, data_range)
    b = _to_255(hr, data_range)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.device != b.device:
        b = b.to(a.device)
    single = a.dim() == 3
    if y_channel:
        c = a.shape[-3]
        if c == 3:
            a, b = _y_from_255(a), _y_from_255(b)
        elif c != 1:
            raise ValueError(f"y_channel=True needs 1 or 3 channels, got {c}")
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop > 0:
        h, w = a.shape[-2], a.shape[-1]
        if 2 * crop >= h or 2 * crop >= w:
            raise ValueError(f"crop {crop} too large for a {h}×{w} image")
        a = a[..., crop : h - crop, crop : w - crop]
        b = b[..., crop : h - crop, crop : w - crop]
    return a, b, single


def _finish(values: torch.Tensor, single: bool) -> float | torch.Tensor:
    return float(values.item()) if single else values


def psnr(
    sr: ImageLike,
    hr: ImageLike,
    *,
    crop: int = 0,
    y_channel: bool = True,
    data_range: float = 1.0,
) -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB on the ``[0, 255]`` scale, computed in float64.

    Args:
        sr, hr: images ``(C, H, W)`` or ``(..., C, H, W)`` (torch, float in
            ``[0, data_range]`` or ``uint8``), or numpy ``H×W×C`` / ``H×W``.
        crop: pixels removed at each border before measuring.
        y_channel: measure on the Y channel of RGB inputs (1-channel inputs are used as
            is); otherwise the MSE is taken over all channels.
        data_range: maximum value of float inputs (ignored for ``uint8``, which is 255).

    Returns:
        A ``float`` for a single image, else a float64 tensor of the leading shape
        (``(N,)`` for ``N×C×H×W``). Identical images give ``inf``.
    """
    a, b, single = _prepare(sr, hr, crop, y_channel, data_range)
    mse = ((a - b) ** 2).mean(dim=(-3, -2, -1))
    values = 10.0 * torch.log10((255.0 * 255.0) / mse)  # mse == 0 -> +inf
    return _finish(values, single)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(
    sr: ImageLike,
    hr: ImageLike,
    *,
    crop: int = 0,
    y_channel: bool = True,
    data_range: float = 1.0,
) -> float | torch.Tensor:
    """Structural similarity (Wang et al. 2004) on the ``[0, 255]`` scale, in float64.

    11×11 Gaussian window (σ = 1.5, separable), ``C1 = (0.01·255)²``, ``C2 = (0.03·255)²``,
    valid filtering (the SSIM map is ``(H-10)×(W-10)`` after cropping), mean of the map;
    several channels (``y_channel=False``) are averaged. Arguments and return value as in
    :func:`psnr`; identical images give exactly 1.
    """
    a, b, single = _prepare(sr, hr, crop, y_channel, data_range)
    lead = a.shape[:-3]
    c, h, w = a.shape[-3:]
    if h < 11 or w < 11:
        raise ValueError(f"SSIM needs at least 11×11 pixels after cropping, got {h}×{w}")
    a = a.reshape(-1, 1, h, w)
    b = b.reshape(-1, 1, h, w)
    g = _gaussian_window(device=a.device)
    gv, gh = g.reshape(1, 1, 11, 1), g.reshape(1, 1, 1, 11)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gv), gh)

    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    mu1, mu2 = filt(a), filt(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = filt(a * a) - mu1_sq
    s2 = filt(b * b) - mu2_sq
    s12 = filt(a * b) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    values = ssim_map.mean(dim=(-2, -1)).reshape(*lead, c).mean(dim=-1)
    return _finish(values, single)
