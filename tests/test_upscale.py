"""Tests for ``csnln upscale`` and :mod:`csnln.upscaling`: kinds, formats, naming, safety,
tiling, memory budgets, comparison image, models, precision, metadata, interruption."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import csnln
from csnln import upscaling, zoo
from csnln.cli import main
from csnln.data.imresize import imresize
from csnln.imageio import read_image, write_image
from csnln.inference import estimate_memory
from csnln.metrics import psnr
from csnln.upscaling import MemoryBudgetError, plan_upscale
from csnln.zoo import NoBundledModelError

RNG = np.random.default_rng(7)


def _smooth(h: int, w: int, channels: int = 3) -> np.ndarray:
    """A smooth colourful float image in [0, 1] (JPEG-friendly, with some detail)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [
        0.5 + 0.4 * np.sin(x / 3.0 + c) * np.cos(y / 4.0 - c) + 0.05 * RNG.random((h, w))
        for c in range(channels)
    ]
    return np.clip(np.stack(planes, axis=2), 0, 1).astype(np.float32)


def _u8(a: np.ndarray) -> np.ndarray:
    return (a * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def tiny() -> csnln.CSNLN:
    torch.manual_seed(0)
    return csnln.CSNLN(2, n_feats=4, depth=1).eval()


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory, tiny: csnln.CSNLN) -> Path:
    return csnln.save_checkpoint(tiny, tmp_path_factory.mktemp("models") / "tiny_x2.safetensors")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    zoo.clear_model_cache()


def _cli(*args: object) -> int:
    return main(["upscale", *map(str, args)])


# --------------------------------------------------------------------------------------------
# Python API
# --------------------------------------------------------------------------------------------


def _kinds() -> dict[str, object]:
    rgb = _smooth(12, 10)
    return {
        "pil-rgb": Image.fromarray(_u8(rgb)),
        "pil-grey": Image.fromarray(_u8(rgb[:, :, 0])),
        "pil-rgba": Image.fromarray(_u8(_smooth(12, 10, 4))),
        "uint8": _u8(rgb),
        "uint16": (rgb * 65535).round().astype(np.uint16),
        "float32": rgb,
        "float64-grey-hw": rgb[:, :, 0].astype(np.float64),
        "uint8-hw": _u8(rgb[:, :, 1]),
        "tensor-chw": torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
        "tensor-nchw-u8": torch.from_numpy(_u8(_smooth(12, 10, 4))).permute(2, 0, 1)[None],
        "tensor-hw": torch.from_numpy(rgb[:, :, 2].copy()),
    }


@pytest.mark.parametrize("kind", list(_kinds()))
def test_api_returns_the_same_kind(kind: str, tiny: csnln.CSNLN) -> None:
    image = _kinds()[kind]
    out = csnln.upscale(image, 2, tiny)
    assert type(out) is type(image)
    if isinstance(image, Image.Image):
        assert out.mode == image.mode and out.size == (20, 24)
        return
    assert out.dtype == image.dtype
    if isinstance(image, torch.Tensor):  # ... x H x W
        h, w = image.shape[-2:]
        assert tuple(out.shape) == (*image.shape[:-2], 2 * h, 2 * w)
    else:  # H x W (x C)
        h, w = image.shape[:2]
        assert out.shape == (2 * h, 2 * w, *image.shape[2:])


def test_api_greyscale_and_alpha() -> None:
    rgba = _smooth(12, 10, 4)
    out = csnln.upscale(rgba, 2, "bicubic")
    alpha = imresize(torch.from_numpy(rgba[:, :, 3])[None, None], 2.0)[0, 0].clamp(0, 1)
    np.testing.assert_allclose(out[:, :, 3], alpha.numpy(), atol=1e-6)
    grey = csnln.upscale(rgba[:, :, :1], 2, "bicubic")
    expected = imresize(torch.from_numpy(rgba[:, :, 0])[None], 2.0)[0].clamp(0, 1)
    assert grey.shape == (24, 20, 1)
    np.testing.assert_allclose(grey[:, :, 0], expected.numpy(), atol=1e-6)


def test_api_model_scale_must_match(tiny: csnln.CSNLN) -> None:
    with pytest.raises(ValueError, match="x2"):
        csnln.upscale(_smooth(8, 8), 4, tiny)
    with pytest.raises(TypeError, match="PIL image"):
        csnln.upscale([[0.5]], 2, "bicubic")  # type: ignore[type-var]


