"""``csnln.evaluation`` and ``csnln eval``: the published protocol, datasets, bad input, outputs.

The acceptance numbers are numbers.md's Python-protocol bicubic table (±0.01 dB, ±0.001 SSIM):
Set5 at all scales here, the full table (Set5, Set14, B100) under ``-m slow``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BENCHMARK
from PIL import Image
from reference import ReferenceCSNLN

from csnln import CSNLN, save_checkpoint
from csnln.cli import main
from csnln.data.imresize import imresize, modcrop
from csnln.evaluation import (
    EvalResult,
    UnreadableImageError,
    UnreadableImageWarning,
    dataset_name,
    evaluate,
    find_dataset,
    format_table,
    load_rgb,
    prepare_pair,
    results_to_csv,
    to_uint8_matlab,
)
from csnln.metrics import psnr, ssim

#: numbers.md, the bicubic baseline "written in Python": (dataset, scale) -> (PSNR, SSIM).
EXPECTED = {
    ("Set5", 2): (33.6818, 0.93052),
    ("Set14", 2): (30.3301, 0.87003),
    ("B100", 2): (29.5648, 0.84364),
    ("Set5", 3): (30.4047, 0.86897),
    ("Set14", 3): (27.6341, 0.77598),
    ("B100", 3): (27.2110, 0.73917),
    ("Set5", 4): (28.4314, 0.81127),
    ("Set14", 4): (26.0918, 0.70496),
    ("B100", 4): (25.9634, 0.66821),
}


def _benchmark(name: str) -> Path:
    folder = BENCHMARK / name
    if not folder.is_dir():
        pytest.skip(f"benchmark data not available ({folder} missing: ../shared is absent)")
    return folder


def _assert_expected(dataset: str, scale: int, p: float, s: float) -> None:
    exp_p, exp_s = EXPECTED[(dataset, scale)]
    assert p == pytest.approx(exp_p, abs=0.01), (dataset, scale)
    assert s == pytest.approx(exp_s, abs=0.001), (dataset, scale)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth-ish synthetic RGB uint8 image (gradients + a little noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            128 + 100 * np.sin(x / 5 + seed),
            128 + 100 * np.cos(y / 4 - seed),
            128 + 60 * np.sin((x + y) / 7),
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    """A folder of three small HR images (one greyscale, one not a multiple of 2 or 3)."""
    folder = tmp_path / "Tiny"
    _save(folder / "a.png", _image(24, 32, 1))
    _save(folder / "b.png", _image(31, 29, 2))
    Image.fromarray(_image(26, 24, 3)[..., 0]).save(folder / "c.png")  # greyscale
    (folder / "notes.txt").write_text("not an image")
    return folder


# --- acceptance: numbers.md --------------------------------------------------------------------


def test_set5_bicubic_library() -> None:
    set5 = _benchmark("Set5")
    results = evaluate("bicubic", [set5], [2, 3, 4], device="cpu", progress=False)
    assert [(r.dataset, r.scale) for r in results] == [("Set5", 2), ("Set5", 3), ("Set5", 4)]
    for r in results:
        assert r.images == 5 and r.skipped == [] and len(r.per_image) == 5
        assert r.seconds_per_image > 0
        _assert_expected(r.dataset, r.scale, r.psnr, r.ssim)


def test_set5_bicubic_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set5 = _benchmark("Set5")
    out = tmp_path / "set5.json"
    rc = main(
        ["eval", "--model", "bicubic", "--data", str(set5), "--scale", "2", "3", "4"]
        + ["--json", str(out), "--device", "cpu"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "| scale | Set5 |" in captured.out
    assert "| ×2 | 33.68" in captured.out
    rows = json.loads(out.read_text())
    assert [(r["dataset"], r["scale"]) for r in rows] == [("Set5", 2), ("Set5", 3), ("Set5", 4)]
    for r in rows:
        assert r["images"] == 5 and r["model"] == "bicubic"
        _assert_expected(r["dataset"], r["scale"], r["psnr"], r["ssim"])


@pytest.mark.slow
def test_full_bicubic_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = [_benchmark(name) for name in ("Set5", "Set14", "B100")]
    out = tmp_path / "full.json"
    rc = main(
        ["eval", "--model", "bicubic", "--data", *map(str, folders), "--scale", "2", "3", "4"]
        + ["--device", "cpu", "--no-progress", "--json", str(out)]
    )
    assert rc == 0
    assert "| scale | Set5 | Set14 | B100 |" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert len(rows) == 9
    assert {(r["dataset"], r["scale"]) for r in rows} == set(EXPECTED)
    for r in rows:
        _assert_expected(r["dataset"], r["scale"], r["psnr"], r["ssim"])


# --- the protocol on synthetic data -------------------------------------------------------------


def test_prepare_pair_protocol(small_set: Path) -> None:
    hr, lr = prepare_pair(small_set / "b.png", 3)
    full = torch.from_numpy(_image(31, 29, 2)).permute(2, 0, 1)
    assert torch.equal(hr, modcrop(full, 3)) and hr.shape == (3, 30, 27)
    assert lr.dtype == torch.uint8 and lr.shape == (3, 10, 9)
    assert torch.equal(lr, to_uint8_matlab(imresize(hr.double(), 1 / 3)))
    grey = load_rgb(small_set / "c.png")
    assert grey.shape == (3, 26, 24)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_to_uint8_matlab_rounds_half_away() -> None:
    x = torch.tensor([-3.0, 0.5, 1.5, 2.5, 2.4999, 254.5, 300.0], dtype=torch.float64)
    assert to_uint8_matlab(x).tolist() == [0, 1, 2, 3, 2, 255, 255]


def test_bicubic_on_folder_of_hr_images(small_set: Path) -> None:
    (result,) = evaluate("bicubic", small_set, 2, progress=False)
    assert (result.dataset, result.scale, result.images) == ("Tiny", 2, 3)
    assert [r.name for r in result.per_image] == ["a", "b", "c"]
    # Same numbers by hand: bicubic down and up in float64, MATLAB rounding.
    ps, qs = [], []
    for name in "abc":
        hr, lr = prepare_pair(small_set / f"{name}.png", 2)
        sr = to_uint8_matlab(imresize(lr.double(), 2.0))
        ps.append(psnr(sr, hr, crop=2))
        qs.append(ssim(sr, hr, crop=2))
    assert result.psnr == pytest.approx(np.mean(ps), abs=1e-12)
    assert result.ssim == pytest.approx(np.mean(qs), abs=1e-12)


def test_dataset_name() -> None:
    assert dataset_name("/data/benchmark/Set5") == "Set5"
    assert dataset_name("/data/benchmark/Set5/HR") == "Set5"
    assert dataset_name("/data/benchmark/Set5/") == "Set5"


# --- the EDSR benchmark layout -------------------------------------------------------------------


def _edsr_layout(root: Path, scale: int) -> Path:
    """``root/Syn/HR/{p,q}.png`` and ``LR_bicubic/X{s}/px{s}.png`` (q has no LR file).

    p's LR file is deliberately *not* the bicubic downscale of its HR, so using it is visible.
    """
    folder = root / "Syn"
    hr_p, hr_q = _image(36, 48, 4), _image(30, 42, 5)
    _save(folder / "HR" / "p.png", hr_p)
    _save(folder / "HR" / "q.png", hr_q)
    lr_p = _image(36 // scale, 48 // scale, 6)
    _save(folder / "LR_bicubic" / f"X{scale}" / f"px{scale}.png", lr_p)
    return folder


def test_edsr_layout_uses_lr_files(tmp_path: Path) -> None:
    folder = _edsr_layout(tmp_path, 2)
    entries = find_dataset(folder, 2)
    assert [(e.name, e.hr_path.name) for e in entries] == [("p", "p.png"), ("q", "q.png")]
    assert entries[0].lr_path == folder / "LR_bicubic" / "X2" / "px2.png"
    assert entries[1].lr_path is None
    assert all(e.lr_path is None for e in find_dataset(folder, 3))  # no X3 folder

    (result,) = evaluate("bicubic", [folder], [2], progress=False)
    assert result.dataset == "Syn" and result.images == 2
    by_name = {r.name: r for r in result.per_image}
    assert by_name["p"].lr_path is not None and by_name["q"].lr_path is None
    hr = torch.from_numpy(_image(36, 48, 4)).permute(2, 0, 1)
    lr = torch.from_numpy(_image(18, 24, 6)).permute(2, 0, 1)
    sr = to_uint8_matlab(imresize(lr.double(), 2.0))
    assert by_name["p"].psnr == pytest.approx(psnr(sr, hr, crop=2), abs=1e-12)
    # q falls back to the bicubic downscale of its HR
    hr_q, lr_q = prepare_pair(folder / "HR" / "q.png", 2)
    sr_q = to_uint8_matlab(imresize(lr_q.double(), 2.0))
    assert by_name["q"].psnr == pytest.approx(psnr(sr_q, hr_q, crop=2), abs=1e-12)


def test_edsr_layout_size_mismatch_names_the_lr_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _edsr_layout(tmp_path, 2)
    bad = _save(folder / "LR_bicubic" / "X2" / "qx2.png", _image(14, 21, 7))  # HR q: 30x42
    with pytest.raises(ValueError, match="qx2.png"):
        find_dataset(folder, 2)
    with pytest.raises(ValueError, match="qx2.png"):
        prepare_pair(folder / "HR" / "q.png", 2, bad)
    rc = main(["eval", "--model", "bicubic", "--data", str(folder), "--scale", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and "qx2.png" in err and "Traceback" not in err


# --- bad input ---------------------------------------------------------------------------------


def test_unreadable_images_are_skipped_and_counted(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (small_set / "broken.png").write_bytes(b"this is not a PNG file")
    data = (small_set / "a.png").read_bytes()
    (small_set / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.warns(UnreadableImageWarning) as record:
        results = evaluate("bicubic", small_set, [2, 3], progress=False)
    messages = [str(w.message) for w in record]
    # one warning per file, although both scales skip it
    assert sum("broken.png" in m for m in messages) == 1
    assert sum("truncated.png" in m for m in messages) == 1
    for r in results:
        assert r.images == 3 and r.skipped == ["broken.png", "truncated.png"]
        assert math.isfinite(r.psnr)
    assert "Skipped (unreadable)" in format_table(results)
    with pytest.raises(UnreadableImageError, match="broken.png"):
        load_rgb(small_set / "broken.png")

    out = tmp_path / "r.json"
    rc = main(
        ["eval", "--model", "bicubic", "--data", str(small_set), "--scale", "2"]
        + ["--json", str(out), "--no-progress"]
    )
    captured = capsys.readouterr()
    assert rc == 1
    assert "warning:" in captured.err and "broken.png" in captured.err
    assert "truncated.png" in captured.err and "skipped" in captured.err
    assert "| ×2 |" in captured.out  # the table is still printed
    (row,) = json.loads(out.read_text())
    assert row["images"] == 3 and row["skipped"] == ["broken.png", "truncated.png"]


def test_all_images_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "Bad"
    folder.mkdir()
    (folder / "x.png").write_bytes(b"junk")
    with pytest.warns(UnreadableImageWarning, match="x.png"):
        (result,) = evaluate("bicubic", folder, 2, progress=False)
    assert result.images == 0 and math.isnan(result.psnr) and result.skipped == ["x.png"]
    assert "–" in format_table([result])
    assert json.loads(json.dumps(result.to_dict()))["psnr"] is None


def test_missing_and_empty_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "Nope"
    with pytest.raises(FileNotFoundError, match="Nope"):
        find_dataset(missing, 2)
    empty = tmp_path / "Empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="Empty"):
        find_dataset(empty, 2)
    (empty / "HR").mkdir()  # benchmark layout with an empty HR folder
    with pytest.raises(FileNotFoundError, match="HR"):
        find_dataset(empty, 2)
    for folder in (missing, empty):
        rc = main(["eval", "--model", "bicubic", "--data", str(folder), "--scale", "2"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and folder.name in err
        assert "Traceback" not in err


def test_too_small_and_other_input_errors(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _save(small_set / "tiny.png", _image(12, 40, 8))
    with pytest.raises(ValueError, match="tiny.png"):
        find_dataset(small_set, 2)
    other = tmp_path / "x" / "Tiny"
    _save(other / "a.png", _image(24, 24, 9))
    (small_set / "tiny.png").unlink()
    with pytest.raises(ValueError, match="two datasets are named 'Tiny'"):
        evaluate("bicubic", [small_set, other], 2, progress=False)
    assert main(["eval", "--model", "no-such-model", "--data", str(small_set), "--scale", "2"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["eval", "--model", "bicubic", "--data", str(small_set)]) == 2  # needs --scale
    assert "scale" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --tile and --chop exclude each other
        main(["eval", "--model", "bicubic", "--data", str(small_set), "--tile", "8", "--chop"])


# --- outputs -----------------------------------------------------------------------------------


def test_json_csv_and_saved_images(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_path, csv_path, images = tmp_path / "o" / "r.json", tmp_path / "r.csv", tmp_path / "sr"
    rc = main(
        ["eval", "--model", "bicubic", "--data", str(small_set), "--scale", "2", "3"]
        + ["--json", str(json_path), "--csv", str(csv_path), "--save-images", str(images)]
        + ["--table", "rows", "--no-progress"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "| dataset | scale | PSNR (dB) | SSIM | images | skipped | s/image |" in out
    rows = json.loads(json_path.read_text())
    assert len(rows) == 2
    for row, scale in zip(rows, (2, 3), strict=True):
        keys = {"dataset", "scale", "psnr", "ssim", "images", "seconds_per_image", "skipped"}
        assert keys <= row.keys()
        assert row["dataset"] == "Tiny" and row["scale"] == scale and row["images"] == 3
        assert row["seconds_per_image"] > 0
        assert [p["name"] for p in row["per_image"]] == ["a", "b", "c"]
        assert row["psnr"] == pytest.approx(np.mean([p["psnr"] for p in row["per_image"]]))
        assert f"| Tiny | ×{scale} | {row['psnr']:.4f} | {row['ssim']:.5f} | 3 | 0 |" in out
    with csv_path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(t["dataset"], t["scale"], t["images"], t["skipped"]) for t in table] == [
        ("Tiny", "2", "3", "0"),
        ("Tiny", "3", "3", "0"),
    ]
    assert float(table[0]["psnr"]) == pytest.approx(rows[0]["psnr"], abs=1e-9)
    assert float(table[1]["ssim"]) == pytest.approx(rows[1]["ssim"], abs=1e-9)
    # Saved SR images: PNGs of the right size whose metrics are the reported ones.
    for row in rows:
        scale = row["scale"]
        for item in row["per_image"]:
            path = images / "Tiny" / f"x{scale}" / f"{item['name']}.png"
            sr = load_rgb(path)
            hr, _ = prepare_pair(item["hr_path"], scale)
            assert sr.shape == hr.shape
            assert psnr(sr, hr, crop=scale) == pytest.approx(item["psnr"], abs=1e-9)
    assert not list(images.rglob("*.tmp"))
    assert not list(tmp_path.glob("*.tmp")) and not list((tmp_path / "o").glob("*.tmp"))


def test_format_table_grid() -> None:
    results = [
        EvalResult("Set5", 2, 33.68181, 0.930521, 5, [], 0.0123),
        EvalResult("Set14", 2, 30.33011, 0.870031, 14, [], 1.5),
        EvalResult("Set5", 4, 28.43141, 0.811271, 5, ["x.png"], 150.0),
    ]
    table = format_table(results)
    lines = table.splitlines()
    assert lines[0] == "| scale | Set5 | Set14 |"
    assert lines[2] == "| ×2 | 33.6818 / 0.93052 (0.012 s) | 30.3301 / 0.87003 (1.50 s) |"
    assert lines[3] == "| ×4 | 28.4314 / 0.81127 (150 s) |  |"
    assert "Set5 ×4: x.png" in table
    csv_text = results_to_csv(results)
    assert csv_text.splitlines()[0] == "dataset,scale,psnr,ssim,images,skipped,seconds_per_image"
    assert csv_text.splitlines()[3].startswith("Set5,4,28.43141,0.811271,5,1,")
    with pytest.raises(ValueError, match="layout"):
        format_table(results, layout="columns")  # type: ignore[arg-type]


# --- real models -------------------------------------------------------------------------------


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    model = CSNLN(2, n_feats=4, depth=1)
    return save_checkpoint(model, tmp_path / "tiny_x2.safetensors")


@pytest.fixture
def chop_set(tmp_path: Path) -> Path:
    """Images large enough for the authors' chop at x2 (LR >= 22 pixels a side)."""
    folder = tmp_path / "Chop"
    _save(folder / "a.png", _image(48, 48, 10))
    _save(folder / "b.png", _image(46, 48, 11))
    return folder


