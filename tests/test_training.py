"""Training: configs, data, exact resume, non-finite handling, signals, DDP, CLI."""

from __future__ import annotations

import csv
import logging
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from csnln.models.checkpoint import read_checkpoint
from csnln.models.network import CSNLN
from csnln.training import (
    ConfigError,
    TrainConfig,
    apply_overrides,
    config_table,
    learning_rate,
    load_config,
    run_training,
    train,
)
from csnln.training import trainer as loop_module
from csnln.training.checkpointing import find_checkpoint, list_checkpoints, load_state
from csnln.training.data import (
    PatchDataset,
    StepBatchSampler,
    find_images,
    make_lr,
    prepare_images,
)
from csnln.training.precision import BF16_MIN_STEP_SPEEDUP, PrecisionChoice, choose_precision

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TINY = CONFIGS / "tiny_test.yaml"


def _images(folder: Path, count: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Smooth-ish random RGB images (a bicubic-friendly signal), as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.BICUBIC)
        img.save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _images(tmp_path_factory.mktemp("train") / "hr")


def _tiny(tmp_path: Path, data_dir: Path, *overrides: str, name: str = "run") -> TrainConfig:
    return load_config(
        TINY,
        [f"data.train_dirs=[{data_dir}]", f"output_dir={tmp_path / name}", *overrides],
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[1]


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem
    expected = Path(config.output_dir) if config.output_dir else Path("runs") / path.stem
    assert config.run_dir == expected


def test_paper_configs_follow_the_paper() -> None:
    for scale in (2, 3, 4):
        c = load_config(CONFIGS / f"paper_x{scale}.yaml")
        assert (c.model.scale, c.model.n_feats, c.model.depth) == (scale, 128, 12)
        assert (c.data.patch_size, c.data.batch_size) == (48, 16)
        assert (c.optim.lr, c.optim.betas, c.optim.eps) == (1e-4, [0.9, 0.999], 1e-8)
        assert (c.optim.schedule, c.optim.step_size, c.optim.gamma) == ("step", 200_000, 0.5)
        assert c.train.steps == 1_000_000 and c.data.augment


def test_config_readme_documents_every_key() -> None:
    readme = (CONFIGS / "README.md").read_text(encoding="utf-8")
    assert config_table() in readme, "configs/README.md is stale: regenerate its key table"
    rows = [line for line in config_table().splitlines() if line.startswith("| `")]
    assert len(rows) > 30
    for line in rows:
        assert line.split("|")[4].strip(), f"undocumented key: {line}"


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  n_feat: 8\nbatch: 3\noptim: {lr: 1e-3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "model.n_feat" in message and "model.n_feats" in message and "batch" in message


def test_types_are_checked_and_yaml_quirks_handled(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  betas: [0.8, 0.99]\ndata:\n  batch_size: 4\n")
    config = load_config(path)
    assert config.optim.lr == 1e-3 and isinstance(config.optim.lr, float)
    path.write_text("data:\n  batch_size: four\n")
    with pytest.raises(ConfigError, match="data.batch_size"):
        load_config(path)
    path.write_text("train:\n  precision: fp8\n")
    with pytest.raises(ConfigError, match="train.precision"):
        load_config(path)
    path.write_text("model:\n  scale: 5\n")
    with pytest.raises(ConfigError, match="scale"):
        load_config(path)


def test_overrides() -> None:
    config = load_config(TINY)
    new = apply_overrides(
        config,
        ["optim.lr=2e-4", "steps=10", "data.train_dirs=[a, b]", "model.chunk_size=null"],
    )
    assert (new.optim.lr, new.train.steps, new.data.train_dirs) == (2e-4, 10, ["a", "b"])
    assert new.model.chunk_size is None
    assert config.train.steps == 6  # the original is untouched
    with pytest.raises(ConfigError, match="ambiguous"):
        apply_overrides(config, ["every=3"])  # log.every, val.every, checkpoint.every
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(config, ["optim.learning_rate=1"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(config, ["steps"])


def test_learning_rate_schedules() -> None:
    o = load_config(TINY, ["optim.step_size=10", "optim.gamma=0.5"]).optim
    assert [learning_rate(o, 100, s) for s in (0, 9, 10, 25)] == [1e-3, 1e-3, 5e-4, 2.5e-4]
    c = apply_overrides(load_config(TINY), ["optim.schedule=cosine", "optim.min_lr=1e-5"]).optim
    assert learning_rate(c, 100, 0) == pytest.approx(1e-3)
    assert learning_rate(c, 100, 50) == pytest.approx((1e-3 + 1e-5) / 2)
    assert learning_rate(c, 100, 100) == pytest.approx(1e-5)
    w = apply_overrides(load_config(TINY), ["optim.warmup_steps=4"]).optim
    assert learning_rate(w, 100, 0) == pytest.approx(2.5e-4)


# --- data ------------------------------------------------------------------------------------


def test_unusable_images_are_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _images(tmp_path / "hr", count=2)
    Image.new("RGB", (12, 40)).save(folder / "narrow.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    with caplog.at_level(logging.WARNING, logger="csnln.training"):
        records = prepare_images(find_images([folder]), scale=2, patch_size=8)
    assert len(records) == 2
    text = caplog.text
    assert "narrow.png" in text and "smaller than one HR patch" in text
    assert "broken.png" in text and "cannot read" in text
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        find_images([tmp_path / "nothing_here"])


def test_patches_are_aligned_augmented_and_deterministic(tmp_path: Path) -> None:
    folder = _images(tmp_path / "hr", count=3, size=48)
    for scale in (2, 3):
        records = prepare_images(find_images([folder]), scale=scale, patch_size=12)
        ds = PatchDataset(records, scale=scale, patch_size=12, augment=True, seed=5)
        seen = set()
        for g in range(12):
            lr, hr = ds[g]
            assert lr.shape == (3, 12, 12) and hr.shape == (3, 12 * scale, 12 * scale)
            # LR is the bicubic image of HR (flips/rotations commute with the symmetric
            # kernel); away from the patch border the two agree to rounding.
            hr8 = (hr * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            again = make_lr(hr8, scale).astype(int)
            lr8 = (lr * 255).round().to(torch.int64).permute(1, 2, 0).numpy()
            assert np.abs(again[3:-3, 3:-3] - lr8[3:-3, 3:-3]).max() <= 1
            seen.add(hr.sum().item())
            # Same index, same patch, in a fresh dataset.
            lr2, hr2 = PatchDataset(records, scale=scale, patch_size=12, seed=5)[g]
            assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
        assert len(seen) > 6
    # Every image once per pass.
    ds = PatchDataset(records, scale=3, patch_size=12, seed=1)
    assert sorted(ds.image_index(g) for g in range(3)) == [0, 1, 2]


def test_disk_cache_matches_memory(tmp_path: Path) -> None:
    files = find_images([_images(tmp_path / "hr", count=2)])
    memory = prepare_images(files, scale=2, patch_size=8)
    disk = prepare_images(files, scale=2, patch_size=8, cache_dir=tmp_path / "cache")
    assert isinstance(disk[0].hr, str) and len(list((tmp_path / "cache").glob("*.npy"))) == 4
    again = prepare_images(files, scale=2, patch_size=8, cache_dir=tmp_path / "cache")
    assert [r.lr for r in again] == [r.lr for r in disk]
    a = PatchDataset(memory, scale=2, patch_size=8)
    b = PatchDataset(again, scale=2, patch_size=8)
    for g in range(4):
        assert all(torch.equal(x, y) for x, y in zip(a[g], b[g], strict=True))


def test_batches_are_sharded_across_processes() -> None:
    single = list(StepBatchSampler(3, 5, 8))
    shards = [list(StepBatchSampler(3, 5, 8, rank=r, world_size=4)) for r in range(4)]
    for k in range(2):
        assert sum((s[k] for s in shards), []) == single[k] == list(range(8 * (3 + k), 8 * (4 + k)))
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(0, 1, 6, world_size=4)


# --- the loop --------------------------------------------------------------------------------


def test_resume_is_exact(tmp_path: Path, data_dir: Path) -> None:
    # The uninterrupted run also loads its data in a worker process: batches do not depend
    # on that either.
    straight = train(_tiny(tmp_path, data_dir, "data.workers=1", name="straight"))
    half = _tiny(tmp_path, data_dir, "steps=3", name="halves")
    first = run_training(half)
    assert first.finished and first.step == 3
    with pytest.raises(FileExistsError, match="--resume"):
        train(half)  # a fresh run would clobber it
    resumed = train(apply_overrides(half, ["steps=6"]), resume=True)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in _rows(tmp_path / "halves")] == [str(s) for s in range(1, 7)]
    assert [r["loss"] for r in _rows(tmp_path / "halves")] == [
        r["loss"] for r in _rows(tmp_path / "straight")
    ]
    # A training checkpoint is also a model file; keep_last is honoured.
    assert [c.step for c in list_checkpoints(tmp_path / "halves")] == [3, 6]
    config, _, meta = read_checkpoint(find_checkpoint(tmp_path / "halves", "").weights)
    assert config.n_feats == 4 and meta["step"] == 6


def test_non_finite_loss_skips_then_rolls_back(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = loop_module.l1_loss

    def flaky(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = real(sr, hr)
        return loss * math.nan if calls["n"] in (4, 5) else loss  # steps 4 and 5

    monkeypatch.setattr(loop_module, "l1_loss", flaky)
    config = _tiny(tmp_path, data_dir, "optim.schedule=constant")
    result = run_training(config)
    assert result.finished and result.step == 6
    log_text = (tmp_path / "run" / "train.log").read_text()
    assert "step 4: non-finite loss; step skipped (1 in a row)" in log_text
    assert "rolled back to step 3" in log_text and "halved the learning rate" in log_text
    rows = _rows(tmp_path / "run")
    lrs = {int(r["step"]): float(r["lr"]) for r in rows}
    assert lrs[3] == pytest.approx(1e-3) and lrs[6] == pytest.approx(5e-4)
    assert calls["n"] == 8  # 6 steps + 2 repeated after the rollback to step 3


def test_a_skipped_step_leaves_the_weights(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = loop_module.l1_loss
    monkeypatch.setattr(loop_module, "l1_loss", lambda sr, hr: real(sr, hr) * math.inf)
    result = run_training(_tiny(tmp_path, data_dir, "steps=1", "train.max_bad_steps=5"))
    assert result.finished
    torch.manual_seed(0)
    initial = loop_module.build_model(_tiny(tmp_path, data_dir)).state_dict()
    final = _weights(result.weights)
    assert all(torch.equal(initial[k], final[k]) for k in final)


def test_sigterm_saves_and_stops_then_resume_finishes(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = loop_module.l1_loss

    def interrupting(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(sr, hr)

    monkeypatch.setattr(loop_module, "l1_loss", interrupting)
    config = _tiny(tmp_path, data_dir)
    handler = signal.getsignal(signal.SIGTERM)
    stopped = run_training(config)
    assert not stopped.finished and stopped.stopped_by == "SIGTERM" and stopped.step == 2
    assert stopped.weights.name == "step_00000002.safetensors" and stopped.weights.is_file()
    assert signal.getsignal(signal.SIGTERM) is handler  # restored
    monkeypatch.setattr(loop_module, "l1_loss", real)
    done = run_training(config, resume=True)
    assert done.finished and done.step == 6
    reference = train(_tiny(tmp_path, data_dir, name="straight"))
    a, b = _weights(reference), _weights(done.weights)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_validation_keeps_the_best_and_bf16_runs(tmp_path: Path, data_dir: Path) -> None:
    val = _images(tmp_path / "val", count=2, size=40, seed=3)
    result = run_training(
        _tiny(
            tmp_path,
            data_dir,
            f"val.dirs=[{val}]",
            "val.every=2",
            "steps=4",
            "train.precision=bf16",
            "model.gradient_checkpointing=true",
        )
    )
    rows = [r for r in _rows(tmp_path / "run") if r["val_psnr"]]
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(float(r["val_psnr"]) > 5 and 0 < float(r["val_ssim"]) <= 1 for r in rows)
    best = max(rows, key=lambda r: float(r["val_psnr"]))
    _, _, meta = read_checkpoint(tmp_path / "run" / "best.safetensors")
    assert meta["step"] == int(best["step"]) and result.best_psnr == pytest.approx(
        float(best["val_psnr"]), abs=1e-4
    )


def test_auto_precision_is_chosen_once_and_kept_on_resume(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int, int]] = []

    def choose(model: torch.nn.Module, *, scale: int, batch: int, patch: int, device):
        calls.append((scale, batch, patch))
        return PrecisionChoice("bf16", {"fp32": 2.0, "bf16": 1.0}, "stubbed")

    monkeypatch.setattr(loop_module, "choose_precision", choose)
    config = _tiny(tmp_path, data_dir, "train.precision=auto", "steps=2")
    first = run_training(config)
    assert first.finished and len(calls) == 1
    assert calls[0][1:] == (config.data.batch_size, config.data.patch_size)
    saved = load_state(list_checkpoints(tmp_path / "run")[-1])[1]
    assert saved["precision"] == "bf16"
    more = _tiny(tmp_path, data_dir, "train.precision=auto", "steps=4")
    assert run_training(more, resume=True).finished
    assert len(calls) == 1  # the resumed run took the saved choice
    assert load_state(list_checkpoints(tmp_path / "run")[-1])[1]["precision"] == "bf16"


def test_choose_precision_times_both_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from csnln.training import precision as precision_module

    model = CSNLN(2, n_feats=8, depth=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    choice = choose_precision(model, scale=2, batch=2, patch=8, device=torch.device("cpu"))
    assert choice.precision in ("fp32", "bf16") and set(choice.seconds) == {"fp32", "bf16"}
    assert all(0 < t < math.inf for t in choice.seconds.values())
    faster = choice.seconds["fp32"] / choice.seconds["bf16"] >= BF16_MIN_STEP_SPEEDUP
    assert choice.precision == ("bf16" if faster else "fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    plain = choose_precision(model, scale=2, batch=2, patch=8, device=torch.device("cpu"))
    assert (plain.precision, plain.seconds) == ("fp32", {})


def test_fp16_on_cpu_is_refused(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ValueError, match="fp16"):
        train(_tiny(tmp_path, data_dir, "train.precision=fp16"))


def test_ddp_step_equals_single_process_step(tmp_path: Path, data_dir: Path) -> None:
    """torchrun, 2 CPU processes (gloo), global batch 4 = 2 per process, vs 1 process."""
    # Adam's first step moves a weight by lr * g / (|g| + eps): with the usual eps 1e-8, a
    # gradient that is ~1e-10 in both runs (up to rounding) moves by an amount that depends on
    # its rounding. eps 1e-3 keeps the comparison about the gradients (unsynchronised ones
    # would differ by ~lr / 2 = 5e-5).
    common = [
        f"data.train_dirs=[{data_dir}]",
        "steps=1",
        "data.batch_size=4",
        "optim.lr=1e-4",
        "optim.eps=1e-3",
    ]
    single = train(load_config(TINY, [*common, f"output_dir={tmp_path / 'single'}"]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "csnln",
        "train",
        str(TINY),
        *common,
        f"output_dir={tmp_path / 'ddp'}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "on cpu (2 process(es))" in (tmp_path / "ddp" / "train.log").read_text()
    a, b = _weights(single), _weights(tmp_path / "ddp" / "final.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=0, msg=k)


# --- command line ----------------------------------------------------------------------------


def test_cli(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from csnln.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--resume" in capsys.readouterr().out
    assert main(["train", "--keys"]) == 0
    assert "optim.grad_clip" in capsys.readouterr().out
    assert main(["train", str(TINY), "optim.lr=3e-4", "--print-config"]) == 0
    assert "lr: 0.0003" in capsys.readouterr().out
    assert main(["train", str(TINY), "optim.lrate=1"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    run = tmp_path / "cli"
    args = ["train", str(TINY), f"data.train_dirs=[{data_dir}]", f"output_dir={run}", "steps=2"]
    assert main(args) == 0
    assert main([*args, "steps=3", "--resume"]) == 0  # continues from step 2
    assert [c.step for c in list_checkpoints(run)] == [2, 3]
    assert main([*args, "--resume", "steps=4"]) == 0  # override after --resume
    assert [c.step for c in list_checkpoints(run)] == [3, 4]


def test_cli_overrides_after_resume(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job script's `CONFIG a=1 --resume "$@"` with several overrides in "$@"."""
    from csnln.cli import main
    from csnln.commands.train import main as module_main

    run = tmp_path / "cli"
    args = ["train", str(TINY), f"data.train_dirs=[{data_dir}]", f"output_dir={run}"]
    assert main([*args, "--resume", "steps=2", "log.every=1", "seed=3"]) == 0
    assert [c.step for c in list_checkpoints(run)] == [2]
    assert main([*args, "--resume", "--print-config", "steps=5", "log.every=7"]) == 0
    printed = capsys.readouterr().out
    assert "steps: 5" in printed and "every: 7" in printed
    # in command-line order: the later of two values for one key wins
    assert main([*args, "--resume", "log.every=3", "log.every=9", "--print-config"]) == 0
    assert "every: 9" in capsys.readouterr().out
    # the override argparse took as --resume's checkpoint, with no other word after it
    assert main([*args, "--print-config", "--resume", "steps=6"]) == 0
    assert "steps: 6" in capsys.readouterr().out
    # python -m csnln train takes them the same way
    assert module_main([*args[1:], "--resume", "steps=3", "log.every=1"]) == 0
    assert [c.step for c in list_checkpoints(run)] == [2, 3]
    # anything that is not key=value is still an error, named
    for words in (["--resume", "steps=4", "--bogus"], ["--resume", "steps=4", "stray"]):
        with pytest.raises(SystemExit) as exc:
            main([*args, *words])
        assert exc.value.code == 2
        assert words[-1] in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["upscale", "x.png", "a=1", "--bogus"])
    assert "--bogus" in capsys.readouterr().err


def test_training_in_attention_windows_records_them(tmp_path: Path, data_dir: Path) -> None:
    # Patches of 12 and windows of 6: the attentions run windowed in the forward and backward
    # passes, and the weights carry the window their runs then use by default.
    config = _tiny(tmp_path, data_dir, "steps=2", "data.patch_size=12", "model.attention_window=6")
    result = run_training(config)
    _, _, meta = read_checkpoint(result.weights)
    assert meta["attention_window"] == 6 and meta["trained_window"] == 12
    from csnln import load_checkpoint

    assert load_checkpoint(result.weights).descriptor.trained_attention_window == 6
    with pytest.raises(ConfigError, match="model.attention_window: .*smallest valid value"):
        run_training(_tiny(tmp_path, data_dir, "model.attention_window=5", name="bad"))