def test_api_model_cache(tiny_path: Path) -> None:
    first = zoo.resolve_model(str(tiny_path), 2, "cpu")
    assert zoo.resolve_model(tiny_path, 2, "cpu") is first
    assert zoo.resolve_model(tiny_path, None, "cpu").scale == 2


def test_default_model_needs_bundled_weights(
    tmp_path: Path, tiny: csnln.CSNLN, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(zoo.BUNDLED, "small", raising=False)  # as if none were bundled
    with pytest.raises(NoBundledModelError, match="no bundled weights are installed for x2"):
        csnln.upscale(_smooth(8, 8), 2)
    # Once weights are listed in zoo.BUNDLED and installed, model=None finds them.
    csnln.save_checkpoint(tiny, tmp_path / "tiny_x2.safetensors")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(zoo.BUNDLED, "tiny", zoo.BundledModel({2: "tiny_x2.safetensors"}, {}))
    assert zoo.default_model_name(2) == "tiny"
    image = _smooth(8, 8)
    np.testing.assert_array_equal(csnln.upscale(image, 2), csnln.upscale(image, 2, tiny))
    (tmp_path / "in.png").write_bytes(b"")
    write_image(tmp_path / "in.png", torch.rand(3, 8, 8), overwrite=True)
    assert _cli(tmp_path / "in.png", "--scale", 2, "--no-progress") == 0
    assert (tmp_path / "in_x2.png").is_file()


# --------------------------------------------------------------------------------------------
# tiling and memory
# --------------------------------------------------------------------------------------------


def test_tiled_matches_whole(tiny: csnln.CSNLN) -> None:
    image = _smooth(40, 40)
    # On the CPU (a GPU's repeated calls differ by an ulp: tests/test_cuda.py).
    whole = csnln.upscale(image, 2, tiny, tile=0, device="cpu")
    one_tile = csnln.upscale(image, 2, tiny, tile=40, tile_overlap=8, device="cpu")
    np.testing.assert_array_equal(one_tile, whole)  # one tile covering the image: identical
    tiled = csnln.upscale(image, 2, tiny, tile=24, tile_overlap=8, device="cpu")
    assert psnr(tiled, whole, crop=2) > 35  # the attention sees less, but no seams
    # A local model (bicubic) shows that the blending itself adds no seam.
    b_whole = csnln.upscale(image, 2, "bicubic", tile=0)
    b_tiled = csnln.upscale(image, 2, "bicubic", tile=16, tile_overlap=8)
    assert np.abs(b_tiled - b_whole).max() < 0.01


def test_max_memory_picks_the_tile(tiny: csnln.CSNLN) -> None:
    whole = plan_upscale(tiny, 32, 32, max_memory="8GB", device="cpu")
    assert whole.tile == 0 and whole.calls == 1 and whole.needed <= whole.budget
    # A little more than the model needs on a 20x20 tile: the whole image does not fit.
    budget = estimate_memory(tiny, 20, 20) + 2 * 32 * 32 * 4 * 4 * 10
    plan = plan_upscale(tiny, 32, 32, max_memory=budget, device="cpu")
    assert plan.tile != 0 and 3 <= plan.tile < 32 and plan.calls > 1
    assert plan.needed <= budget
    image = _smooth(32, 32)
    np.testing.assert_array_equal(
        csnln.upscale(image, 2, tiny, max_memory=budget, device="cpu"),
        csnln.upscale(
            image,
            2,
            tiny,
            tile=plan.tile,
            tile_overlap=plan.overlap,
            tile_batch=plan.batch,
            tile_streams=plan.streams,  # threads of other sizes round differently
            device="cpu",
        ),
    )


def test_too_large_for_the_budget_is_refused(tiny: csnln.CSNLN) -> None:
    with pytest.raises(MemoryBudgetError) as info:
        plan_upscale(tiny, 40, 40, max_memory="1MB", device="cpu")
    assert info.value.needed > info.value.budget == 2**20
    # The output canvas alone (4000x4000 x3 floats and blending buffers) exceeds 400 MB.
    with pytest.raises(MemoryBudgetError, match=r"needs about .* more than the 400 MB"):
        plan_upscale(tiny, 2000, 2000, max_memory="400MB", device="cpu")


def test_refusal_counts_the_calls_running_at_once(
    tiny: csnln.CSNLN, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fixed tile without a budget keeps its two calls at once; when the free memory holds
    # one call but not two, the refusal's figures are those of both calls.
    from csnln import inference
    from csnln.inference import planner

    options = dict(tile=32, tile_overlap=4, tile_batch=1, tile_streams=2, device="cpu")
    one = plan_upscale(tiny, 100, 100, **options, max_memory="8GB")
    assert one.streams == 2
    call = (
        one.needed - inference.output_bytes(2, 100, 100, 1, tiled=True, alpha=False, ensemble=False)
    ) // 2
    monkeypatch.setattr(planner, "available_memory", lambda device: one.needed - call // 2)
    with pytest.raises(MemoryBudgetError, match="2 calls at once.*--tile-streams 1") as info:
        plan_upscale(tiny, 100, 100, **options)
    assert info.value.needed == one.needed > info.value.budget


def test_cli_refuses_with_the_numbers(
    tmp_path: Path, tiny_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    Image.fromarray(_u8(_smooth(16, 16))).save(tmp_path / "a.png")
    code = _cli(tmp_path / "a.png", "--model", tiny_path, "--max-memory", "1MB", "--no-progress")
    err = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "a_x2.png").exists()
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "a.png" in line and "needs about" in line and "1 MB" in line
    # A large image is refused from its header, before it is decoded or computed.
    Image.new("L", (2000, 2000)).save(tmp_path / "big.png")
    decoded = []
    monkeypatch.setattr(upscaling, "read_image", lambda path: decoded.append(path))
    code = _cli(tmp_path / "big.png", "--model", tiny_path, "--max-memory", "400MB")
    assert code == 1 and not decoded and not (tmp_path / "big_x2.png").exists()
    assert "2000x2000 at x2 needs about" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# the command line: formats, naming, safety
# --------------------------------------------------------------------------------------------


def _srgb() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _folder(root: Path) -> Path:
    folder = root / "in"
    folder.mkdir()
    rgb = _smooth(16, 12)
    write_image(folder / "p8.png", torch.from_numpy(rgb).permute(2, 0, 1))
    write_image(folder / "p16.png", torch.from_numpy(rgb).permute(2, 0, 1), bit_depth=16)
    Image.fromarray(_u8(rgb)).save(folder / "photo.jpg", quality=95)
    Image.fromarray(_u8(rgb)).save(folder / "w.webp", quality=95)
    Image.fromarray(_u8(rgb)).save(folder / "t.tif")
    Image.fromarray(_u8(rgb)).save(folder / "b.bmp")
    Image.fromarray(_u8(rgb[:, :, 0])).save(folder / "grey.png")
    Image.fromarray(_u8(_smooth(16, 12, 4))).save(folder / "rgba.png")
    return folder


def test_cli_folder_of_formats(tmp_path: Path, tiny_path: Path, capsys) -> None:
    folder = _folder(tmp_path)
    assert _cli(folder, "--scale", 2, "--model", tiny_path, "--no-progress") == 0
    out = capsys.readouterr().out
    names = ["p8.png", "p16.png", "photo.jpg", "w.webp", "t.tif", "b.bmp", "grey.png", "rgba.png"]
    for name in names:
        stem, ext = name.rsplit(".", 1)
        result = folder / f"{stem}_x2.{ext}"
        assert result.is_file() and str(result) in out
        source, loaded = read_image(folder / name), read_image(result)
        assert loaded.size == (24, 32)
        assert loaded.grey == source.grey and (loaded.alpha is None) == (source.alpha is None)
        assert loaded.bit_depth == source.bit_depth
    assert read_image(folder / "p16_x2.png").bit_depth == 16
    assert read_image(folder / "grey_x2.png").grey
    assert read_image(folder / "rgba_x2.png").alpha is not None
    assert not list(folder.glob(".*.tmp"))


def test_cli_output_naming(tmp_path: Path, capsys) -> None:
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "a.png")
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "b.jpg")
    args = ("--model", "bicubic", "--scale", 3, "--no-progress")
    assert _cli(tmp_path / "a.png", *args) == 0
    assert (tmp_path / "a_x3.png").is_file()  # beside the input
    out = tmp_path / "results" / "x"
    assert _cli(tmp_path / "a.png", tmp_path / "b.jpg", "-o", out, *args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x3.png", "b_x3.jpg"]
    assert _cli(tmp_path / "a.png", "-o", tmp_path / "results" / "big.webp", *args) == 0
    assert Image.open(tmp_path / "results" / "big.webp").size == (24, 24)
    assert _cli(tmp_path / "a.png", tmp_path / "b.jpg", "-o", tmp_path / "c.png", *args) == 2
    assert "give a folder" in capsys.readouterr().err
    # Rerun on the folder: a_x3.png is not upscaled again (no a_x3_x3.png) and is not
    # overwritten (an error for a.png); b.jpg is processed.
    assert _cli(tmp_path, *args) == 1
    assert not (tmp_path / "a_x3_x3.png").exists() and (tmp_path / "b_x3.jpg").is_file()
    assert "a_x3.png already exists" in capsys.readouterr().err


def test_cli_never_overwrites_without_permission(tmp_path: Path, capsys) -> None:
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "a.png")
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "b.png")
    (tmp_path / "a_x2.png").write_bytes(b"keep me")
    code = _cli(tmp_path / "a.png", tmp_path / "b.png", "--model", "bicubic", "--scale", 2)
    err = capsys.readouterr().err
    assert code == 1 and (tmp_path / "a_x2.png").read_bytes() == b"keep me"
    assert "a_x2.png already exists" in err and "--overwrite" in err
    assert (tmp_path / "b_x2.png").is_file()
    assert _cli(tmp_path / "a.png", "--model", "bicubic", "--scale", 2, "--overwrite") == 0
    assert Image.open(tmp_path / "a_x2.png").size == (16, 16)


