"""Small charts as PNG files, drawn with Pillow (no plotting library needed).

:func:`line_chart`: one line per series (validation PSNR against training steps);
:func:`scatter_chart`: one labelled point per variant (final PSNR against cost);
:func:`cloud_chart`: many unlabelled points per series (one per image).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_write

__all__ = ["COLOURS", "cloud_chart", "line_chart", "scatter_chart"]

#: Series colours, in order (matplotlib's first ten).
COLOURS = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
_GREY = (120, 120, 120)


class _Axes:
    """A plot area with linear x and y ranges, its frame, ticks and axis labels."""

    def __init__(
        self,
        draw: ImageDraw.ImageDraw,
        size: tuple[int, int],
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        *,
        margins: tuple[int, int, int, int] = (70, 240, 40, 50),
    ) -> None:
        self.draw, self.size = draw, size
        self.left, self.right, self.top, self.bottom = margins
        self.x0, self.x1 = x_range if x_range[1] > x_range[0] else (x_range[0], x_range[0] + 1)
        self.y0, self.y1 = y_range if y_range[1] > y_range[0] else (y_range[0], y_range[0] + 1)
        self.font = ImageFont.load_default()

    def xy(self, x: float, y: float) -> tuple[float, float]:
        width, height = self.size
        px = self.left + (width - self.left - self.right) * (x - self.x0) / (self.x1 - self.x0)
        py = self.top + (height - self.top - self.bottom) * (self.y1 - y) / (self.y1 - self.y0)
        return px, py

    def frame(self, title: str, x_label: str, y_label: str, x_format: str) -> None:
        width, height = self.size
        d = self.draw
        d.rectangle([self.left, self.top, width - self.right, height - self.bottom], outline=_GREY)
        for k in range(6):
            y_value = self.y0 + (self.y1 - self.y0) * k / 5
            _, py = self.xy(self.x0, y_value)
            d.line([self.left - 4, py, self.left, py], fill=_GREY)
            d.text((8, py - 6), f"{y_value:.2f}", fill="black", font=self.font)
            x_value = self.x0 + (self.x1 - self.x0) * k / 5
            px, _ = self.xy(x_value, self.y0)
            d.line([px, height - self.bottom, px, height - self.bottom + 4], fill=_GREY)
            d.text(
                (px - 15, height - self.bottom + 8),
                format(x_value, x_format),
                fill="black",
                font=self.font,
            )
        d.text((self.left, 12), title, fill="black", font=self.font)
        d.text((8, self.top - 16), y_label, fill="black", font=self.font)
        d.text((width // 2 - 60, height - 18), x_label, fill="black", font=self.font)

    def reference_lines(self, refs: Mapping[str, float]) -> None:
        """Horizontal grey lines across the plot, each named at the right."""
        width = self.size[0]
        for name, value in refs.items():
            _, py = self.xy(self.x0, value)
            self.draw.line([self.left, py, width - self.right, py], fill=(150, 150, 150))
            label = f"{name} {value:.2f}"
            self.draw.text((width - self.right + 8, py - 6), label, fill=(90, 90, 90))

    def legend(self, row: int, text: str, colour: tuple[int, int, int]) -> None:
        """Legend line ``row`` on the right, below the reference lines' labels."""
        y = self.top + 160 + 16 * row
        self.draw.text((self.size[0] - self.right + 8, y), text, fill=colour, font=self.font)


def _range(values: Sequence[float], pad: float) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        raise ValueError("nothing to plot: no finite values")
    return min(finite) - pad, max(finite) + pad


