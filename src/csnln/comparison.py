"""The side-by-side picture of ``--compare`` and ``csnln demo``: bicubic | model, each with
the whole image and a zoomed detail."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .data.imresize import imresize
from .imageio import write_picture

__all__ = ["make_comparison", "write_comparison"]

PathArg = str | os.PathLike[str]


_MAX_VIEW = 1024  # longest side of each full view in the comparison image
_ZOOM = 4
_BACKGROUND = (32, 32, 32)
_TEXT = (235, 235, 235)
_MARK = (255, 64, 64)


def _font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, ImportError, OSError):  # no FreeType: the bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> str:
    """``text``, shortened with "..." until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:  # type: ignore[arg-type]
        return text
    while len(text) > 1 and draw.textlength(text + "...", font=font) > width:  # type: ignore[arg-type]
        text = text[:-1]
    return text.rstrip() + "..."


def _detail_region(image: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``size x size`` window with the highest gradient energy."""
    grey = image.mean(0)
    energy = torch.zeros_like(grey)
    energy[:, 1:] += (grey[:, 1:] - grey[:, :-1]) ** 2
    energy[1:, :] += (grey[1:, :] - grey[:-1, :]) ** 2
    stride = max(1, size // 4)
    sums = F.avg_pool2d(energy[None, None], size, stride=stride)[0, 0]
    index = int(torch.argmax(sums))
    y, x = divmod(index, sums.shape[1])
    return y * stride, x * stride


def _to_pil_rgb(image: torch.Tensor) -> Image.Image:
    arr = image.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGB")


def make_comparison(
    lr: torch.Tensor, sr: torch.Tensor, *, grey: bool = False, label: str = "csnln"
) -> Image.Image:
    """A side-by-side RGB image: bicubic upscale of ``lr`` (left) | ``sr`` (right).

    ``lr`` is 3 x h x w, ``sr`` 3 x sh x sw (floats in [0, 1]). Each column has a caption,
    the full image (shrunk to at most 1024 pixels if larger) with a red box around the most
    detailed region (highest gradient energy of ``sr``; a quarter of the short side, at least
    64 pixels), and below it that region zoomed with nearest-neighbour pixels to the column's
    width, so the difference is visible.
    """
    scale = sr.shape[-1] // lr.shape[-1]
    bicubic = imresize(lr[None].to(torch.float32), float(scale))[0]
    bicubic = bicubic[:, : sr.shape[-2], : sr.shape[-1]]
    sr = sr.to(torch.float32)
    if grey:
        bicubic, sr = (t.mean(0, keepdim=True).expand(3, -1, -1) for t in (bicubic, sr))
    h, w = sr.shape[-2:]
    # The zoomed region grows with the image (a quarter of its short side, at least 64 px or
    # what there is), and its zoom fills the column: on a wide photo the detail panel is as
    # wide as the view above it, and its box stays visible in the shrunk view.
    crop = min(h, w, max(min(64, max(8, min(h, w) // 2)), min(h, w) // 4))
    y0, x0 = _detail_region(sr, crop)
    shrink = min(1.0, _MAX_VIEW / max(h, w))
    view = (max(1, round(w * shrink)), max(1, round(h * shrink)))
    zoom = max(1, max(view[0], _ZOOM * 64) // crop)
    zoomed = crop * zoom
    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_h = probe.textbbox((0, 0), "Ag", font=font)[3] + 6
    gap = 8
    col_w = max(view[0], zoomed)
    width = 2 * col_w + 3 * gap
    height = gap + text_h + view[1] + gap + text_h + zoomed + gap
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    captions = (f"bicubic x{scale}", f"{label} x{scale}")
    shown_at = "" if shrink == 1.0 else f", shown at {100 * view[0] / w:.0f}%"
    for column, (image, caption) in enumerate(zip((bicubic, sr), captions, strict=True)):
        column_left = gap + column * (col_w + gap)
        left = column_left + (col_w - view[0]) // 2  # a narrow view is centred over its zoom
        full = _to_pil_rgb(image)
        shown = full if shrink == 1.0 else full.resize(view, Image.Resampling.LANCZOS)
        top = gap
        text = _fit(draw, f"{caption} ({w}x{h}{shown_at})", font, col_w)
        draw.text((column_left, top), text, fill=_TEXT, font=font)
        top += text_h
        canvas.paste(shown, (left, top))
        box = [round(v * shrink) for v in (x0, y0, x0 + crop, y0 + crop)]
        draw.rectangle(
            [left + box[0], top + box[1], left + box[2] - 1, top + box[3] - 1],
            outline=_MARK,
            width=max(1, min(2, crop // 8)),
        )
        top += view[1] + gap
        zoom_caption = _fit(draw, f"{caption}: the red box ({crop}x{crop}) at {zoom}x", font, col_w)
        draw.text((column_left, top), zoom_caption, fill=_TEXT, font=font)
        top += text_h
        detail = full.crop((x0, y0, x0 + crop, y0 + crop))
        zoom_left = column_left + (col_w - zoomed) // 2
        canvas.paste(detail.resize((zoomed, zoomed), Image.Resampling.NEAREST), (zoom_left, top))
    return canvas


def write_comparison(
    path: PathArg,
    lr: torch.Tensor,
    sr: torch.Tensor,
    *,
    grey: bool = False,
    label: str = "csnln",
    icc_profile: bytes | None = None,
    overwrite: bool = False,
) -> Path:
    """Write :func:`make_comparison` of ``lr`` and ``sr`` to ``path`` (atomically)."""
    image = make_comparison(lr, sr, grey=grey, label=label)
    return write_picture(path, image, icc_profile=icc_profile, overwrite=overwrite)
