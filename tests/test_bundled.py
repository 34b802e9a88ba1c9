"""The bundled weights: installed with the package, the default model, better than bicubic."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BENCHMARK

from csnln import zoo
from csnln.cli import main
from csnln.evaluation import evaluate


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_small_is_installed_and_the_default(scale: int) -> None:
    assert scale in zoo.bundled_models()["small"]
    assert zoo.default_model_name(scale) == "small"
    model = zoo.load_model("small", scale)
    # the wider, shallower shape at every scale (docs/models.md, recipe item 4)
    assert (model.scale, model.n_feats, model.depth) == (scale, 64, 1)


def test_models_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    assert "small" in capsys.readouterr().out


#: PSNR over bicubic's that the bundled weights must beat, measured when they were committed
#: (`csnln eval --model small`): x2 on Set5 +2.75 dB; x3 and x4 on Set5 without "baby" (whose
#: 27 s at x4 on 2 cores would dominate the suite) +2.21 and +1.90 dB.
MARGIN_DB = {2: 2.5, 3: 1.75, 4: 1.5}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_small_beats_bicubic_on_set5(scale: int, tmp_path: Path) -> None:
    set5 = BENCHMARK / "Set5"
    if not set5.is_dir():
        pytest.skip(f"benchmark images not available ({set5} missing: ../shared is absent)")
    if scale > 2:
        (tmp_path / "Set5").mkdir()
        for image in sorted((set5 / "HR").glob("*.png")):
            if image.stem != "baby":
                (tmp_path / "Set5" / image.name).symlink_to(image)
        set5 = tmp_path / "Set5"
    small, bicubic = (
        evaluate(model, [set5], [scale], device="cpu", progress=False)[0]
        for model in ("small", "bicubic")
    )
    assert small.images == bicubic.images == (5 if scale == 2 else 4)
    assert small.psnr > bicubic.psnr + MARGIN_DB[scale]
    assert small.ssim > bicubic.ssim