def test_cli_corrupt_input_named_others_processed(tmp_path: Path, capsys) -> None:
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    code = _cli(tmp_path, "--model", "bicubic", "--scale", 2, "--no-progress")
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and any("bad.png" in e for e in errors)
    assert any("cut.png" in e for e in errors)
    assert (tmp_path / "good_x2.png").is_file()
    assert not (tmp_path / "bad_x2.png").exists() and not (tmp_path / "cut_x2.png").exists()
    assert _cli(tmp_path / "missing.png", "--model", "bicubic") == 2


def test_cli_model_errors(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "a.png")
    small = zoo.BUNDLED["small"]
    monkeypatch.setitem(  # as if x2 only
        zoo.BUNDLED, "small", zoo.BundledModel({2: small.files[2]})
    )
    assert _cli(tmp_path / "a.png", "--scale", 3) == 2
    err = capsys.readouterr().err
    assert "no bundled weights are installed for x3" in err and "--model bicubic" in err
    assert len(err.strip().splitlines()) == 1
    assert _cli(tmp_path / "a.png", "--model", tmp_path / "nope.pt") == 2
    assert (
        _cli(tmp_path / "a.png", "--model", "bicubic", "--precision", "fp16", "--device", "cpu")
        == 2
    )
    assert "GPU" in capsys.readouterr().err
    assert not (tmp_path / "a_x3.png").exists()


