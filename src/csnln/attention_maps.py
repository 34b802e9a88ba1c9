"""Where CSNLN borrows from: the attention weights of a pixel (or a rectangle), their peaks,
their spread, and a picture a person can read.

For a pixel of the LR image, :func:`attention_maps` runs the network once (whole image) and
returns, for every call of its non-local attentions (each SEM step; at x4 each of the two
projection stages), the pixel's softmax weights over all key positions: the in-scale
attention's over the pixels of its input grid, the cross-scale attention's over the patches
of that grid downscaled by the attention's factor ``u``. For a rectangle, the weights are the
mean of its pixels' weights.

Each :class:`AttentionMap` gives its :meth:`~AttentionMap.top_k` matches, each with the box
it covers in LR pixels: for the cross-scale branch, the ``p x p`` patch on the small grid
that was matched and the larger ``u p x u p`` patch of the full-size grid that it pastes
(the exemplar), and its :attr:`~AttentionMap.entropy_bits` (how spread the weights are:
``2 ** entropy`` is the number of equally weighted positions it amounts to).
:func:`attention_picture` draws them: weights on a log scale relative to the peak (so the
peaks stand out of the floor), the top matches outlined and numbered, the entropy in each
panel's title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from .models.attention import CrossScaleAttention, InScaleAttention
from .models.descriptor import describe

__all__ = ["AttentionMap", "Box", "Match", "attention_maps", "attention_picture"]

#: A rectangle in LR pixel coordinates: (top, left, bottom, right), bottom/right exclusive.
Box = tuple[float, float, float, float]
#: Decades below the peak that the log scale of the picture shows (weights below: floor).
LOG_DECADES = 3.0


@dataclass(frozen=True)
class Match:
    """One of the largest weights of a map.

    ``key``: (row, column) of the key position on the key grid (the attention's input grid
    for in-scale; that grid downscaled by ``u`` for cross-scale); ``matched``: the box the
    query was compared with, on the key grid (a pixel for in-scale; for cross-scale the
    ``p x p`` patch of the small grid); ``pasted``: the box of the LR image whose features
    are added into the query's output (for cross-scale the ``u p x u p`` patch, the larger
    exemplar; for in-scale the key pixel), in LR pixels.
    """

    rank: int
    weight: float
    key: tuple[int, int]
    matched: Box
    pasted: Box


@dataclass(frozen=True)
class AttentionMap:
    """The weights (summing to 1) a query gives to every key position in one call.

    ``kind``: ``"in-scale"`` or ``"cross-scale"``; ``call``: the index of the call of this
    attention in the forward pass; ``step``: its SEM step (0-based; at x4 two calls per
    step, the two projection stages); ``weights``: the key grid's H x W (in-scale) or
    H/u x W/u (cross-scale); ``query``: the query's (row, column) on the attention's input
    grid, of size ``grid`` (for a rectangle, its centre), ``query_box``: the query pixel(s)
    in LR pixels; ``image``: the LR image's (height, width) as the network padded it (to its
    size multiple, at the bottom and right); ``factor``: ``u`` (1 for in-scale); ``patch``:
    the matching patch size ``p``; ``stage``/``stages``: the projection stage of the call
    within its step, and how many a step has (2 at x4, else 1).
    """

    kind: str
    call: int
    weights: torch.Tensor
    query: tuple[int, int]
    grid: tuple[int, int]
    step: int = 0
    query_box: Box = (0.0, 0.0, 1.0, 1.0)
    image: tuple[int, int] = (1, 1)
    factor: int = 1
    patch: int = 1
    stage: int = 0
    stages: int = 1

    @property
    def entropy_bits(self) -> float:
        """Shannon entropy of the weights in bits (0: all on one position; log2 of the
        number of positions: uniform)."""
        w = self.weights.double().flatten()
        w = w[w > 0]
        return float(-(w * w.log2()).sum())

    @property
    def positions(self) -> int:
        return self.weights.numel()

    def _grid_to_image(self, row: float, col: float) -> tuple[float, float]:
        """A point of the attention's input grid in LR pixel coordinates (the grid covers the
        image padded to the network's size multiple; at x4's second stage, twice as finely)."""
        scale_y, scale_x = _grid_scale(self.grid, self.image)
        return row * scale_y, col * scale_x

    def _box(self, centre_row: float, centre_col: float, size: float) -> Box:
        top, left = self._grid_to_image(centre_row - size / 2, centre_col - size / 2)
        bottom, right = self._grid_to_image(centre_row + size / 2, centre_col + size / 2)
        h, w = self.image
        return (max(0.0, top), max(0.0, left), min(float(h), bottom), min(float(w), right))

    def top_k(self, k: int = 5) -> list[Match]:
        """The ``k`` largest weights, largest first, with the boxes they cover."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        values, indices = self.weights.flatten().topk(min(k, self.positions))
        width = self.weights.shape[1]
        matches = []
        for rank, (value, index) in enumerate(zip(values.tolist(), indices.tolist(), strict=True)):
            row, col = divmod(index, width)
            u = self.factor
            # Key (row, col) on the small grid is centred on input-grid (u row + (u-1)/2 + 1/2).
            centre = (u * row + u / 2, u * col + u / 2)
            pasted = self._box(*centre, u * self.patch if u > 1 else 1)
            half = self.patch / 2 if u > 1 else 0.5
            matched = (row + 0.5 - half, col + 0.5 - half, row + 0.5 + half, col + 0.5 + half)
            matches.append(Match(rank + 1, value, (row, col), matched, pasted))
        return matches


