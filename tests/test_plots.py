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
        assert len(set(image.convert("RGB").getdata())) > 5


def test_an_empty_chart_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        cloud_chart({"a": []}, tmp_path / "c.png", title="t", x_label="x", y_label="y")
    with pytest.raises(ValueError, match="nothing to plot"):
        line_chart({"a": []}, tmp_path / "l.png", title="t")
    assert not (tmp_path / "c.png").exists()
