"""The bundled weights: installed with the package, the default model, better than bicubic."""

from __future__ import annotations

import pytest
from conftest import BENCHMARK

from csnln import upscaling, zoo
from csnln.cli import main
from csnln.evaluation import evaluate


def test_small_x2_is_installed_and_the_default() -> None:
    assert 2 in zoo.bundled_models()["small"]
    assert upscaling.default_model_name(2) == "small"
    model = zoo.load_model("small", 2)
    assert (model.scale, model.n_feats, model.depth) == (2, 32, 4)


def test_models_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    assert "small" in capsys.readouterr().out


def test_small_x2_beats_bicubic_on_set5() -> None:
    set5 = BENCHMARK / "Set5"
    if not set5.is_dir():
        pytest.skip(f"benchmark images not available ({set5} missing: ../shared is absent)")
    small, bicubic = (
        evaluate(model, [set5], [2], device="cpu", progress=False)[0]
        for model in ("small", "bicubic")
    )
    assert small.images == bicubic.images == 5
    # measured when the weights were committed: 36.435 dB against bicubic's 33.682 dB
    assert small.psnr > bicubic.psnr + 2.5
    assert small.ssim > bicubic.ssim
