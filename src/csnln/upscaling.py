"""Upscaling images with a super-resolution model: the Python API behind ``csnln upscale``.

    >>> from PIL import Image
    >>> import csnln
    >>> big = csnln.upscale(Image.open("photo.jpg"), scale=2, model="model_x2.pt")

:func:`upscale` takes a PIL image, a numpy array or a torch tensor and returns the same kind;
:func:`upscale_file` reads a file and writes the result the way the source was stored (format,
8/16 bits, greyscale, alpha, ICC profile, EXIF; orientation applied).

How an image is processed:

* the network sees RGB in ``[0, 1]``; a greyscale image is repeated to RGB and the result is
  returned/written greyscale (the mean of the output's channels);
* an alpha channel is upscaled with MATLAB-exact bicubic (:func:`csnln.data.imresize.imresize`),
  clamped to ``[0, 1]`` and re-attached;
* large images are cut into overlapping tiles blended without seams
  (:class:`csnln.inference.Upscaler`); with ``tile="auto"`` the whole image is run at once
  whenever it fits the memory budget (and, on a CPU, the compute budget);
* memory: the budget is ``max_memory`` when given, else the free memory of the device. The
  output canvas and blending buffers are set aside first and the tile size is chosen from
  what is left (:func:`plan_upscale`). An image that cannot fit even with the smallest tile is
  refused before any computation with a :class:`MemoryBudgetError` giving the numbers.

Models (``model=``): a loaded ``nn.Module`` with a ``scale`` attribute, a name or path
understood by :func:`csnln.zoo.load_model` (``"bicubic"``, a bundled name, a ``.safetensors``
project checkpoint, an authors' ``model_x{s}.pt``), or ``None`` for the bundled default model of
the scale. Loaded models are cached per process, keyed by (spec, file stamp, scale, device);
:func:`clear_model_cache` releases them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from .comparison import write_comparison
from .data.imresize import imresize
from .imageio import (
    LoadedImage,
    check_writable,
    image_from_array,
    image_from_pil,
    read_image,
    to_array,
    to_pil,
    write_image,
)
from .inference import (
    MemoryBudgetError,
    Plan,
    RunOptions,
    Upscaler,
    plan_run,
)
from .models.descriptor import describe
from .zoo import ModelSpec, model_label, resolve_model

__all__ = [
    "ImageLike",
    "MemoryBudgetError",
    "ModelSpec",
    "UpscalePlan",
    "plan_upscale",
    "upscale",
    "upscale_file",
]

ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray, torch.Tensor)
PathArg = str | os.PathLike[str]


# --------------------------------------------------------------------------------------------
# planning and running
# --------------------------------------------------------------------------------------------

#: The plan of one image (:class:`csnln.inference.Plan`), under the name this module used.
UpscalePlan = Plan


def plan_upscale(
    model: nn.Module,
    h: int,
    w: int,
    options: RunOptions | None = None,
    *,
    batch: int = 1,
    alpha: bool = False,
    **option_keywords: Any,
) -> Plan:
    """The plan for ``batch`` LR images of ``h x w`` with ``options`` (or their keywords):
    :func:`csnln.inference.plan_run` for ``model``. Raises :class:`MemoryBudgetError` (with
    the numbers) when even the smallest tile cannot fit, ``ValueError`` for bad options."""
    options = _options(options, option_keywords)
    return plan_run(describe(model), h, w, options, images=batch, alpha=alpha)


def _options(options: RunOptions | None, keywords: dict[str, Any]) -> RunOptions:
    if options is not None and keywords:
        raise ValueError("give either RunOptions or option keywords, not both")
    return options if options is not None else RunOptions(**keywords)


def _run(
    model: nn.Module,
    rgb: torch.Tensor,
    alpha: torch.Tensor | None,
    options: RunOptions,
    *,
    plan: Plan | None = None,
    on_start: Callable[[int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_tile: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``rgb`` N x 3 x h x w and ``alpha`` N x 1 x h x w in [0, 1] -> (SR, alpha), float32."""
    n, _, h, w = rgb.shape
    upscaler = Upscaler(model, options)
    if plan is None:
        plan = upscaler.plan(h, w, images=n, alpha=alpha is not None)
    if on_start is not None:
        on_start(plan.calls)
    if on_plan is not None:
        on_plan(plan)
    sr = upscaler(rgb, plan=plan, on_tile=on_tile)
    big_alpha = None
    if alpha is not None:
        big_alpha = imresize(alpha.to(torch.float32), float(upscaler.scale)).clamp_(0, 1)
    return sr, big_alpha


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return scale


