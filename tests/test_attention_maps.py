"""Attention maps of one pixel: what the attentions really computed, and the picture."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import csnln
from csnln.attention_maps import AttentionMap, attention_maps, attention_picture
from csnln.cli import main
from csnln.models.attention import InScaleAttention


@pytest.mark.parametrize(("scale", "calls"), [(2, 2), (3, 2), (4, 4)])
def test_one_map_per_attention_call_summing_to_one(scale: int, calls: int) -> None:
    model = csnln.CSNLN(scale, n_feats=8, depth=2).eval()
    lr = torch.rand(1, 3, 13, 18)  # padded inside the network to a multiple of the scale
    maps = attention_maps(model, lr, (5, 7))
    kinds = [m.kind for m in maps]
    assert kinds.count("in-scale") == kinds.count("cross-scale") == calls  # x4: two stages
    for m in maps:
        assert m.weights.shape == (
            m.grid if m.kind == "in-scale" else tuple(g // (3 if scale == 3 else 2) for g in m.grid)
        )
        assert torch.isclose(m.weights.sum(), torch.tensor(1.0), atol=1e-5)
        assert (m.weights >= 0).all()


def test_in_scale_map_is_the_row_the_attention_used() -> None:
    """Rebuild the attention's output at the query from the map: it must match the forward."""
    model = csnln.CSNLN(2, n_feats=8, depth=1).eval()
    lr = torch.rand(1, 3, 10, 12)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    attention = next(m for m in model.modules() if isinstance(m, InScaleAttention))
    attention.register_forward_hook(lambda m, a, out: seen.append((a[0], out)))
    (in_scale,) = [m for m in attention_maps(model, lr, (4, 6)) if m.kind == "in-scale"]
    x, out = seen[0]
    with torch.no_grad():
        value = attention.value(x)[0]  # C, H, W
    rebuilt = (value * in_scale.weights).sum((1, 2))
    y, x_ = in_scale.query
    torch.testing.assert_close(rebuilt, out[0, :, y, x_], atol=1e-5, rtol=1e-4)


def test_bad_pixel_is_named() -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=1).eval()
    with pytest.raises(ValueError, match="outside the 10x12 image"):
        attention_maps(model, torch.rand(1, 3, 10, 12), (10, 0))


def test_picture_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=3).eval()
    lr = torch.rand(1, 3, 16, 24)
    picture = attention_picture(lr, attention_maps(model, lr, (3, 3)), cell=96)
    assert picture.size[1] > 3 * 64  # one row per SEM step
    Image.fromarray((lr[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "a.png")
    checkpoint = csnln.save_checkpoint(model, tmp_path / "m.safetensors")
    args = ["attention", str(tmp_path / "a.png"), "--at", "5,3", "--model", str(checkpoint)]
    assert main(args) == 0
    assert (tmp_path / "a_attention.png").is_file()
    assert "6 attention maps" in capsys.readouterr().out
    assert main(args) == 1  # no overwrite without being asked
    assert main([*args[:3], "9,x", *args[4:]]) == 2


def test_top_k_are_the_largest_raw_weights_with_their_boxes() -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=2).eval()
    lr = torch.rand(1, 3, 16, 20)
    for m in attention_maps(model, lr, (6, 9)):
        matches = m.top_k(4)
        values, indices = m.weights.flatten().topk(4)
        assert [t.weight for t in matches] == pytest.approx(values.tolist())
        width = m.weights.shape[1]
        assert [t.key for t in matches] == [divmod(i, width) for i in indices.tolist()]
        assert [t.rank for t in matches] == [1, 2, 3, 4]
        for t in matches:
            assert m.weights[t.key] == pytest.approx(t.weight)
            top, left, bottom, right = t.pasted
            row, col = t.key
            if m.kind == "in-scale":  # the key pixel itself
                assert t.pasted == (row, col, row + 1, col + 1)
            else:  # the u p square of the full grid around the key patch's centre
                u, p = m.factor, m.patch
                centre = (u * row + u / 2, u * col + u / 2)
                assert (top + bottom) / 2 == pytest.approx(centre[0]) or top == 0 or bottom == 16
                assert bottom - top <= u * p and right - left <= u * p
                assert t.matched == (row - 1, col - 1, row + 2, col + 2)  # p = 3 on the small grid
    with pytest.raises(ValueError, match="k must be"):
        m.top_k(0)


def test_entropy_is_shannon_in_bits() -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=1).eval()
    for m in attention_maps(model, torch.rand(1, 3, 12, 12), (3, 4)):
        w = m.weights.double().flatten()
        expected = float(-(w[w > 0] * w[w > 0].log2()).sum())
        assert m.entropy_bits == pytest.approx(expected)
        assert 0 <= m.entropy_bits <= math.log2(m.positions) + 1e-6
    uniform = AttentionMap("in-scale", 0, torch.full((4, 8), 1 / 32), (0, 0), (4, 8))
    assert uniform.entropy_bits == pytest.approx(5.0)
    peaked = AttentionMap("in-scale", 0, torch.eye(1, 32).view(4, 8), (0, 0), (4, 8))
    assert peaked.entropy_bits == 0