def test_cli_compare_image(tmp_path: Path, tiny_path: Path) -> None:
    Image.fromarray(_u8(_smooth(20, 24))).save(tmp_path / "a.png")
    assert _cli(tmp_path / "a.png", "--model", tiny_path, "--compare", "--no-progress") == 0
    compare = Image.open(tmp_path / "a_x2_compare.png")
    assert compare.mode == "RGB" and compare.width > 2 * 48 and compare.height > 40
    assert (tmp_path / "a_x2.png").is_file()


def test_cli_bicubic_model(tmp_path: Path) -> None:
    image = _u8(_smooth(10, 12))
    Image.fromarray(image).save(tmp_path / "a.png")
    assert _cli(tmp_path / "a.png", "--model", "bicubic", "--scale", 4, "--no-progress") == 0
    out = np.asarray(Image.open(tmp_path / "a_x4.png")).astype(np.float64)
    lr = torch.from_numpy(image).permute(2, 0, 1).double()
    expected = imresize(lr, 4.0).clamp(0, 255).permute(1, 2, 0).numpy()
    assert out.shape == (40, 48, 3) and np.abs(out - expected).max() <= 1.0


def test_cli_authors_checkpoint(tmp_path: Path) -> None:
    from reference import ReferenceCSNLN

    torch.manual_seed(0)
    reference = ReferenceCSNLN(2, n_feats=8, depth=1)
    torch.save(reference.state_dict(), tmp_path / "model_x2.pt")
    Image.fromarray(_u8(_smooth(12, 12))).save(tmp_path / "a.png")
    assert _cli(tmp_path / "a.png", "--model", tmp_path / "model_x2.pt", "--no-progress") == 0
    assert Image.open(tmp_path / "a_x2.png").size == (24, 24)  # scale read from the checkpoint
    net = csnln.load_official(tmp_path / "model_x2.pt")
    expected = csnln.upscale(_u8(_smooth(12, 12)), 2, net)
    assert np.abs(np.asarray(Image.open(tmp_path / "a_x2.png")).astype(int) - expected).max() <= 1
    assert _cli(tmp_path / "a.png", "--model", tmp_path / "model_x2.pt", "--scale", 4) == 2