def upscale(
    image: ImageLike,
    scale: int = 2,
    model: ModelSpec = None,
    options: RunOptions | None = None,
    **option_keywords: Any,
) -> ImageLike:
    """Upscale ``image`` by ``scale`` with ``model``; returns the same kind of image.

    Args:
        image: a PIL image (mode kept: L, LA, RGB, RGBA, I;16, F; palette becomes RGB/RGBA;
            ICC profile and EXIF copied, pixels taken as they are), a numpy array ``H x W``
            or ``H x W x C`` (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; uint8, uint16, or
            float in [0, 1]) or a torch tensor ``H x W``, ``C x H x W`` or ``N x C x H x W``
            (uint8 or float in [0, 1]; returned on its own device and dtype).
        scale: the upscaling factor (2, 3 or 4 for CSNLN); a given module must have it.
        model: an ``nn.Module``, a name or path (``"bicubic"``, a bundled name, a
            ``.safetensors`` checkpoint, an authors' ``.pt``), or None for the bundled default.
        options: how to run the model (:class:`csnln.RunOptions`: tile plan, precision,
            device, memory budget, self-ensemble), or give its fields as keywords
            (``tile=48``, ``precision="fp32"``, ...). Default: the model's measured tile plan
            on a CPU, bf16 where it is fast.

    Float results are clamped to [0, 1]; integer results rounded. Greyscale in, greyscale out;
    alpha is upscaled with bicubic. Raises :class:`MemoryBudgetError` when the image cannot
    fit the memory budget, :class:`NoBundledModelError` for ``model=None`` without weights.
    """
    _check_scale(scale)
    options = _options(options, option_keywords)
    net = resolve_model(model, scale, options.device)
    if isinstance(image, Image.Image):
        loaded = image_from_pil(image)
        sr, alpha = _run_loaded(net, loaded, options)
        return to_pil(sr, image, alpha=alpha)
    if isinstance(image, np.ndarray):
        loaded = image_from_array(image)
        sr, alpha = _run_loaded(net, loaded, options)
        return to_array(sr, image, alpha=alpha)
    if isinstance(image, torch.Tensor):
        return _upscale_tensor(image, net, options)
    raise TypeError(
        f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}"
    )


