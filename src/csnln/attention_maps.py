"""Where CSNLN looks: the attention weights of one pixel, and pictures of them.

For a pixel of the LR image, :func:`attention_maps` runs the network once (whole image) and
returns, for every call of its non-local attentions (each SEM step; at x4 each of the two
projection stages), the pixel's softmax weights over all positions: the in-scale attention's
over the pixels of its input grid, the cross-scale attention's over the patches of that grid
downscaled by the attention's factor. :func:`attention_picture` lays them out over the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from .models.attention import CrossScaleAttention, InScaleAttention
from .models.descriptor import describe

__all__ = ["AttentionMap", "attention_maps", "attention_picture"]


@dataclass(frozen=True)
class AttentionMap:
    """The weights (summing to 1) one query pixel gives to every key position of one call.

    ``kind``: ``"in-scale"`` or ``"cross-scale"``; ``call``: the index of the call of this
    attention module in the forward pass (the SEM step, and at x4 the stage); ``weights``:
    H x W (in-scale) or H/u x W/u (cross-scale, one weight per key patch); ``query``: the
    pixel's (row, column) on the attention's own input grid, of size ``grid``.
    """

    kind: str
    call: int
    weights: torch.Tensor
    query: tuple[int, int]
    grid: tuple[int, int]


def _in_scale_row(module: InScaleAttention, x: torch.Tensor, y: int, x_: int) -> torch.Tensor:
    query = module.query(x)[0, :, y, x_]  # C/2
    key = module.key(x)[0]  # C/2, H, W
    scores = torch.einsum("c,chw->hw", query, key)
    return torch.softmax(scores.flatten(), 0).view_as(scores)


def _cross_scale_row(module: CrossScaleAttention, x: torch.Tensor, y: int, x_: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    half = module.patch_size // 2
    query = F.pad(module.query(x), (half, half, half, half))
    patch = query[0, :, y : y + 2 * half + 1, x_ : x_ + 2 * half + 1].reshape(-1)  # C/2 p p
    keys = module.patch_keys(x)[0]  # C/2 p p, L
    weights = torch.softmax(patch @ keys, 0)
    u = module.factor
    return weights.view(h // u, w // u)


def attention_maps(model: nn.Module, lr: torch.Tensor, at: tuple[int, int]) -> list[AttentionMap]:
    """The attention weights of LR pixel ``at`` = (row, column) in every attention call.

    ``lr``: 1 x 3 x h x w in [0, 1] (on the model's device). One whole-image forward pass in
    float32: its cost grows with the square of the pixel count, so keep images small.
    """
    if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
        raise ValueError(f"expected one 1 x 3 x H x W image, got shape {tuple(lr.shape)}")
    h, w = lr.shape[-2:]
    row, col = at
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"pixel (row {row}, column {col}) is outside the {h}x{w} image")
    inputs: list[tuple[nn.Module, torch.Tensor]] = []
    kinds = (InScaleAttention, CrossScaleAttention)
    handles = [
        module.register_forward_hook(lambda m, args, out: inputs.append((m, args[0].detach())))
        for module in model.modules()
        if isinstance(module, kinds)
    ]
    # The network pads the image to a multiple of its attention factor; the attentions run on
    # that grid (and at x4 also on twice it).
    m = describe(model).size_multiple
    padded_h, padded_w = h + -h % m, w + -w % m
    try:
        with torch.no_grad():
            model(lr)
            calls: dict[str, int] = {}
            maps = []
            for module, x in inputs:
                gh, gw = x.shape[-2:]
                y = min(gh - 1, row * gh // padded_h)  # the pixel on this grid
                x_ = min(gw - 1, col * gw // padded_w)
                if isinstance(module, InScaleAttention):
                    kind, weights = "in-scale", _in_scale_row(module, x, y, x_)
                else:
                    kind, weights = "cross-scale", _cross_scale_row(module, x, y, x_)
                maps.append(AttentionMap(kind, calls.get(kind, 0), weights.float().cpu(),
                                         (y, x_), (gh, gw)))  # fmt: skip
                calls[kind] = calls.get(kind, 0) + 1
    finally:
        for handle in handles:
            handle.remove()
    return maps


def attention_picture(
    lr: torch.Tensor, maps: list[AttentionMap], *, cell: int = 192, max_rows: int = 12
) -> Image.Image:
    """A grid of heat maps over the (greyed) LR image: one row per call, in-scale left,
    cross-scale right; red in proportion to each weight over the map's largest, the query
    pixel circled in green."""
    grey = lr[0].mean(0).clamp(0, 1).numpy()
    by_kind: dict[str, list[AttentionMap]] = {"in-scale": [], "cross-scale": []}
    for m in maps:
        by_kind[m.kind].append(m)
    rows = min(max_rows, max(len(v) for v in by_kind.values()))
    h, w = grey.shape
    size = (cell, max(1, round(cell * h / w))) if w >= h else (max(1, round(cell * w / h)), cell)
    gap, text = 6, 16
    canvas = Image.new("RGB", (2 * size[0] + 3 * gap, rows * (size[1] + text + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for column, kind in enumerate(("in-scale", "cross-scale")):
        for r, m in enumerate(by_kind[kind][:rows]):
            left, top = gap + column * (size[0] + gap), gap + r * (size[1] + text + gap)
            draw.text((left, top), f"{kind}, call {m.call + 1}", fill="black")
            heat = m.weights / m.weights.max().clamp_min(1e-12)
            heat_img = Image.fromarray((heat.numpy() * 255).astype(np.uint8)).resize(size)
            base = Image.fromarray((grey * 255).astype(np.uint8)).resize(size).convert("RGB")
            red = Image.new("RGB", size, (255, 0, 0))
            shown = Image.composite(red, base, heat_img)
            canvas.paste(shown, (left, top + text))
            qy = (m.query[0] + 0.5) / m.grid[0] * size[1]
            qx = (m.query[1] + 0.5) / m.grid[1] * size[0]
            cx, cy, radius = left + qx, top + text + qy, 5
            box = [cx - radius, cy - radius, cx + radius, cy + radius]
            draw.ellipse(box, outline=(0, 200, 0), width=2)
    return canvas
