"""``csnln demo``: the bundled model on the bundled sample, measured and written."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from csnln.cli import main
from csnln.demo import SAMPLE, demo


def test_sample_is_installed() -> None:
    assert Image.open(SAMPLE).size == (256, 256)


def test_demo_beats_bicubic_and_writes_its_files(tmp_path: Path) -> None:
    result = demo(2, tmp_path, device="cpu")
    # measured when written: bicubic 27.44 dB, the bundled x2 32.61 dB
    assert result.psnr_model > result.psnr_bicubic + 3
    assert result.ssim_model > result.ssim_bicubic
    names = sorted(p.name for p in result.files)
    assert names == ["butterfly_x2_compare.png", "butterfly_x2_csnln.png", "butterfly_x2_lr.png"]
    assert Image.open(tmp_path / "butterfly_x2_lr.png").size == (128, 128)
    assert Image.open(tmp_path / "butterfly_x2_csnln.png").size == (256, 256)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--scale", "3", "--model", "bicubic", "-o", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bicubic" in out and "dB" in out and "butterfly_x3_compare.png" in out
    assert main(args) == 1  # never overwrites without being asked
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["demo", "--model", "nope.pt", "-o", str(tmp_path)]) == 2
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--precision" in capsys.readouterr().out
