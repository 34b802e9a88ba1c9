"""The window sweep of the window study (csnln.ablation.windows): crops, scores, its cache,
the tables and the choice on the validation split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csnln import CSNLN, save_checkpoint
from csnln.ablation import Variant
from csnln.ablation.windows import (
    CROP,
    SweepPoint,
    centre_crops,
    chosen_windows,
    sweep_run,
    sweep_table,
)


def _image(path: Path, h: int, w: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    Image.fromarray(base).resize((w, h), Image.BICUBIC).save(path)
    return str(path)


def test_centre_crops_are_central_and_at_most_the_crop(tmp_path: Path) -> None:
    big = _image(tmp_path / "big.png", 2 * CROP + 40, 2 * CROP + 20, 0)
    small = _image(tmp_path / "small.png", 30, 41, 1)
    (name, hr, lr), (_, hr_small, lr_small) = centre_crops([big, small])
    assert name == "big.png" and tuple(hr.shape) == (3, 2 * CROP, 2 * CROP)
    assert tuple(lr.shape) == (3, CROP, CROP) and lr.dtype == torch.uint8
    assert tuple(hr_small.shape) == (3, 30, 40) and tuple(lr_small.shape) == (3, 15, 20)


def test_sweep_run_scores_every_window_once_and_reuses_its_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(CSNLN(2, n_feats=8, depth=1), run / "final.safetensors")
    files = [_image(tmp_path / f"{i}.png", 40, 48, i) for i in range(2)]
    seen: list[int] = []
    scores = sweep_run(run, {"tiny": files}, windows=(8, 0), on_point=lambda *a: seen.append(a[2]))
    assert seen == [8, 0] and set(scores["tiny"]) == {8, 0}
    assert all(math.isfinite(p.psnr) and p.images == 2 for p in scores["tiny"].values())
    # The whole crop is the whole model on it: different from tiles of 8 at their seams.
    assert scores["tiny"][8].psnr != scores["tiny"][0].psnr
    cached = json.loads((run / f"window_sweep_crop{CROP}.json").read_text())
    assert set(cached["tiny"]) == {"8", "0"}
    seen.clear()
    again = sweep_run(run, {"tiny": files}, windows=(8, 0), on_point=lambda *a: seen.append(a[2]))
    assert seen == [] and again == scores  # nothing re-scored


def _points(psnr_by_window: dict[int, float]) -> dict[int, SweepPoint]:
    return {w: SweepPoint(p, 1.0, 3) for w, p in psnr_by_window.items()}


def test_tables_difference_to_the_reference_and_choice_on_the_holdout() -> None:
    cell = Variant(("local", "in_scale", "cross_scale"), "projection", 3, 1)
    local = Variant(("local",), "projection", 3, 1)
    results = {
        ("s", cell): [
            {"holdout": _points({24: 30.0, 48: 30.2}), "test": _points({24: 29.0, 48: 29.5})},
            {"holdout": _points({24: 30.0, 48: 30.0}), "test": _points({24: 29.2, 48: 29.7})},
        ],
        ("s", local): [
            {"holdout": _points({24: 30.1, 48: 30.1}), "test": _points({24: 29.4, 48: 29.4})}
        ],
    }
    table, series, bands = sweep_table(results, "test", local, windows=(24, 48))
    assert "29.100 (-0.300 ± 0.100)" in table and "29.600 (+0.200 ± 0.100)" in table
    name = f"{cell.key} (s)"
    assert series == {name: [(24, pytest.approx(-0.3)), (48, pytest.approx(0.2))]}
    assert bands[name][1] == (48, pytest.approx(0.1), pytest.approx(0.3))
    lines = chosen_windows(results, ["test"], windows=(24, 48))
    assert any(f"| s | {cell.key} | tile 48 | 30.100 | 29.600 |" in line for line in lines)
    assert any(f"| s | {local.key} | tile 48 |" in line for line in lines)  # a tie: the larger
