"""Tests for csnln.imageio: formats, bit depths, metadata, atomic writes, conversions, inputs."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from csnln import imageio, png16
from csnln.imageio import (
    SUPPORTED_EXTENSIONS,
    ImageReadError,
    check_writable,
    expand_inputs,
    image_from_array,
    image_from_pil,
    read_image,
    to_array,
    to_pil,
    write_image,
)

RNG = np.random.default_rng(1234)


def _random(shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


def _smooth(h: int = 32, w: int = 48, channels: int = 3) -> np.ndarray:
    """A smooth uint8 image (lossy codecs reproduce it closely)."""
    y, x = np.mgrid[:h, :w]
    planes = [127 + 100 * np.sin(x / 9 + c) * np.cos(y / 11 - c) for c in range(channels)]
    return np.stack(planes, axis=2).round().astype(np.uint8)


def _roundtrip(tmp_path: Path, array: np.ndarray, name: str, **kwargs: object) -> np.ndarray:
    """array -> LoadedImage -> file -> read_image -> array of the same kind."""
    src = image_from_array(array)
    out = write_image(
        tmp_path / name,
        src.rgb,
        alpha=src.alpha,
        grey=src.grey,
        bit_depth=src.bit_depth,
        **kwargs,
    )
    back = read_image(out)
    assert back.grey == src.grey
    return to_array(back.rgb, array, alpha=back.alpha)


def _srgb_profile() -> bytes:
    try:
        from PIL import ImageCms

        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except ImportError:  # any bytes with an RGB header will do for PNG's iCCP
        return b"\0" * 16 + b"RGB " + bytes(range(200))


# ---------------------------------------------------------------------------------------------
# round trips per format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_8bit_exact(tmp_path: Path, channels: int) -> None:
    array = _random((9, 13, channels))
    assert np.array_equal(_roundtrip(tmp_path, array, "a.png"), array)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_16bit_exact(tmp_path: Path, channels: int) -> None:
    array = _random((9, 13, channels), np.uint16)
    array[0, 0] = 12345  # not a multiple of 257: a high-byte-only reader would get it wrong
    assert np.any(array % 257)
    out = _roundtrip(tmp_path, array, "a.png")
    assert out.dtype == np.uint16
    assert np.array_equal(out, array)
    assert read_image(tmp_path / "a.png").bit_depth == 16


def test_pillow_truncates_16bit_rgb_png_but_we_do_not(tmp_path: Path) -> None:
    array = _random((7, 11, 3), np.uint16)
    path = write_image(tmp_path / "rgb16.png", torch.from_numpy(array / 65535.0).permute(2, 0, 1),
                       bit_depth=16)  # fmt: skip
    with Image.open(path) as img:  # an independent decoder of our encoder's output
        assert img.mode == "RGB"  # Pillow 13: 8-bit, high bytes only
        assert np.array_equal(np.asarray(img), (array >> 8).astype(np.uint8))
    loaded = read_image(path)
    assert loaded.bit_depth == 16 and not loaded.grey
    assert np.array_equal(np.rint(loaded.rgb.permute(1, 2, 0).numpy() * 65535), array)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered(sub: np.ndarray, filters: list[int]) -> bytes:
    """Reference PNG filtering, byte by byte (PNG spec, section 9)."""
    bpp = 2 * sub.shape[2]
    rows = sub.astype(">u2").view(np.uint8).reshape(sub.shape[0], -1).tolist()
    out, prev = bytearray(), [0] * len(rows[0])
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        out.append(kind)
        for i, value in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            c = prev[i - bpp] if i >= bpp else 0
            pred = (0, a, prev[i], (a + prev[i]) // 2, _paeth(a, prev[i], c))[kind]
            out.append((value - pred) % 256)
        prev = row
    return bytes(out)


def _reference_png16(array: np.ndarray, filters: list[int], interlace: bool) -> bytes:
    h, w, channels = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    passes = png16._ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b"".join(
        _filtered(array[y0::dy, x0::dx], filters)
        for x0, y0, dx, dy in passes
        if array[y0::dy, x0::dx].size
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [4, 3, 0, 2, 1]])
def test_png16_decoder_every_filter(tmp_path: Path, filters: list[int], interlace: bool) -> None:
    array = _random((11, 9, 4), np.uint16)
    path = tmp_path / "ref.png"
    path.write_bytes(_reference_png16(array, filters, interlace))
    loaded = read_image(path)
    assert loaded.bit_depth == 16 and loaded.alpha is not None
    assert np.array_equal(to_array(loaded.rgb, array, alpha=loaded.alpha), array)


def test_jpeg_close(tmp_path: Path) -> None:
    array = _smooth()
    out = _roundtrip(tmp_path, array, "a.jpg")
    assert out.dtype == np.uint8 and out.shape == array.shape
    assert np.abs(out.astype(int) - array).mean() < 2.0


def test_webp_close_with_alpha(tmp_path: Path) -> None:
    array = _smooth(channels=4)
    out = _roundtrip(tmp_path, array, "a.webp")
    assert out.shape == array.shape
    assert np.abs(out.astype(int) - array).mean() < 3.0


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_tiff_8bit_exact(tmp_path: Path, channels: int) -> None:
    array = _random((9, 13, channels))
    assert np.array_equal(_roundtrip(tmp_path, array, "a.tif"), array)


def test_tiff_16bit_grey_exact_and_colour_falls_back(tmp_path: Path) -> None:
    grey = _random((9, 13), np.uint16)
    assert np.array_equal(_roundtrip(tmp_path, grey, "g.tiff"), grey)
    with Image.open(tmp_path / "g.tiff") as img:
        assert img.mode == "I;16"
    colour = _random((5, 6, 3), np.uint16)
    with pytest.warns(UserWarning, match="8 bits"):
        out = _roundtrip(tmp_path, colour, "c.tif")
    assert np.abs(out.astype(int) - colour).max() <= 128  # 8-bit quantisation only


def test_bmp_exact_and_alpha_dropped(tmp_path: Path) -> None:
    for channels in (1, 3):
        array = _random((9, 13, channels))
        assert np.array_equal(_roundtrip(tmp_path, array, f"a{channels}.bmp"), array)
    rgba = image_from_array(_random((4, 5, 4)))
    with pytest.warns(UserWarning, match="alpha dropped"):
        write_image(tmp_path / "b.bmp", rgba.rgb, alpha=rgba.alpha)
    assert read_image(tmp_path / "b.bmp").alpha is None


# ---------------------------------------------------------------------------------------------
# greyscale, alpha, palette, clamping
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "depth", "mode"), [
    ("g.png", 8, "L"), ("g.png", 16, "I;16"), ("g.jpg", 8, "L"), ("g.tif", 8, "L"),
    ("g.bmp", 8, "L"),
])  # fmt: skip
def test_greyscale_stays_greyscale(tmp_path: Path, name: str, depth: int, mode: str) -> None:
    rgb = torch.rand(1, 6, 7).repeat(3, 1, 1)
    write_image(tmp_path / name, rgb, grey=True, bit_depth=depth)
    with Image.open(tmp_path / name) as img:
        assert img.mode == mode
    loaded = read_image(tmp_path / name)
    assert loaded.grey and loaded.bit_depth == depth and loaded.rgb.shape == (3, 6, 7)


def test_grey_written_as_channel_mean(tmp_path: Path) -> None:
    rgb = torch.tensor([0.2, 0.4, 0.6]).view(3, 1, 1).expand(3, 2, 2)
    write_image(tmp_path / "g.png", rgb, grey=True)
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "L" and np.all(np.asarray(img) == round(0.4 * 255))


def test_clamp_and_round(tmp_path: Path) -> None:
    values = torch.tensor([-0.5, 1.7, 0.4 / 255, 0.6 / 255, float("nan"), 0.5])
    write_image(tmp_path / "c.png", values.view(1, 1, 6).expand(3, 1, 6))
    with Image.open(tmp_path / "c.png") as img:
        assert np.asarray(img)[0, :, 0].tolist() == [0, 255, 0, 1, 0, 128]


def test_rgba_alpha_preserved(tmp_path: Path) -> None:
    array = _random((8, 8, 4))
    Image.fromarray(array).save(tmp_path / "a.png")
    loaded = read_image(tmp_path / "a.png")
    assert loaded.alpha is not None and loaded.alpha.shape == (1, 8, 8)
    assert np.array_equal(np.rint(loaded.alpha[0].numpy() * 255), array[:, :, 3])
    write_image(tmp_path / "b.png", loaded.rgb, alpha=loaded.alpha)
    with Image.open(tmp_path / "b.png") as img:
        assert img.mode == "RGBA" and np.array_equal(np.asarray(img), array)


def test_palette_images(tmp_path: Path) -> None:
    rgb = Image.fromarray(_smooth(8, 10)).quantize(16)
    rgb.save(tmp_path / "p.png")
    loaded = read_image(tmp_path / "p.png")
    assert loaded.alpha is None and not loaded.grey and loaded.bit_depth == 8
    expected = np.asarray(rgb.convert("RGB"))
    assert np.array_equal(np.rint(loaded.rgb.permute(1, 2, 0).numpy() * 255), expected)
    rgb.save(tmp_path / "t.png", transparency=3)
    loaded = read_image(tmp_path / "t.png")
    assert loaded.alpha is not None
    indices = np.asarray(rgb)
    assert np.array_equal(loaded.alpha[0].numpy() == 0, indices == 3)


# ---------------------------------------------------------------------------------------------
# metadata: EXIF orientation, ICC profiles
# ---------------------------------------------------------------------------------------------


def _oriented_jpeg(path: Path, orientation: int) -> bytes:
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20, 0] = 255  # left half red, right half blue
    array[:, 20:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    raw = exif.tobytes()
    Image.fromarray(array).save(path, quality=95, exif=raw)
    return raw


def test_exif_orientation_applied_and_reset(tmp_path: Path) -> None:
    raw = _oriented_jpeg(tmp_path / "o.jpg", 6)
    loaded = read_image(tmp_path / "o.jpg")
    assert loaded.rgb.shape == (3, 40, 20)  # rotated 90 degrees clockwise: left is now top
    assert loaded.rgb[0, :15].mean() > 0.9 and loaded.rgb[0, 25:].mean() < 0.1
    exif = Image.Exif()
    exif.load(loaded.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "TestCam"
    assert len(loaded.exif) == len(raw)  # patched in place, everything else byte-exact
    for name in ("o.png", "o.jpg", "o.webp"):
        path = write_image(tmp_path / f"w_{name}", loaded.rgb, exif=loaded.exif)
        with Image.open(path) as img:
            assert img.getexif()[0x0112] == 1 and img.getexif()[0x010F] == "TestCam"
        assert read_image(path).rgb.shape == (3, 40, 20)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_table_matches_pillow(orientation: int) -> None:
    array = _random((3, 5, 2))
    img = Image.fromarray(array[:, :, 0])
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(imageio._orient_array(array, orientation)[:, :, 0], expected)


def test_exif_orientation_on_16bit_png(tmp_path: Path) -> None:
    array = _random((4, 6, 3), np.uint16)
    exif = Image.Exif()
    exif[0x0112] = 8
    path = write_image(tmp_path / "o.png", torch.from_numpy(array / 65535).permute(2, 0, 1),
                       bit_depth=16, exif=exif.tobytes())  # fmt: skip
    loaded = read_image(path)
    assert loaded.rgb.shape == (3, 6, 4)
    expected = np.rot90(array, 1)  # orientation 8: rotate 90 degrees counter-clockwise
    assert np.array_equal(to_array(loaded.rgb, expected), expected)
    parsed = Image.Exif()
    parsed.load(loaded.exif)
    assert parsed[0x0112] == 1


@pytest.mark.parametrize(("name", "depth"), [
    ("i.png", 8), ("i.png", 16), ("i.jpg", 8), ("i.webp", 8), ("i.tif", 8),
])  # fmt: skip
def test_icc_profile_carried(tmp_path: Path, name: str, depth: int) -> None:
    icc = _srgb_profile()
    write_image(tmp_path / name, torch.rand(3, 5, 6), bit_depth=depth, icc_profile=icc)
    assert read_image(tmp_path / name).icc_profile == icc


def test_mismatched_icc_dropped_with_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="colour profile"):
        write_image(tmp_path / "g.png", torch.rand(3, 4, 4), grey=True, icc_profile=_srgb_profile())
    assert read_image(tmp_path / "g.png").icc_profile is None


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def _assert_read_error(path: Path, fragment: str) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message
    assert fragment in message


def test_corrupt_files(tmp_path: Path) -> None:
    junk = tmp_path / "photo.jpg"
    junk.write_bytes(RNG.integers(0, 256, 500, dtype=np.uint8).tobytes())
    _assert_read_error(junk, "not an image")

    Image.fromarray(_random((64, 64, 3))).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _assert_read_error(tmp_path / "cut.png", "truncated")

    write_image(tmp_path / "full16.png", torch.rand(3, 32, 32), bit_depth=16)
    data = (tmp_path / "full16.png").read_bytes()
    (tmp_path / "cut16.png").write_bytes(data[: len(data) // 2])
    _assert_read_error(tmp_path / "cut16.png", "truncated")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_no_overwrite_without_permission(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", torch.zeros(3, 2, 2))
    with pytest.raises(FileExistsError, match="a.png"):
        check_writable(path, overwrite=False)
    with pytest.raises(FileExistsError, match="a.png"):
        write_image(path, torch.ones(3, 2, 2))
    assert read_image(path).rgb.max() == 0
    write_image(path, torch.ones(3, 2, 2), overwrite=True)
    assert read_image(path).rgb.min() == 1
    with pytest.raises(FileNotFoundError, match="missing"):
        check_writable(tmp_path / "missing" / "b.png")


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'\.gif'.*\.png"):
        write_image(tmp_path / "a.gif", torch.zeros(3, 2, 2))
    assert set(SUPPORTED_EXTENSIONS) >= {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


def test_failed_write_leaves_no_temp_and_keeps_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = write_image(tmp_path / "a.png", torch.zeros(3, 2, 2))
    before = target.read_bytes()
    seen: list[str] = []

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        seen.extend(os.listdir(tmp_path))
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, torch.ones(3, 2, 2), overwrite=True)
    temps = [n for n in seen if n != "a.png"]
    assert len(temps) == 1 and temps[0].startswith(".a.png") and temps[0].endswith(".tmp")
    assert os.listdir(tmp_path) == ["a.png"] and target.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# numpy / PIL / tensor conversions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "dtype"), [
    ((5, 7), np.uint8), ((5, 7, 1), np.uint16), ((5, 7, 2), np.uint16),
    ((5, 7, 3), np.float32), ((5, 7, 4), np.uint8), ((5, 7, 3), np.float64),
])  # fmt: skip
def test_array_kind_kept(shape: tuple[int, ...], dtype: type) -> None:
    if np.dtype(dtype).kind == "f":
        array = RNG.random(shape).astype(dtype)
    else:
        array = _random(shape, dtype)
    loaded = image_from_array(array)
    assert loaded.rgb.shape == (3, 5, 7) and loaded.rgb.dtype == torch.float32
    assert loaded.grey == (len(shape) == 2 or shape[2] <= 2)
    assert loaded.bit_depth == (8 if dtype == np.uint8 else 16)
    back = to_array(loaded.rgb, array, alpha=loaded.alpha)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_allclose(back, array, atol=1e-6)


def test_to_array_alpha_must_match() -> None:
    with pytest.raises(ValueError, match="alpha"):
        to_array(torch.zeros(3, 2, 2), np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match="alpha"):
        to_array(torch.zeros(3, 2, 2), np.zeros((2, 2, 3), np.uint8), alpha=torch.zeros(1, 2, 2))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "F"])
def test_pil_kind_kept(mode: str) -> None:
    array = {
        "L": _random((4, 5)),
        "LA": _random((4, 5, 2)),
        "RGB": _random((4, 5, 3)),
        "RGBA": _random((4, 5, 4)),
        "I;16": _random((4, 5), np.uint16),
        "F": RNG.random((4, 5)).astype(np.float32),
    }[mode]
    img = Image.fromarray(array)
    assert img.mode == mode
    img.info["icc_profile"] = b"profile"
    loaded = image_from_pil(img)
    assert loaded.grey == (mode in ("L", "LA", "I;16", "F")) and loaded.icc_profile == b"profile"
    back = to_pil(loaded.rgb, img, alpha=loaded.alpha)
    assert back.mode == mode and back.size == img.size and back.info["icc_profile"] == b"profile"
    np.testing.assert_allclose(np.asarray(back), array, atol=1e-6)


def test_pil_palette_becomes_rgb() -> None:
    img = Image.fromarray(_smooth(6, 6)).quantize(8)
    loaded = image_from_pil(img)
    assert not loaded.grey and loaded.alpha is None
    assert to_pil(loaded.rgb, img).mode == "RGB"


# ---------------------------------------------------------------------------------------------
# expand_inputs
# ---------------------------------------------------------------------------------------------


def test_expand_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "c.txt", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.png").write_bytes(b"x")
    other = tmp_path / "z.webp"
    other.write_bytes(b"x")

    assert expand_inputs([str(folder)]) == [folder / "a.JPG", folder / "b.png"]
    got = expand_inputs([str(other), str(folder / "*.png"), str(folder), str(folder / "b.png")])
    assert got == [other, folder / "b.png", folder / "a.JPG"]  # order kept, duplicates dropped
    with pytest.raises(FileNotFoundError, match="nothing"):
        expand_inputs([str(folder), str(tmp_path / "nothing*.png")])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        expand_inputs([str(tmp_path / "missing.png")])
    with pytest.raises(FileNotFoundError, match="sub"):
        expand_inputs([str(folder / "sub" / "*.jpg")])


def test_no_warnings_for_plain_round_trip(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = image_from_array(_random((4, 4, 3)))
        write_image(tmp_path / "a.png", loaded.rgb, icc_profile=_srgb_profile())
        read_image(tmp_path / "a.png")