@pytest.mark.parametrize(
    "options",
    [["--tile", "8", "--tile-overlap", "2"], ["--chop"], ["--self-ensemble"], []],
    ids=["tile", "chop", "self-ensemble", "auto"],
)
def test_tiny_csnln_checkpoint(
    tiny_checkpoint: Path,
    chop_set: Path,
    tmp_path: Path,
    options: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "tiny.json"
    rc = main(
        ["eval", "--model", str(tiny_checkpoint), "--data", str(chop_set), "--device", "cpu"]
        + ["--json", str(out), "--no-progress", *options]  # scale read from the checkpoint
    )
    assert rc == 0, capsys.readouterr().err
    (row,) = json.loads(out.read_text())
    assert row["scale"] == 2 and row["images"] == 2
    assert math.isfinite(row["psnr"]) and 0 <= row["ssim"] <= 1


def test_chop_too_small_is_a_clear_error(
    tiny_checkpoint: Path, small_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["eval", "--model", str(tiny_checkpoint), "--data", str(small_set), "--chop"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "a.png" in err and "--chop" in err


def test_tiny_csnln_wrong_scale(
    tiny_checkpoint: Path, small_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["eval", "--model", str(tiny_checkpoint), "--data", str(small_set), "--scale", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "x2" in err


def test_model_object_matches_checkpoint_path(tiny_checkpoint: Path, small_set: Path) -> None:
    from csnln import load_checkpoint

    by_path = evaluate(tiny_checkpoint, small_set, progress=False, device="cpu", tile=0)
    model = load_checkpoint(tiny_checkpoint)
    by_model = evaluate(model, small_set, [2], progress=False, device="cpu", tile=0)
    assert by_path[0].psnr == by_model[0].psnr and by_path[0].ssim == by_model[0].ssim
    with pytest.raises(ValueError, match="x3"):
        evaluate(model, small_set, [3], progress=False)


def test_authors_checkpoint_recognised_by_keys(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "model_x2.pt"
    torch.save(ReferenceCSNLN(2, n_feats=4, depth=1).state_dict(), path)
    out = tmp_path / "authors.json"
    rc = main(
        ["eval", "--model", str(path), "--data", str(small_set), "--scale", "2"]
        + ["--json", str(out), "--no-progress", "--device", "cpu"]
    )
    assert rc == 0, capsys.readouterr().err
    (row,) = json.loads(out.read_text())
    assert row["images"] == 3 and math.isfinite(row["psnr"])
    assert row["model"] == str(path)


def test_eval_without_model_is_the_bundled_default_at_its_scales(tmp_path, capsys) -> None:
    from PIL import Image

    from csnln.cli import main
    from csnln.demo import SAMPLE

    Image.open(SAMPLE).crop((0, 0, 96, 96)).save(tmp_path / "crop.png")
    assert (
        main(["eval", "--data", str(tmp_path), "--no-progress", "--json", str(tmp_path / "r.json")])
        == 0
    )
    import json

    rows = json.loads((tmp_path / "r.json").read_text())
    assert {r["model"] for r in rows} == {"small"}
    assert sorted(r["scale"] for r in rows) == [2, 3, 4]