def _run_loaded(
    model: nn.Module,
    image: LoadedImage,
    options: RunOptions,
    *,
    plan: Plan | None = None,
    on_start: Callable[[int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_tile: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SR (3 x sH x sW) and alpha (1 x sH x sW or None) of a loaded image, on the CPU."""
    alpha = None if image.alpha is None else image.alpha[None]
    sr, big_alpha = _run(
        model,
        image.rgb[None],
        alpha,
        options,
        plan=plan,
        on_start=on_start,
        on_plan=on_plan,
        on_tile=on_tile,
    )
    return sr[0].cpu(), None if big_alpha is None else big_alpha[0].cpu()


def _upscale_tensor(image: torch.Tensor, model: nn.Module, options: RunOptions) -> torch.Tensor:
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise ValueError(f"unsupported tensor dtype {image.dtype} (use uint8 or a float type)")
    dims = image.dim()
    if dims not in (2, 3, 4):
        raise ValueError(
            f"expected an H x W, C x H x W or N x C x H x W tensor, got {tuple(image.shape)}"
        )
    x = image.detach()
    x = x[None, None] if dims == 2 else x[None] if dims == 3 else x
    channels = x.shape[1]
    if channels not in (1, 2, 3, 4) or 0 in x.shape:
        raise ValueError(f"expected 1-4 channels first (C x H x W), got shape {tuple(image.shape)}")
    x = x.to(torch.float32)
    x = x / 255 if image.dtype == torch.uint8 else torch.nan_to_num(x, nan=0.0).clamp(0, 1)
    grey = channels <= 2
    rgb = x[:, :1].repeat(1, 3, 1, 1) if grey else x[:, :3]
    alpha = x[:, -1:] if channels in (2, 4) else None
    sr, big_alpha = _run(model, rgb, alpha, options)
    out = sr.mean(1, keepdim=True) if grey else sr
    if big_alpha is not None:
        out = torch.cat([out, big_alpha.to(out.device)], dim=1)
    out = torch.nan_to_num(out, nan=0.0).clamp_(0, 1)
    out = (
        out.mul(255).round_().to(torch.uint8) if image.dtype == torch.uint8 else out.to(image.dtype)
    )
    out = out[0, 0] if dims == 2 else out[0] if dims == 3 else out
    return out.to(image.device)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _peek_header(path: PathArg) -> tuple[tuple[int, int], bool] | None:
    """((width, height), has alpha) from the file header, or None if it cannot be read
    (read_image will then report the problem)."""
    try:
        with Image.open(path) as img:
            alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
            return img.size, alpha
    except Exception:  # any failure here is reported by read_image
        return None


def upscale_file(
    path: PathArg,
    out_path: PathArg,
    scale: int = 2,
    model: ModelSpec = None,
    options: RunOptions | None = None,
    *,
    overwrite: bool = False,
    compare_path: PathArg | None = None,
    label: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_plan: Callable[[Plan], None] | None = None,
    on_tile: Callable[[], None] | None = None,
    **option_keywords: Any,
) -> Path:
    """Read ``path``, upscale it, write ``out_path`` atomically; returns ``out_path``.

    The output keeps the source's greyscale/alpha, bit depth (where the format has it), ICC
    profile and EXIF (orientation applied to the pixels and reset to 1); its format comes from
    its extension. ``compare_path``: also write a side-by-side image (see
    :func:`csnln.comparison.make_comparison`, captioned with ``label``). The outputs are checked for
    writability before anything is computed; nothing is overwritten unless ``overwrite``.
    ``on_start(calls)`` is called once the number of model calls is known (``on_plan(plan)``
    with the whole :class:`csnln.inference.Plan`), ``on_tile()`` after each. ``options`` (or
    its keywords) as in :func:`upscale`. The plan is made once, from the file's header, so
    that an image too large for the memory budget is refused before it is decoded.

    Raises FileNotFoundError / :class:`csnln.imageio.ImageReadError` for a missing or
    unreadable input, FileExistsError for an existing output, :class:`MemoryBudgetError`.
    """
    _check_scale(scale)
    out = check_writable(out_path, overwrite)
    if compare_path is not None:
        check_writable(compare_path, overwrite)
    options = _options(options, option_keywords)
    net = resolve_model(model, scale, options.device)
    descriptor = describe(net)
    header = _peek_header(path)
    plan = None
    if header is not None:  # refuse an image too large for the budget before decoding it
        (width, height), alpha = header
        plan = plan_run(descriptor, height, width, options, alpha=alpha)
    image = read_image(path)
    h, w = image.rgb.shape[-2:]
    if header is None or header != ((w, h), image.alpha is not None):  # e.g. EXIF rotation
        plan = plan_run(descriptor, h, w, options, alpha=image.alpha is not None)
    sr, alpha = _run_loaded(
        net, image, options, plan=plan, on_start=on_start, on_plan=on_plan, on_tile=on_tile
    )
    write_image(
        out,
        sr,
        alpha=alpha,
        grey=image.grey,
        bit_depth=image.bit_depth,
        icc_profile=image.icc_profile,
        exif=image.exif,
        overwrite=overwrite,
    )
    if compare_path is not None:
        write_comparison(
            compare_path,
            image.rgb,
            sr,
            grey=image.grey,
            label=label or model_label(model, scale),
            icc_profile=None if image.grey else image.icc_profile,
            overwrite=overwrite,
        )
    return out
