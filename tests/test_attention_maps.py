"""Attention maps of one pixel: what the attentions really computed, and the picture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import csnln
from csnln.attention_maps import attention_maps, attention_picture
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