def test_cli_self_ensemble_bf16_threads(tmp_path: Path, tiny_path: Path, capsys) -> None:
    Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / "a.png")
    threads = torch.get_num_threads()
    try:
        code = _cli(
            tmp_path / "a.png", "--model", tiny_path, "--self-ensemble", "--precision", "bf16",
            "--threads", 1,
        )  # fmt: skip
        assert code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert "tile" in capsys.readouterr().err  # the progress bar over the 8 model calls
    assert Image.open(tmp_path / "a_x2.png").size == (16, 16)


def test_bf16_close_to_fp32_and_tile_callbacks(tmp_path: Path, tiny: csnln.CSNLN) -> None:
    image = _smooth(16, 16)
    write_image(tmp_path / "a.png", torch.from_numpy(image).permute(2, 0, 1), bit_depth=16)
    started: list[int] = []
    ticks: list[None] = []
    upscaling.upscale_file(
        tmp_path / "a.png", tmp_path / "a_x2.png", 2, tiny, tile=10, tile_overlap=4,
        on_start=started.append, on_tile=lambda: ticks.append(None),
    )  # fmt: skip
    assert started == [4] and len(ticks) == 4  # 2x2 tiles
    fp32 = read_image(tmp_path / "a_x2.png").rgb.permute(1, 2, 0).numpy()
    bf16 = csnln.upscale(image, 2, tiny, tile=10, tile_overlap=4, precision="bf16")
    assert psnr(bf16, fp32) > 35


def test_cli_exif_orientation_and_icc(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    exif[0x010F] = "TestCam"
    icc = _srgb()
    Image.fromarray(_u8(_smooth(8, 12))).save(
        tmp_path / "a.jpg", quality=95, exif=exif.tobytes(), icc_profile=icc
    )
    assert _cli(tmp_path / "a.jpg", "--model", "bicubic", "--scale", 2, "--no-progress") == 0
    with Image.open(tmp_path / "a_x2.jpg") as out:
        assert out.size == (16, 24)  # upright: the 12x8 source turned to 8x12, then x2
        assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "TestCam"
        assert out.info["icc_profile"] == icc


def test_cli_interrupt_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    for name in ("a", "b", "c"):
        Image.fromarray(_u8(_smooth(8, 8))).save(tmp_path / f"{name}.png")
    calls = []
    real_save = Image.Image.save

    def save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        calls.append(fp)
        if len(calls) == 2:
            if hasattr(fp, "write"):
                fp.write(b"partial")  # type: ignore[union-attr]
            raise KeyboardInterrupt
        real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    code = _cli(tmp_path, "--model", "bicubic", "--scale", 2, "--no-progress")
    assert code == 130 and "1 of 3" in capsys.readouterr().err
    names = sorted(os.listdir(tmp_path))
    assert names == ["a.png", "a_x2.png", "b.png", "c.png"]


def test_cli_help_explains_every_option(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["upscale", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--scale", "--output", "--model", "--tile ", "--tile-overlap", "--max-memory",
        "--self-ensemble", "--precision", "--device", "--threads", "--overwrite", "--compare",
    ):  # fmt: skip
        assert option in text


def test_progress_in_a_file_is_plain_lines() -> None:
    import io

    from csnln.progress import LineProgress

    out = io.StringIO()
    bar = LineProgress(total=4, desc="a.png", unit="tiles", file=out, interval=0.0)
    for _ in range(4):
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and lines[-1].startswith("a.png: 4/4 tiles (100%)")
    assert len(lines) == 4  # every update past the interval (3) and the closing line


def test_the_plan_line_of_a_long_job(capsys) -> None:
    from csnln.inference import Plan
    from csnln.progress import TileProgress

    progress = TileProgress(enabled=False)
    progress.LONG_JOB_S = 0.0  # every job is "long" here
    progress.name = "photo.jpg"
    progress.start(Plan(tile=48, overlap=8, batch=2, precision="bf16", calls=10))
    for _ in range(6):  # the first wave (one call of 2 tiles), then two more: the estimate
        progress.update()
    err = capsys.readouterr().err
    assert "photo.jpg: 10 tiles of 48 (overlap 8, 2 per call, 1 at once), bf16: about" in err
