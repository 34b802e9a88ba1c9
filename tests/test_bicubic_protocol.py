"""Acceptance: bicubic baseline on Set5 reproduces the published Python-protocol numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SET5 = REPO / ".." / "shared" / "data" / "benchmark" / "Set5" / "HR"

# mean PSNR (dB) / SSIM, Y channel, `scale` pixels cropped at each border
EXPECTED_SET5 = {2: (33.6818, 0.93052), 3: (30.4047, 0.86897), 4: (28.4314, 0.81127)}


def _load_baseline():
    spec = importlib.util.spec_from_file_location(
        "bicubic_baseline", REPO / "benchmarks" / "bicubic_baseline.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic(scale):
    if not SET5.is_dir():
        pytest.skip(f"Set5 not available at {SET5.resolve()}")
    baseline = _load_baseline()
    p, s, n = baseline.evaluate_dataset(SET5, scale)
    assert n == 5
    exp_p, exp_s = EXPECTED_SET5[scale]
    assert p == pytest.approx(exp_p, abs=0.01)
    assert s == pytest.approx(exp_s, abs=0.001)