def test_region_is_the_mean_of_its_pixels() -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=2).eval()
    lr = torch.rand(1, 3, 12, 14)
    region = attention_maps(model, lr, region=(2, 3, 2, 3))  # rows 2-3, columns 3-5
    pixels = [attention_maps(model, lr, (r, c)) for r in (2, 3) for c in (3, 4, 5)]
    for i, m in enumerate(region):
        mean = torch.stack([p[i].weights for p in pixels]).mean(0)
        torch.testing.assert_close(m.weights, mean, atol=1e-6, rtol=1e-5)
        assert m.query_box == (2.0, 3.0, 4.0, 6.0)
    with pytest.raises(ValueError, match="not inside"):
        attention_maps(model, lr, region=(10, 0, 4, 4))
    with pytest.raises(ValueError, match="either"):
        attention_maps(model, lr, (1, 1), region=(0, 0, 2, 2))


def test_steps_and_stages_at_x4() -> None:
    model = csnln.CSNLN(4, n_feats=8, depth=2).eval()
    maps = attention_maps(model, torch.rand(1, 3, 12, 12), (5, 5))
    cross = [m for m in maps if m.kind == "cross-scale"]
    assert [(m.step, m.stage, m.stages) for m in cross] == [
        (0, 0, 2),
        (0, 1, 2),
        (1, 0, 2),
        (1, 1, 2),
    ]
    # The second stage runs on the 2x grid: its boxes are still in LR pixels.
    for m in maps:
        for t in m.top_k(3):
            assert 0 <= t.pasted[0] < t.pasted[2] <= 12 and 0 <= t.pasted[1] < t.pasted[3] <= 12


@pytest.mark.parametrize("scale", ["log", "rank", "linear"])
def test_picture_scales_and_region_cli(
    scale: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=2).eval()
    lr = torch.rand(1, 3, 16, 24)
    picture = attention_picture(lr, attention_maps(model, lr, (3, 3)), scale=scale, top_k=2)
    assert picture.size[0] > 3 * 200  # three panels a row
    Image.fromarray((lr[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(tmp_path / "a.png")
    checkpoint = csnln.save_checkpoint(model, tmp_path / "m.safetensors")
    args = ["attention", str(tmp_path / "a.png"), "--region", "2,3,4,5", "--weights", scale]
    assert main([*args, "--model", str(checkpoint), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "region x=2, y=3, 4x5" in out and out.count("entropy") == 4
    assert main([*args[:2], "--region", "2,3,4", "--model", str(checkpoint)]) == 2
    assert "X,Y,W,H" in capsys.readouterr().err