def _grid_scale(grid: tuple[int, int], image: tuple[int, int]) -> tuple[float, float]:
    """LR pixels per pixel of an attention's grid (1, or 1/2 at x4's second stage)."""
    return image[0] / grid[0], image[1] / grid[1]


def attention_maps(
    model: nn.Module,
    lr: torch.Tensor,
    at: tuple[int, int] | None = None,
    *,
    region: tuple[int, int, int, int] | None = None,
) -> list[AttentionMap]:
    """The attention weights of LR pixel ``at`` = (row, column), or the mean weights of the
    pixels of ``region`` = (top, left, height, width), in every attention call.

    ``lr``: 1 x 3 x h x w in [0, 1] (on the model's device). One whole-image forward pass in
    float32: its cost grows with the square of the pixel count, so keep images small.
    """
    if lr.dim() != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
        raise ValueError(f"expected one 1 x 3 x H x W image, got shape {tuple(lr.shape)}")
    if (at is None) == (region is None):
        raise ValueError("give either a pixel (at) or a region, not both")
    h, w = lr.shape[-2:]
    if at is not None:
        row, col = at
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"pixel (row {row}, column {col}) is outside the {h}x{w} image")
        region = (row, col, 1, 1)
    assert region is not None
    top, left, height, width = region
    if height < 1 or width < 1 or top < 0 or left < 0 or top + height > h or left + width > w:
        raise ValueError(
            f"region (top {top}, left {left}, {height}x{width}) is not inside the {h}x{w} image"
        )
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
    depth = getattr(model, "depth", None) or 1
    try:
        with torch.no_grad():
            model(lr)
            calls: dict[str, int] = {}
            maps = []
            per_kind = sum(isinstance(mod, InScaleAttention) for mod, _ in inputs)
            per_step = max(1, per_kind // depth)
            for module, x in inputs:
                gh, gw = x.shape[-2:]
                y0, y1 = (
                    top * gh // padded_h,
                    max(top * gh // padded_h + 1, (top + height) * gh // padded_h),
                )
                x0, x1 = (
                    left * gw // padded_w,
                    max(left * gw // padded_w + 1, (left + width) * gw // padded_w),
                )
                rows = torch.arange(y0, min(y1, gh))
                cols = torch.arange(x0, min(x1, gw))
                positions = (rows[:, None] * gw + cols[None, :]).flatten()
                centre = (min(gh - 1, (y0 + y1 - 1) // 2), min(gw - 1, (x0 + x1 - 1) // 2))
                x = x.float()
                if isinstance(module, InScaleAttention):
                    kind, weights = "in-scale", module.attention_weights(x, positions)
                    factor, patch = 1, 1
                else:
                    kind, weights = "cross-scale", module.attention_weights(x, positions)
                    factor, patch = module.factor, module.patch_size
                call = calls.get(kind, 0)
                maps.append(
                    AttentionMap(
                        kind,
                        call,
                        weights.cpu(),
                        centre,
                        (gh, gw),
                        step=call // per_step,
                        query_box=(
                            float(top),
                            float(left),
                            float(top + height),
                            float(left + width),
                        ),
                        image=(padded_h, padded_w),
                        factor=factor,
                        patch=patch,
                        stage=call % per_step,
                        stages=per_step,
                    )
                )
                calls[kind] = call + 1
    finally:
        for handle in handles:
            handle.remove()
    return maps


# --- the picture -----------------------------------------------------------------------------

WeightScale = Literal["log", "rank", "linear"]
_QUERY = (0, 200, 0)
_MATCH = (0, 200, 255)


def _heat(weights: torch.Tensor, scale: WeightScale) -> np.ndarray:
    """Weights as 0..1 per position: log10 relative to the peak over LOG_DECADES decades;
    rank (the largest 1, the smallest 0); or linear relative to the peak."""
    w = weights.double()
    if scale == "log":
        rel = (w / w.max().clamp_min(1e-300)).clamp_min(10**-LOG_DECADES).log10()
        return ((rel + LOG_DECADES) / LOG_DECADES).float().numpy()
    if scale == "rank":
        order = w.flatten().argsort().argsort().double()
        return (order / max(1, order.numel() - 1)).view_as(w).float().numpy()
    if scale == "linear":
        return (w / w.max().clamp_min(1e-300)).float().numpy()
    raise ValueError(f"scale must be log, rank or linear, got {scale!r}")


def _overlay(grey: np.ndarray, heat: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """Grey image with the heat in yellow-to-red, opaque in proportion to the heat."""
    base = Image.fromarray((grey * 255).astype(np.uint8)).resize(size).convert("RGB")
    alpha = Image.fromarray((heat.clip(0, 1) * 220).astype(np.uint8)).resize(size, Image.NEAREST)
    h = np.asarray(alpha, dtype=np.float32) / 220
    colour = np.stack([np.full_like(h, 255), 230 * (1 - h), np.zeros_like(h)], -1).astype(np.uint8)
    return Image.composite(Image.fromarray(colour), base, alpha)


def _rect(
    draw: ImageDraw.ImageDraw,
    box: Box,
    sy: float,
    sx: float,
    ox: int,
    oy: int,
    colour: tuple[int, int, int],
    width: int = 2,
) -> None:
    top, left, bottom, right = box
    draw.rectangle(
        [
            ox + left * sx,
            oy + top * sy,
            ox + max(right * sx - 1, left * sx + 2),
            oy + max(bottom * sy - 1, top * sy + 2),
        ],
        outline=colour,
        width=width,
    )


def attention_picture(
    lr: torch.Tensor,
    maps: Sequence[AttentionMap],
    *,
    top_k: int = 5,
    scale: WeightScale = "log",
    cell: int = 256,
    max_rows: int = 12,
) -> Image.Image:
    """One row per SEM step (per call at x4): the in-scale weights over the image; the
    cross-scale weights over the image, each key patch spread over the ``u p`` area it
    pastes; and the small grid the cross-scale attention matched on, with its ``p x p``
    patches. Weights coloured on ``scale`` (default: log relative to the peak); the query in
    green; the ``top_k`` matches outlined in blue and numbered; each title gives the
    entropy."""
    grey = lr[0].float().mean(0).clamp(0, 1).cpu().numpy()
    h, w = grey.shape
    size = (cell, max(1, round(cell * h / w))) if w >= h else (max(1, round(cell * w / h)), cell)
    rows = [m for m in maps if m.kind == "in-scale"][:max_rows]
    cross = [m for m in maps if m.kind == "cross-scale"][:max_rows]
    n_rows = max(len(rows), len(cross))
    gap, title = 8, 30
    panels = 3
    legend = 40
    canvas = Image.new(
        "RGB",
        (panels * size[0] + (panels + 1) * gap, n_rows * (size[1] + title + gap) + gap + legend),
        "white",
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    sy, sx = size[1] / h, size[0] / w
    for r in range(n_rows):
        oy = gap + r * (size[1] + title + gap)
        for column, m in enumerate(
            [rows[r] if r < len(rows) else None, cross[r] if r < len(cross) else None]
        ):
            if m is None:
                continue
            ox = gap + column * (size[0] + gap)
            heat = _heat(m.weights, scale)
            if m.kind == "cross-scale":
                # Each key patch's weight over the u x u block of the full grid it centres on.
                heat = np.kron(heat, np.ones((m.factor, m.factor), dtype=np.float32))
            heat_img = _crop_to_image(heat, m, (h, w))
            canvas.paste(_overlay(grey, heat_img, size), (ox, oy + title))
            stage = f" stage {m.stage + 1}" if m.stages > 1 else ""
            draw.text(
                (ox, oy),
                f"step {m.step + 1}{stage} {m.kind}\nH = {m.entropy_bits:.1f} bits "
                f"(~{2**m.entropy_bits:,.0f} of {m.positions:,})",
                fill="black",
                font=font,
            )
            _rect(draw, m.query_box, sy, sx, ox, oy + title, _QUERY)
            qt, ql, qb, qr = m.query_box
            cy, cx = oy + title + (qt + qb) / 2 * sy, ox + (ql + qr) / 2 * sx
            draw.ellipse([cx - 7, cy - 7, cx + 7, cy + 7], outline=_QUERY, width=2)
            for match in m.top_k(top_k):
                _rect(draw, match.pasted, sy, sx, ox, oy + title, _MATCH)
                draw.text(
                    (ox + match.pasted[1] * sx + 2, oy + title + match.pasted[0] * sy + 1),
                    str(match.rank),
                    fill=_MATCH,
                    font=font,
                )
            if m.kind == "cross-scale":
                _small_grid_panel(
                    canvas,
                    draw,
                    lr,
                    m,
                    top_k,
                    scale,
                    size,
                    gap + 2 * (size[0] + gap),
                    oy,
                    title,
                    font,
                )
    _legend(draw, canvas.size, legend, scale, font)
    return canvas


def _crop_to_image(heat: np.ndarray, m: AttentionMap, image: tuple[int, int]) -> np.ndarray:
    """The part of a grid-sized heat map that covers the (unpadded) image."""
    sy, sx = _grid_scale(m.grid, m.image)
    gh = min(heat.shape[0], math.ceil(image[0] / sy))
    gw = min(heat.shape[1], math.ceil(image[1] / sx))
    return heat[:gh, :gw]


def _small_grid_panel(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    lr: torch.Tensor,
    m: AttentionMap,
    top_k: int,
    scale: WeightScale,
    size: tuple[int, int],
    ox: int,
    oy: int,
    title: int,
    font: ImageFont.ImageFont,
) -> None:
    """The downscaled image the cross-scale keys come from, its p x p matched patches."""
    u = m.factor
    small = F.interpolate(lr.float(), scale_factor=1 / u, mode="bilinear", align_corners=False)
    grey = small[0].mean(0).clamp(0, 1).cpu().numpy()
    heat = _heat(m.weights, scale)[: grey.shape[0], : grey.shape[1]]
    canvas.paste(_overlay(grey, heat, size), (ox, oy + title))
    sy, sx = size[1] / grey.shape[0], size[0] / grey.shape[1]
    draw.text(
        (ox, oy),
        f"step {m.step + 1} cross-scale: the 1/{u} grid it\nmatched on (p = {m.patch})",
        fill="black",
        font=font,
    )
    for match in m.top_k(top_k):
        box = match.matched
        _rect(draw, box, sy, sx, ox, oy + title, _MATCH)
        draw.text(
            (ox + box[1] * sx + 2, oy + title + box[0] * sy + 1),
            str(match.rank),
            fill=_MATCH,
            font=font,
        )


def _legend_colour(t: float, base: int = 128) -> tuple[int, int, int]:
    """The overlay's colour at heat ``t`` over a mid-grey pixel (as :func:`_overlay` blends)."""
    a = t * 220 / 255
    colour = (255, 230 * (1 - t), 0)
    return tuple(round(base * (1 - a) + c * a) for c in colour)  # type: ignore[return-value]


def _legend(
    draw: ImageDraw.ImageDraw,
    size: tuple[int, int],
    height: int,
    scale: WeightScale,
    font: ImageFont.ImageFont,
) -> None:
    width = min(300, size[0] - 20)
    top = size[1] - height + 8
    for i in range(width):
        draw.line([10 + i, top, 10 + i, top + 10], fill=_legend_colour(i / (width - 1)))
    low = {"log": f"1e-{LOG_DECADES:.0f} x peak or less", "rank": "lowest", "linear": "0"}
    high = {"log": "peak (log scale)", "rank": "highest rank", "linear": "peak (linear)"}
    draw.text((10, top + 14), low[scale], fill="black", font=font)
    draw.text((10 + width - 6 * len(high[scale]), top + 14), high[scale], fill="black", font=font)
    draw.text(
        (width + 24, top),
        "green: the query; blue, numbered: the top matches",
        fill="black",
        font=font,
    )
