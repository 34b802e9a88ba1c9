"""csnln.plots: the charts of the reports are written as PNGs of the asked size, and an
empty chart is refused rather than drawn blank."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from csnln.plots import cloud_chart, line_chart, scatter_chart


def test_each_chart_writes_a_png_of_the_asked_size(tmp_path: Path) -> None:
    line = line_chart({"a": [(0, 30.0), (10, 31.0)]}, tmp_path / "l.png", title="t")
    scatter = scatter_chart({"a": (1.0, 30.0, 0.1)}, tmp_path / "s.png", title="t", x_label="x")
    cloud = cloud_chart(
        {"a": [(0.8, 0.1), (0.9, -0.1)], "b": [(0.85, 0.0)]},
        tmp_path / "c.png",
        title="t",
        x_label="x",
        y_label="y",
        refs={"zero": 0.0},
        size=(640, 400),
    )
    for path, size in ((line, (900, 520)), (scatter, (900, 520)), (cloud, (640, 400))):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == size
    with Image.open(cloud) as image:  # the dots are drawn: not only white and the frame
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 5


def test_reference_lines_are_drawn_on_line_and_cloud_charts(tmp_path: Path) -> None:
    """A reference line (a row of its grey across the plot, hundreds of pixels; the text's
    anti-aliasing has a few of that grey) appears only where ``refs`` are given."""

    def has_reference_grey(path: Path) -> bool:
        with Image.open(path) as image:
            colours = dict((c, n) for n, c in image.convert("RGB").getcolors(1 << 16) or [])
        return colours.get((150, 150, 150), 0) > 300

    curve = {"a": [(0, 30.0), (10, 31.0)]}
    assert not has_reference_grey(line_chart(curve, tmp_path / "l0.png", title="t"))
    with_ref = line_chart(curve, tmp_path / "l1.png", title="t", refs={"bicubic": 30.5})
    assert has_reference_grey(with_ref)
    cloud = {"a": [(0.8, 0.1), (0.9, -0.1)]}
    plain = cloud_chart(cloud, tmp_path / "c0.png", title="t", x_label="x", y_label="y")
    assert not has_reference_grey(plain)
    zero = cloud_chart(
        cloud, tmp_path / "c1.png", title="t", x_label="x", y_label="y", refs={"zero": 0.0}
    )
    assert has_reference_grey(zero)


def test_an_empty_chart_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        cloud_chart({"a": []}, tmp_path / "c.png", title="t", x_label="x", y_label="y")
    with pytest.raises(ValueError, match="nothing to plot"):
        line_chart({"a": []}, tmp_path / "l.png", title="t")
    assert not (tmp_path / "c.png").exists()
