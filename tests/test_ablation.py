"""Ablations: the studies' variants, test-time unrolling, runs that resume and share, reports."""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csnln import CSNLN
from csnln.ablation import (
    BUDGETS,
    PAPER_STUDIES,
    REFERENCE,
    STUDIES,
    Budget,
    RunResult,
    Variant,
    curve_at,
    equal_time,
    estimate_cost,
    load_results,
    mflop_per_pixel,
    run_dir,
    run_one,
    run_study,
    select_runs,
    study_runs,
    study_variants,
    verdict,
    write_report,
)
from csnln.cli import main
from csnln.training import ConfigError, apply_overrides, build_model, load_config

ROOT = Path(__file__).resolve().parents[1]

TINY = Budget(
    "tiny",
    n_feats=4,
    depth=2,
    patch=8,
    batch=2,
    steps=3,
    lr=1e-3,
    seeds=(0, 1),
    depths=(1, 2),
    widths=(4, 6),
    unroll=(1, 2, 3),
    val_every=1,
    precision="fp32",
    eval_tile=16,
    eval_overlap=4,
    unroll_sets=("Set5",),
)


def _images(folder: Path, count: int, size: int, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("ablation_data")
    _images(root / "train" / "a", 3, 32, 0)
    _images(root / "bench" / "Set5", 1, 24, 1)
    _images(root / "bench" / "B100", 2, 24, 2)
    return str(root / "train" / "*"), root / "bench"


def test_studies_have_the_issue_variants() -> None:
    small = BUDGETS["small"]
    branches = study_variants("branches", small)
    assert len(branches) == 7 and len(set(branches)) == 7
    assert {frozenset(v.branches) for v in branches} == {
        frozenset(s)
        for s in [
            ("local",),
            ("in_scale",),
            ("cross_scale",),
            ("local", "in_scale"),
            ("local", "cross_scale"),
            ("in_scale", "cross_scale"),
            ("local", "in_scale", "cross_scale"),
        ]
    }
    assert [v.fusion for v in study_variants("fusion", small)] == ["projection", "concat"]
    assert [v.patch_size for v in study_variants("patch", small)] == [1, 3, 5]
    assert [v.depth for v in study_variants("depth", small)] == [1, 2, 4, 8]
    assert 12 in [v.depth for v in study_variants("depth", BUDGETS["medium"])]
    # Every study holds the reference; "all" trains it once per seed.
    for study in ("branches", "fusion", "patch", "depth"):
        assert REFERENCE.resolved(small) in study_variants(study, small)
    runs = study_runs(["branches", "fusion", "patch", "depth"], small)
    assert len(runs) == len(set(runs)) == 13 * len(small.seeds)
    # The first seed of every variant comes before any second seed.
    assert [seed for _, seed in runs] == [0] * 13 + [1] * 13
    widths = study_variants("width", small)
    assert [v.width(small) for v in widths] == [8, 16, 32]
    # The width study's reference is the others' (same run folder, trained once).
    assert widths[1] == REFERENCE.resolved(small)
    assert [v.key for v in widths] == [
        "LIC-projection-p3-d4-f8",
        "LIC-projection-p3-d4",
        "LIC-projection-p3-d4-f32",
    ]
    assert widths[2].network(small).config.n_feats == 32
    assert len(study_runs(list(PAPER_STUDIES), small)) == 15 * len(small.seeds)
    assert set(PAPER_STUDIES) | {"attention", "window"} == set(STUDIES)
    with pytest.raises(ValueError, match="unknown study"):
        study_variants("breadth", small)


def test_attention_study_at_the_bundled_budget() -> None:
    """The issue's variants and seeds, and a local-only cell of the reference's cost."""
    bundled = BUDGETS["bundled"]
    assert (bundled.n_feats, bundled.depth, bundled.patch, bundled.batch) == (64, 1, 24, 8)
    assert (bundled.steps, bundled.lr, bundled.validation) == (20_000, 2e-4, "holdout")
    assert bundled.eval_sets == ("Set5", "Set14", "B100", "SunHays80")
    runs = study_runs(["attention"], bundled)
    keys = [(v.key, seed) for v, seed in runs]
    assert keys == [
        ("LIC-projection-p3-d1", 0),
        ("L-projection-p3-d1", 0),
        ("L-projection-p3-d1-f86", 0),
        ("LI-projection-p3-d1", 0),
        ("LC-projection-p3-d1", 0),
        ("LIC-projection-p3-d1", 1),
        ("L-projection-p3-d1", 1),
        ("L-projection-p3-d1-f86", 1),
    ]
    # A subset in the order asked: a seed of one variant, then every seed of another.
    chosen = select_runs(runs, ["L-projection-p3-d1-f86/seed1", "LIC-projection-p3-d1"])
    assert [(v.key, seed) for v, seed in chosen] == [
        ("L-projection-p3-d1-f86", 1),
        ("LIC-projection-p3-d1", 0),
        ("LIC-projection-p3-d1", 1),
    ]
    with pytest.raises(ValueError, match="no variant 'LIC'.*LIC-projection-p3-d1, "):
        select_runs(runs, ["LIC"])
    with pytest.raises(ValueError, match="LC-projection-p3-d1's runs: LC-projection-p3-d1/seed0$"):
        select_runs(runs, ["LC-projection-p3-d1/seed1"])
    matched = runs[2][0]
    reference = mflop_per_pixel(REFERENCE.resolved(bundled).network(bundled), bundled.eval_tile)
    cost = mflop_per_pixel(matched.network(bundled), bundled.eval_tile)
    assert abs(cost / reference - 1) < 0.10
    local = mflop_per_pixel(runs[1][0].network(bundled), bundled.eval_tile)
    assert local < 0.7 * reference  # the attentions are a large share of the cost
    # The matched variant's cost is found, not assumed, at other budgets too.
    small = BUDGETS["small"]
    small_matched = [v for v in study_variants("attention", small) if v.n_feats][0]
    ref_small = mflop_per_pixel(REFERENCE.resolved(small).network(small), small.eval_tile)
    assert abs(mflop_per_pixel(small_matched.network(small), small.eval_tile) / ref_small - 1) < 0.1


def test_holdout_budget_never_trains_on_its_validation_split(
    tmp_path: Path, data: tuple[str, Path]
) -> None:
    """A budget validating on the held-out split excludes it from training and validates on
    it; the final evaluation stores per-image PSNR."""
    from csnln.ablation import holdout_files, train_config

    train_glob, bench = data
    root = tmp_path / "train"
    split = Path(data[0]).parent / "a"
    budget = dataclasses.replace(TINY, validation="holdout", eval_sets=("Set5", "B100"))
    files = holdout_files(budget, root)
    assert len(files) == 10 and all(f.startswith(str(root)) for f in files)
    assert holdout_files(TINY, root) == []
    config = train_config(
        REFERENCE.resolved(budget),
        0,
        budget,
        tmp_path / "run",
        train_dirs=[train_glob],
        val_dir=[str(split / "im0.png")],
        device="cpu",
        threads=1,
        exclude=[str(split / "im0.png")],
    )
    assert config.data.exclude == [str(split / "im0.png")]
    assert config.val.dirs == [str(split / "im0.png")]
    result = run_one(
        REFERENCE.resolved(budget),
        0,
        budget,
        tmp_path / "out",
        train_dirs=[train_glob],
        eval_sets=[str(bench / "Set5"), str(bench / "B100")],
        resume=False,
        device="cpu",
        threads=1,
        holdout=[str(split / "im0.png")],
    )
    assert result is not None
    log = run_dir(tmp_path / "out", budget, REFERENCE.resolved(budget), 0) / "train.log"
    assert "held out of training (data.exclude): 1 images" in log.read_text()
    assert set(result.per_image) == {"Set5", "B100"}
    assert sorted(result.per_image["B100"]) == ["im0", "im1"]


def test_unrolled_same_depth_is_identical_and_others_run() -> None:
    torch.manual_seed(0)
    model = CSNLN(2, 8, 3).eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(model.unrolled(3)(x), model(x))
        for depth in (1, 2, 5):
            deeper = model.unrolled(depth)
            assert deeper.depth == depth and deeper.tail.weight.shape[1] == 8 * depth
            assert deeper(x).shape == (1, 3, 24, 24)
            # Shared weights: everything but the tail has the same values.
            theirs = deeper.state_dict()
            for name, tensor in model.state_dict().items():
                if name != "tail.weight":
                    assert torch.equal(theirs[name], tensor), name
    slices = model.tail.weight.detach().split(8, dim=1)
    one = model.unrolled(1).tail.weight.detach()
    torch.testing.assert_close(one, sum(slices))  # mean of the slices, times 3 steps
    five = model.unrolled(5).tail.weight.detach().split(8, dim=1)
    torch.testing.assert_close(five[0], slices[0] * 3 / 5)  # ends kept, rescaled
    torch.testing.assert_close(five[-1], slices[-1] * 3 / 5)
    torch.testing.assert_close(five[2], slices[1] * 3 / 5)  # the middle
    with pytest.raises(ValueError, match="depth"):
        model.unrolled(0)


def test_config_keys_build_the_variant(tmp_path: Path) -> None:
    config = load_config(
        ROOT / "configs" / "tiny_test.yaml",
        ["model.branches=[local, cross_scale]", "model.fusion=concat", "model.patch_size=5"],
    )
    model = build_model(config)
    assert model.config.branches == ("local", "cross_scale")
    assert (model.config.fusion, model.config.patch_size) == ("concat", 5)
    with pytest.raises(ConfigError, match="model.branches"):
        apply_overrides(config, ["model.branches=[nonlocal]"])
    with pytest.raises(ConfigError, match="model.branches"):
        apply_overrides(config, ["model.branches=[]"])
    with pytest.raises(ConfigError, match="model.patch_size"):
        apply_overrides(config, ["model.patch_size=4"])


def test_verdict_compares_with_the_spread() -> None:
    assert verdict(0.05, 0.1, 2) == "within the seed spread"
    assert verdict(0.2, 0.1, 2) == "better, beyond the spread"
    assert verdict(-0.2, 0.1, 2) == "worse, beyond the spread"
    assert "one seed" in verdict(0.2, 0.0, 1)


def test_cost_counts_the_attentions() -> None:
    local = CSNLN(2, 8, 2, branches=("local",)).eval()
    full = CSNLN(2, 8, 2).eval()
    assert 0 < mflop_per_pixel(local, 16) < mflop_per_pixel(full, 16)
    # Quadratic attention: a larger piece costs more per pixel; the local branch does not.
    assert mflop_per_pixel(full, 32) > mflop_per_pixel(full, 16)
    assert mflop_per_pixel(local, 32) == pytest.approx(mflop_per_pixel(local, 16), rel=0.01)


def test_study_runs_resumes_shares_and_reports(tmp_path: Path, data: tuple[str, Path]) -> None:
    train, bench = data
    out = tmp_path / "abl"
    seen: list[tuple[str, int, str]] = []
    results = run_study(
        ["fusion", "depth"],
        TINY,
        out,
        train_dirs=[train],
        benchmarks=bench,
        on_run=lambda i, n, v, s, state: seen.append((v.key, s, state)),
    )
    # fusion (2) + depth (2, one of which is the reference) = 3 variants x 2 seeds.
    assert len(results) == 6 and len(seen) == 6
    reference = REFERENCE.resolved(TINY)
    for result in results:
        folder = run_dir(out, TINY, result.variant, result.seed)
        assert (folder / "final.safetensors").is_file() and (folder / "config.yaml").is_file()
        assert not (folder / "checkpoints").exists()
        assert set(result.psnr) == {"Set5", "B100"}
        assert [s for s, _ in result.curve] == [1, 2, 3]
        if result.variant.fusion == "projection":  # in the depth study: unrolled
            assert sorted(result.unroll) == [1, 2, 3]
            diagonal = result.unroll[result.variant.depth]["Set5"]
            assert diagonal == pytest.approx(result.psnr["Set5"], abs=1e-9)
        else:
            assert result.unroll == {}
    # The seeds differ (different weights), the same seed is reproducible.
    ref_runs = load_results(out, TINY, "fusion")[reference]
    assert ref_runs[0].psnr != ref_runs[1].psnr
    # A second call trains nothing: every run is reused.
    weights = run_dir(out, TINY, reference, 0) / "final.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = run_study("fusion", TINY, out, train_dirs=[train], benchmarks=bench)
    assert weights.stat().st_mtime_ns == stamp
    fusion_runs = load_results(out, TINY, "fusion")
    assert [r.psnr for r in again] == [fusion_runs[v][s].psnr for s in (0, 1) for v in fusion_runs]
    # The reports: one row per variant, the reference marked, numbers from result.json.
    report = write_report("fusion", TINY, out, benchmarks=bench, timing=False).read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # header + projection + concat
    assert "reference" in rows[1] and "concat" in rows[2]
    mean = (ref_runs[0].psnr["Set5"] + ref_runs[1].psnr["Set5"]) / 2
    assert f"{mean:.3f}" in rows[1]
    assert (out / "tiny" / "fusion_curves.png").is_file()
    assert (out / "tiny" / "fusion_cost.png").is_file()
    depth = write_report("depth", TINY, out, benchmarks=bench, timing=False).read_text()
    assert "unrolled to other step counts" in depth and "**" in depth


def test_width_study_trains_each_width_and_compares_at_equal_time(
    tmp_path: Path, data: tuple[str, Path]
) -> None:
    train, bench = data
    out = tmp_path / "abl"
    # Six validations: whichever width times cheaper here (tiny models on a busy machine
    # can time either way), its end falls inside the other's curve.
    budget = dataclasses.replace(TINY, steps=6)
    results = run_study("width", budget, out, train_dirs=[train], benchmarks=bench)
    assert sorted({r.variant.width(budget) for r in results}) == [4, 6]
    wide = Variant(n_feats=6).resolved(budget)
    config = (run_dir(out, budget, wide, 0) / "config.yaml").read_text()
    assert "n_feats: 6" in config
    report = write_report("width", budget, out, benchmarks=bench).read_text()
    assert "## At equal training time" in report
    section = report.split("## At equal training time")[1]
    rows = [r for r in section.splitlines() if r.startswith("| n_feats")]
    assert [r.split(" | ")[0] for r in rows] == ["| n_feats 4", "| n_feats 6"]
    assert "reference" in rows[0]
    # The wider one is compared at the time the cheaper reference finished: a figure, a Δ.
    cells = [c.strip() for c in rows[1].strip("|").split("|")]
    assert float(cells[1]) > 0 and cells[-1].startswith(("+", "-"))
    assert (out / "tiny" / "width_time.png").is_file()


def test_equal_time_keeps_only_the_end_of_a_curve_validated_otherwise() -> None:
    reference, wide = REFERENCE.resolved(TINY), Variant(n_feats=32).resolved(TINY)

    def run(variant: Variant, curve: list[tuple[int, float]], final: float) -> RunResult:
        return RunResult(
            variant=variant,
            seed=0,
            psnr={"Set5": final, "B100": 0.0},
            ssim={"Set5": 0.0, "B100": 0.0},
            unroll={},
            curve=curve,
            train_seconds=1.0,
        )

    found = {
        # The reference's curve ends 0.3 dB under its final score: validated otherwise.
        reference: [run(reference, [(1, 20.0), (2, 21.0), (3, 21.7)], 22.0)],
        wide: [run(wide, [(1, 20.5), (2, 22.5), (3, 23.0)], 23.0)],
    }
    # The wide one costs twice the reference per step: compared at the reference's end.
    lines, series = equal_time(found, TINY, "n_feats", {reference: 1.0, wide: 2.0})
    assert series["n_feats 4"] == [(pytest.approx(3 / 60), 22.0)]
    assert len(series["n_feats 32"]) == 3
    assert any("Only the end" in line and "n_feats 4" in line for line in lines)
    row = next(line for line in lines if line.startswith("| n_feats 32"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # At the reference's end (3 steps = 1.5 of the wide one's: 21.5 on its curve), against
    # its final score.
    assert cells[4:] == ["21.500", "22.000", "-0.500"]


def test_curves_are_read_between_their_points() -> None:
    curve = [(1.0, 30.0), (3.0, 32.0)]
    assert curve_at(curve, 2.0) == pytest.approx(31.0)
    assert curve_at(curve, 3.0) == 32.0
    assert curve_at(curve, 0.5) is None and curve_at(curve, 3.5) is None


def test_report_lists_runs_not_finished(tmp_path: Path) -> None:
    report = write_report("patch", TINY, tmp_path, timing=False).read_text()
    assert report.count("not run yet") == 3 * 2


def test_a_run_held_by_a_live_process_is_left_to_it(tmp_path: Path, data: tuple[str, Path]) -> None:
    train, bench = data
    folder = run_dir(tmp_path, TINY, REFERENCE.resolved(TINY), 0)
    folder.mkdir(parents=True)
    (folder / ".lock").write_text(str(os.getppid()))  # alive
    sets = [str(bench / "Set5"), str(bench / "B100")]

    def attempt():  # noqa: ANN202
        reference = REFERENCE.resolved(TINY)
        return run_one(
            reference, 0, TINY, tmp_path, train_dirs=[train], eval_sets=sets, resume=False
        )

    assert attempt() is None and not (folder / "final.safetensors").exists()
    # A dead process's lock is taken over.
    (folder / ".lock").write_text("999999999")
    result = attempt()
    assert result is not None and not (folder / ".lock").exists()
    assert json.loads((folder / "result.json").read_text())["seed"] == 0


def test_cli_quick_try_and_errors(
    tmp_path: Path, data: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    train, bench = data
    out = tmp_path / "cli"
    common = ["--out", str(out), "--benchmarks", str(bench), "--train-data", train]
    assert main(["ablate", "fusion", "--steps", "1", "--no-timing", *common]) == 0
    captured = capsys.readouterr()
    assert "4 runs, 4 to train; about" in captured.err and "CPU-hours" in captured.err
    result = json.loads(
        (out / "small-1steps" / "runs" / "LIC-concat-p3-d4" / "seed0" / "result.json").read_text()
    )
    assert result["cpu_seconds"] > 0  # one process trained and evaluated it
    assert main(["ablate", "fusion", "--steps", "1", "--estimate", *common]) == 0
    table = capsys.readouterr().out
    assert "| LIC-projection-p3-d4 | 2 |" in table and "| LIC-concat-p3-d4 | 2 |" in table
    assert "fusion: 4 runs, about" in table
    only = ["--only", "LIC-concat-p3-d4/seed1"]
    assert main(["ablate", "fusion", "--steps", "1", "--estimate", *only, *common]) == 0
    table = capsys.readouterr().out
    assert "| LIC-concat-p3-d4 | 1 |" in table and "LIC-projection" not in table
    assert main(["ablate", "fusion", "--steps", "1", "--only", "LIC-concat", *common]) == 2
    assert "no variant 'LIC-concat' in this study" in capsys.readouterr().err
    assert (out / "small-1steps" / "fusion.md").is_file()
    assert main(["ablate", "fusion", "--steps", "0", *common]) == 2
    assert main(["ablate", "fusion", "--steps", "1", "--out", str(out), "--benchmarks",
                 str(tmp_path / "nowhere"), "--train-data", train]) == 2  # fmt: skip
    assert "benchmark folder" in capsys.readouterr().err


def test_cost_estimate_adds_up(data: tuple[str, Path]) -> None:
    _, bench = data
    runs = study_runs(["fusion", "depth"], TINY)
    cost = estimate_cost(runs, TINY, benchmarks=bench, threads=1, timed_steps=1)
    assert cost.clock == "CPU" and sum(v.runs for v in cost.variants) == len(runs)
    assert {v.variant for v in cost.variants} == {v for v, _ in runs}
    for v in cost.variants:
        assert v.step > 0 and v.validation > 0 and v.evaluation > 0
        assert v.validations == TINY.steps  # every step, the last one included
    expected = sum(
        (v.step * TINY.steps + v.validation * v.validations + v.evaluation) * v.runs
        for v in cost.variants
    )
    assert cost.total == pytest.approx(expected)
    assert cost.table().count("\n") == len(cost.variants) + 2
    with pytest.raises(FileNotFoundError, match="nowhere"):
        estimate_cost(runs, TINY, benchmarks=bench.parent / "nowhere")


def test_validation_cannot_change_a_run(tmp_path: Path, data: tuple[str, Path]) -> None:
    """Why the small budget's validation could be made cheaper after its runs: validating
    (how often, at which tile) neither trains nor selects, so the final weights are the same
    bit for bit."""
    from safetensors.torch import load_file

    from csnln.ablation import train_config
    from csnln.training import run_training

    train, bench = data
    finals = []
    for every, tile in [(1, 16), (3, 8)]:
        budget = dataclasses.replace(TINY, val_every=every, eval_tile=tile, eval_overlap=2)
        config = train_config(
            REFERENCE.resolved(budget), 0, budget, tmp_path / f"every{every}",
            train_dirs=[train], val_dir=str(bench / "Set5"), device="cpu", threads=1,
        )  # fmt: skip
        assert config.val.tile == tile and config.val.tile_overlap == 2
        finals.append(load_file(run_training(config).weights))
    assert finals[0].keys() == finals[1].keys()
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])


def test_budgets_are_consistent() -> None:
    for budget in BUDGETS.values():
        assert budget.depth in budget.depths and set(budget.depths) <= set(budget.unroll)
        assert budget.n_feats in budget.widths
        assert len(budget.seeds) >= 2
        assert dataclasses.replace(budget).describe() == budget.describe()
    assert Variant().resolved(BUDGETS["small"]).key == "LIC-projection-p3-d4"


def test_window_unroll_keeps_the_trained_tail_on_the_last_steps() -> None:
    torch.manual_seed(0)
    model = CSNLN(2, 8, 2).eval()
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(model.unrolled(2, tail="window")(x), model(x))
        deeper = model.unrolled(5, tail="window")
        slices = deeper.tail.weight.split(8, dim=1)
        assert all(torch.count_nonzero(s) == 0 for s in slices[:3])
        assert torch.equal(torch.cat(slices[3:], 1), model.tail.weight)
        assert deeper(x).shape == (1, 3, 24, 24)
    with pytest.raises(ValueError, match="window"):
        model.unrolled(1, tail="window")


def test_evaluate_only_finishes_missing_unrolls_and_trains_nothing(
    tmp_path: Path, data: tuple[str, Path]
) -> None:
    train, bench = data
    out = tmp_path / "eo"
    run_study("fusion", TINY, out, train_dirs=[train], benchmarks=bench)  # reference: no unroll
    reference = REFERENCE.resolved(TINY)
    before = load_results(out, TINY, "fusion")[reference][0]
    assert before.unroll == {} and before.unroll_window == {}
    results = run_study(["depth"], TINY, out, train_dirs=[train], benchmarks=bench, train=False)
    # Only the finished reference runs came back, now with both unroll grids.
    assert {r.variant for r in results} == {reference}
    for r in results:
        assert sorted(r.unroll) == [1, 2, 3] and sorted(r.unroll_window) == [2, 3]
        assert r.unroll_window[2]["Set5"] == pytest.approx(r.psnr["Set5"], abs=1e-9)
    assert not run_dir(out, TINY, Variant(depth=1), 0).exists()  # nothing trained
    report = write_report("depth", TINY, out, benchmarks=bench, timing=False).read_text()
    assert "tail *resample*" in report and "tail *window*" in report


def test_report_never_rewrites_an_existing_report_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`csnln ablate STUDY --report` from the project root once replaced the shipped report
    (new date, empty timing column): an existing report is now left alone without
    --overwrite, by the library and the command."""
    first = write_report("patch", TINY, tmp_path, timing=False)
    shipped = "the shipped report\n"
    first.write_text(shipped)
    with pytest.raises(FileExistsError, match="patch.md exists: not rewritten"):
        write_report("patch", TINY, tmp_path, timing=False)
    assert first.read_text() == shipped
    small = tmp_path / "small"
    small.mkdir()
    (small / "fusion.md").write_text(shipped)
    code = main(["ablate", "fusion", "--report", "--no-timing", "--out", str(tmp_path)])
    assert code == 0 and (small / "fusion.md").read_text() == shipped
    assert "fusion.md exists: not rewritten (give --overwrite" in capsys.readouterr().err
    main(["ablate", "fusion", "--report", "--no-timing", "--out", str(tmp_path), "--overwrite"])
    assert (small / "fusion.md").read_text() != shipped
    assert write_report("patch", TINY, tmp_path, timing=False, overwrite=True) == first


def test_attention_study_report(tmp_path: Path, data: tuple[str, Path]) -> None:
    """The attention study end to end at a tiny budget: its eight runs, then the report with
    each variant against the bundled cell and the per-image gains of the cell over local
    only."""
    from csnln.ablation import per_image_gains, write_attention_report

    train, bench = data
    budget = dataclasses.replace(TINY, name="tiny-attention", depth=1)
    out = tmp_path / "ablations"
    results = run_study("attention", budget, out, train_dirs=[train], benchmarks=bench)
    assert len(results) == 8
    found = load_results(out, budget, "attention")
    cell = found[REFERENCE.resolved(budget)]
    local = found[Variant(branches=("local",)).resolved(budget)]
    gains = per_image_gains(cell, local, "B100")
    assert [name for name, _ in gains] and len(gains) == 2
    assert gains[0][1] >= gains[1][1]
    expected = statistics.fmean(r.per_image["B100"]["im0"] for r in cell) - statistics.fmean(
        r.per_image["B100"]["im0"] for r in local
    )
    assert dict(gains)["im0"] == pytest.approx(expected)
    report = write_attention_report("attention", budget, out, timing=False).read_text()
    assert "| L (bundled cell)" not in report and "(bundled cell)" in report
    assert "matched cost" in report and "## The bundled cell against each variant" in report
    assert "### B100: bundled cell minus local only, per image" in report
    assert (out / budget.name / "attention_cost_B100.png").is_file()
    with pytest.raises(FileExistsError):
        write_attention_report("attention", budget, out, timing=False)


def test_step_costs_take_turns_and_ignore_one_slow_round() -> None:
    """Step costs are the median of rounds in which the variants take turns: a clock that
    jumps once (the machine busy for a moment) moves no variant's figure."""
    from csnln.ablation.cost import step_costs

    variants = [REFERENCE.resolved(TINY), Variant(branches=("local",)).resolved(TINY)]
    ticks = {"now": 0.0, "calls": 0}

    def clock() -> float:
        ticks["calls"] += 1
        ticks["now"] += 1000.0 if ticks["calls"] == 12 else 1.0
        return ticks["now"]

    costs = step_costs(variants, TINY, torch.device("cpu"), clock, rounds=5, timed_steps=2)
    # every timed block reads the clock twice: 1 s apart, over 2 steps
    assert costs == {variants[0]: 0.5, variants[1]: 0.5}
    assert ticks["calls"] == 2 * len(variants) * (5 + 1)


def test_window_study_fine_tunes_each_arm_from_its_bundled_run(tmp_path) -> None:
    from csnln.ablation import BUDGETS, STUDY_BUDGETS, study_runs, train_config
    from csnln.ablation.runs import run_dir

    budget = BUDGETS[STUDY_BUDGETS["window"]]
    runs = study_runs(["window"], budget)
    keys = [f"{v.key}/seed{s}" for v, s in runs]
    assert keys == [
        "LIC-projection-p3-d1/seed0",
        "L-projection-p3-d1/seed0",
        "L-projection-p3-d1-f86/seed0",
        "LIC-projection-p3-d1/seed1",
        "L-projection-p3-d1/seed1",
        "L-projection-p3-d1-f86/seed1",
    ]
    variant, seed = runs[2]
    folder = run_dir(tmp_path, budget, variant, seed)
    config = train_config(
        variant, seed, budget, folder, train_dirs=["x/*"], val_dir="v", device="cpu", threads=1
    )
    start = run_dir(tmp_path, BUDGETS["bundled"], variant, seed) / "final.safetensors"
    assert config.model.init == str(start)
    assert (config.data.patch_size, config.model.n_feats) == (48, 86)
    assert config.optim.warmup_steps == budget.warmup