def _save(image: Image.Image, out: str | PathLike[str]) -> Path:
    return atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    out: str | PathLike[str],
    *,
    title: str,
    x_label: str = "training step",
    y_label: str = "PSNR (dB)",
    refs: Mapping[str, float] | None = None,
    bands: Mapping[str, Sequence[tuple[float, float, float]]] | None = None,
    value_format: str = ".2f",
    size: tuple[int, int] = (900, 520),
) -> Path:
    """One line per series of (x, y) points, the legend on the right with each series' last
    value (``value_format``); ``refs`` are horizontal reference lines; ``bands`` (by series
    name: (x, low, high) points, e.g. the seeds' range) are shaded in the series' colour.
    Written atomically; returns ``out``."""
    refs = dict(refs or {})
    bands = dict(bands or {})
    points = [p for s in series.values() for p in s]
    if not points:
        raise ValueError("nothing to plot: every series is empty")
    edges = [v for band in bands.values() for _, low, high in band for v in (low, high)]
    x_range = (0.0, max(x for x, _ in points))
    y_range = _range([y for _, y in points] + edges + list(refs.values()), 0.1)
    image = Image.new("RGB", size, "white")
    axes = _Axes(ImageDraw.Draw(image), size, x_range, y_range)
    # whole numbers for steps; decimals where the axis spans a few units (CPU-hours)
    axes.frame(title, x_label, y_label, ",.0f" if x_range[1] >= 10 else ".2f")
    axes.reference_lines(refs)
    d = axes.draw
    for i, name in enumerate(series):
        band = [b for b in bands.get(name, []) if math.isfinite(b[1]) and math.isfinite(b[2])]
        if len(band) > 1:
            tint = tuple(255 - (255 - c) // 4 for c in COLOURS[i % len(COLOURS)])
            outline = [axes.xy(x, high) for x, _, high in band]
            outline += [axes.xy(x, low) for x, low, _ in reversed(band)]
            d.polygon(outline, fill=tint)
    if bands:
        axes.reference_lines(refs)  # over the shading
    for i, (name, curve) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [axes.xy(x, y) for x, y in curve if math.isfinite(y)]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        for px, py in line:
            d.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        last = f": {curve[-1][1]:{value_format}}" if curve else ""
        axes.legend(i, f"{name}{last}", colour)
    return _save(image, out)


def scatter_chart(
    points: Mapping[str, tuple[float, float, float]],
    out: str | PathLike[str],
    *,
    title: str,
    x_label: str,
    y_label: str = "PSNR (dB)",
    size: tuple[int, int] = (900, 520),
) -> Path:
    """One labelled point per entry ``name: (x, y, spread)``; ``spread`` (the seeds' range,
    0 for one seed) is drawn as a vertical bar through the point. Written atomically."""
    if not points:
        raise ValueError("nothing to plot: no points")
    xs = [x for x, _, _ in points.values()]
    pad_x = 0.08 * (max(xs) - min(xs) or max(abs(xs[0]), 1.0))
    lows = [y - s / 2 for _, y, s in points.values()]
    highs = [y + s / 2 for _, y, s in points.values()]
    image = Image.new("RGB", size, "white")
    axes = _Axes(
        ImageDraw.Draw(image),
        size,
        (min(xs) - pad_x, max(xs) + pad_x),
        _range(lows + highs, 0.05),
    )
    axes.frame(title, x_label, y_label, ".3g")
    d = axes.draw
    for i, (name, (x, y, spread)) in enumerate(points.items()):
        colour = COLOURS[i % len(COLOURS)]
        px, py = axes.xy(x, y)
        if spread > 0:
            _, top = axes.xy(x, y + spread / 2)
            _, bottom = axes.xy(x, y - spread / 2)
            d.line([px, top, px, bottom], fill=colour, width=1)
        d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=colour)
        d.text((px + 6, py - 12), str(i + 1), fill=colour, font=axes.font)
        axes.legend(i, f"{i + 1} {name}: {y:.2f}", colour)
    return _save(image, out)


def cloud_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    out: str | PathLike[str],
    *,
    title: str,
    x_label: str,
    y_label: str,
    refs: Mapping[str, float] | None = None,
    size: tuple[int, int] = (900, 520),
) -> Path:
    """Every (x, y) point of every series as a small dot, one colour per series, the legend
    on the right with each series' point count; ``refs`` are horizontal reference lines.
    Written atomically; returns ``out``."""
    refs = dict(refs or {})
    points = [p for s in series.values() for p in s]
    if not points:
        raise ValueError("nothing to plot: every series is empty")
    xs = [x for x, _ in points]
    pad_x = 0.04 * (max(xs) - min(xs) or 1.0)
    ys = [y for _, y in points] + list(refs.values())
    pad_y = 0.04 * (max(ys) - min(ys) or 1.0)
    image = Image.new("RGB", size, "white")
    axes = _Axes(ImageDraw.Draw(image), size, (min(xs) - pad_x, max(xs) + pad_x), _range(ys, pad_y))
    axes.frame(title, x_label, y_label, ".3g")
    axes.reference_lines(refs)
    d = axes.draw
    for i, (name, cloud) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        for x, y in cloud:
            if math.isfinite(x) and math.isfinite(y):
                px, py = axes.xy(x, y)
                d.ellipse([px - 3, py - 3, px + 3, py + 3], outline=colour, width=1)
        axes.legend(i, f"{name} ({len(cloud)})", colour)
    return _save(image, out)
