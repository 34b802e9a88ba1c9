"""The rough edges a new user met in the first hour, each with the check that would have caught
it (the ablation report and the web image route are checked in test_ablation.py and
test_web.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import csnln
from csnln.cli import main
from csnln.commands import attention as attention_command
from csnln.commands import upscale as upscale_command
from csnln.comparison import make_comparison
from csnln.inference import Plan, RunOptions, plan_run
from csnln.models import describe

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(7)


def _photo(path: Path, w: int, h: int) -> Path:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [0.5 + 0.4 * np.sin(x / 5 + c) * np.cos(y / 7 - c) for c in range(3)]
    image = np.clip(np.stack(planes, 2) + 0.03 * RNG.random((h, w, 3)), 0, 1)
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = csnln.CSNLN(2, n_feats=4, depth=1).eval()
    return csnln.save_checkpoint(model, tmp_path_factory.mktemp("m") / "tiny_x2.safetensors")


# --- csnln attention on a photo ------------------------------------------------------------


def test_attention_on_a_large_photo_sees_a_window_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's example on a 768x512 photo ran the whole image (90 s and counting); it
    now sees a 96x96 window around the pixel, as the web app, and says which."""
    photo = _photo(tmp_path / "photo.png", 768, 512)
    out = tmp_path / "attention.png"
    args = ["attention", str(photo), "--scale", "2", "--at", "700,500", "-o", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "the network sees the 96x96 window at x=652,y=416 of the 768x512 image" in printed
    assert out.is_file()
    # Every match printed lies inside the input image, in the input's coordinates.
    for x, y in _match_positions(printed):
        assert 0 <= x < 768 and 0 <= y < 512
    assert attention_command.window_box((512, 768), (500, 700, 1, 1), 96) == (416, 652, 96, 96)
    assert attention_command.window_box((512, 768), (500, 760, 1, 1), 96) == (416, 672, 96, 96)
    assert attention_command.window_box((60, 80), (5, 5, 1, 1), 96) == (0, 0, 60, 80)
    assert attention_command.window_box((512, 768), (10, 10, 1, 1), 0) == (0, 0, 512, 768)
    with pytest.raises(ValueError, match="larger than the 96x96 window"):
        attention_command.window_box((512, 768), (0, 0, 100, 100), 96)


def _match_positions(printed: str) -> list[tuple[int, int]]:
    found = []
    for part in printed.split(" at x=")[1:]:
        x, rest = part.split(",y=", 1)
        found.append((int(x), int(rest.split(",")[0].split()[0])))
    return found


def test_attention_matches_in_the_padding_are_named_not_placed_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At x4 a match could print as x=0,y=128 on a 128x128 input: a box of the padding past
    the image's edge. Positions now lie inside the image, or say they are in the padding."""
    assert attention_command._where((128.0, 0.0, 128.0, 6.0), (0, 0)) == (
        "in the padding beyond the image's edge"
    )
    assert attention_command._where((10.0, 20.0, 16.0, 26.0), (100, 200)) == "x=223,y=113"
    assert attention_command._where((39.0, 10.0, 40.0, 12.0), (0, 0)) == "x=11,y=39"
    photo = _photo(tmp_path / "small.png", 40, 40)
    out = tmp_path / "a4.png"
    assert main(["attention", str(photo), "--scale", "4", "--at", "20,39", "-o", str(out)]) == 0
    for x, y in _match_positions(capsys.readouterr().out):
        assert 0 <= x < 40 and 0 <= y < 40


# --- csnln upscale ---------------------------------------------------------------------------


def test_an_explicit_small_tile_gets_an_overlap_that_fits(tmp_path: Path, tiny_path: Path) -> None:
    """`--tile 8` failed with "tile overlap 16 must be smaller than the tile 8"."""
    descriptor = describe(csnln.zoo.load_model(tiny_path))
    for tile in (4, 8, 16, 40, 64, 96):
        plan = plan_run(descriptor, 100, 120, RunOptions(tile=tile, device="cpu"))
        assert plan.overlap < plan.tile and plan.overlap == min(16, tile // 4)
    with pytest.raises(ValueError, match="the smallest valid tile: 4"):  # x2: multiples of 2
        plan_run(descriptor, 100, 120, RunOptions(tile=3, device="cpu"))
    photo = _photo(tmp_path / "crop.png", 30, 20)
    assert main(["upscale", str(photo), "--model", str(tiny_path), "--tile", "8"]) == 0
    assert (tmp_path / "crop_x2.png").is_file()


def test_an_unwritable_output_folder_fails_before_any_compute(
    tmp_path: Path, tiny_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o /sys/kernel/` as root computed for 8 s, then failed on the temporary file: the
    folder's access bits say yes to root. The check now writes a probe file first."""
    unwritable = Path("/proc")  # no file can be made here, by root either
    computed: list[Path] = []
    monkeypatch.setattr(
        upscale_command, "upscale_file", lambda source, *a, **k: computed.append(source)
    )
    photo = _photo(tmp_path / "p.png", 24, 20)
    assert main(["upscale", str(photo), "--model", str(tiny_path), "-o", f"{unwritable}/"]) == 1
    assert computed == []
    with pytest.raises(PermissionError, match="cannot write into folder /proc"):
        csnln.imageio.check_writable(unwritable / "x.png")


def test_an_output_with_an_unknown_extension_is_an_error_not_a_folder(
    tmp_path: Path, tiny_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = _photo(tmp_path / "p.png", 24, 20)
    target = tmp_path / "out.xyz"
    assert main(["upscale", str(photo), "--model", str(tiny_path), "-o", str(target)]) == 2
    assert not target.exists()
    assert ".xyz is not an image format csnln writes" in capsys.readouterr().err
    # A version-like folder suffix is still a folder.
    folder = tmp_path / "v.1"
    assert main(["upscale", str(photo), "--model", str(tiny_path), "-o", str(folder)]) == 0
    assert (tmp_path / "v.1" / "p_x2.png").is_file()


def test_the_time_estimate_leaves_out_the_first_calls_warm_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The estimate was the first wave's time times the waves: 1.5-2.5x too high, since the
    first calls also choose kernels. A job whose first wave takes 5 s and every later one 1 s
    is now estimated at what it takes."""
    clock = [0.0]
    from csnln import progress as progress_module

    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: clock[0])
    progress = progress_module.TileProgress(enabled=False)
    progress.name = "photo.jpg"
    progress.start(Plan(tile=32, overlap=8, batch=8, streams=2, calls=160, precision="bf16"))
    wave = 16
    for done in range(1, 161):
        if done % wave == 1:
            clock[0] += 5.0 if done == 1 else 1.0  # a wave's calls finish together
        progress.update()
    real = clock[0]  # 5 + 9 * 1 = 14 s
    assert progress.estimate is not None
    assert abs(progress.estimate / real - 1) < 0.05
    assert "about 14 s" in capsys.readouterr().err


def test_comparison_captions_say_what_is_shown() -> None:
    """Help said "4x zoom" while captions said 2x; panels said "small" for csnln; a narrow
    view sat at the left of its column with grey space beside it."""
    assert "4x zoom" not in upscale_command.__doc__ + _help("upscale")
    assert "zoom factor in its caption" in " ".join(_help("upscale").split())
    assert csnln.zoo.model_label("small", 2) == "csnln small"
    assert csnln.zoo.model_label(None, 2) == "csnln small"
    assert csnln.zoo.model_label("bicubic", 2) == "bicubic"
    lr = torch.rand(3, 40, 12)
    sr = torch.nn.functional.interpolate(lr[None], scale_factor=4, mode="nearest")[0]
    picture = np.asarray(make_comparison(lr, sr, label="csnln small"))
    background = np.array([32, 32, 32])
    # The 48-pixel-wide view is centred over its wider zoom: grey on both sides of it.
    row = picture[60]  # a row of the views, below the captions
    columns = np.where((row != background).any(axis=1))[0]
    first_column = columns[columns < picture.shape[1] // 2]
    left_margin = first_column.min()
    right_margin = picture.shape[1] // 2 - first_column.max()
    assert abs(left_margin - right_margin) <= 8


def _help(command: str) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit):
        main([command, "--help"])
    return buffer.getvalue()


# --- the smaller messages ---------------------------------------------------------------------


def test_eval_on_the_parent_of_the_sets_names_them(tmp_path: Path) -> None:
    for name in ("Set5", "B100"):
        (tmp_path / name).mkdir()
        _photo(tmp_path / name / "a.png", 24, 24)
    with pytest.raises(FileNotFoundError, match=r"holds dataset folders \(B100, Set5\)"):
        csnln.evaluation.find_dataset(tmp_path, 2)


def test_eval_tables_name_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Set").mkdir()
    _photo(tmp_path / "Set" / "a.png", 24, 24)
    args = ["eval", "--model", "bicubic", "--data", str(tmp_path / "Set"), "--scale", "2"]
    assert main([*args, "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("Model: bicubic\n")


def test_a_junk_model_file_is_named_in_words(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(csnln.models.official.CheckpointError) as info:
        csnln.zoo.load_model(junk, 2)
    message = str(info.value)
    assert "junk.pt: not a loadable checkpoint (not a PyTorch file;" in message
    assert "(101" not in message


def test_a_warm_up_longer_than_the_run_is_warned_of(tmp_path: Path) -> None:
    from csnln.training import load_config, train

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        _photo(data / f"{i}.png", 40, 40)
    config = load_config(
        ROOT / "configs" / "tiny_test.yaml",
        [f"data.train_dirs=[{data}]", "steps=2", "optim.warmup_steps=200", "val.dirs=[]",
         f"output_dir={tmp_path / 'run'}", "data.cache=memory"],
    )  # fmt: skip
    train(config)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "optim.warmup_steps 200 >= train.steps 2: the learning rate never reaches" in log


def test_models_info_is_for_people_and_json_for_scripts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "info", "small", "--scale", "2"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("name: small\nscale: 2\n") and "{" not in text
    assert "parameters: 757,993" in text and "  n feats: 64" in text
    assert main(["models", "info", "small", "--scale", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["parameters"] == 757_993


def test_the_command_list_names_every_study(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    for study in ("branches", "fusion", "patch", "depth", "width", "attention"):
        assert study in listing
