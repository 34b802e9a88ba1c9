"""Windowed attention (csnln.models.windowed): the geometry, the math against the whole-image
attentions, and the network's window setting with its refusals."""

from __future__ import annotations

import pytest
import torch

from csnln import CSNLN
from csnln.models.attention import CrossScaleAttention, InScaleAttention
from csnln.models.windowed import AttentionWindow, blocks


def test_blocks_cover_every_query_once() -> None:
    window = AttentionWindow(block=6, halo=2)
    by, bx, wh, ww, found = blocks(16, 21, window)
    owner = torch.zeros(16, 21, dtype=torch.int64)
    for b in found:
        owner[b.y + b.own_y : b.y + by, b.x + b.own_x : b.x + bx] += 1
        assert 0 <= b.wy <= b.y and b.y + by <= b.wy + wh <= 16  # inside the map, around it
        assert 0 <= b.wx <= b.x and b.x + bx <= b.wx + ww <= 21
    assert (owner == 1).all()


@pytest.mark.parametrize("factor", [None, 2, 3])
def test_windows_holding_every_key_give_the_whole_attention(factor: int | None) -> None:
    # A halo as large as the map: each block's window is the whole map, so each query sees
    # every key, and the blocks (overlapping at the last ones) must rebuild the whole result.
    torch.manual_seed(0)
    module = InScaleAttention(8) if factor is None else CrossScaleAttention(8, factor=factor)
    x = torch.randn(2, 8, 18, 24)
    whole = module(x)
    module.window = AttentionWindow(block=6, halo=24)
    windowed = module._windowed(x, module.window)
    assert windowed.shape == whole.shape
    assert torch.allclose(windowed, whole, atol=1e-5)


def test_small_windows_change_the_result_and_keep_the_shape() -> None:
    torch.manual_seed(0)
    module = CrossScaleAttention(8, factor=2)
    x = torch.randn(1, 8, 20, 20)
    whole = module(x)
    module.window = AttentionWindow(block=4, halo=2)
    windowed = module(x)
    assert windowed.shape == whole.shape
    assert (windowed - whole).abs().max() > 1e-3


def test_network_window_setting_and_refusals() -> None:
    torch.manual_seed(0)
    net = CSNLN(scale=4, n_feats=8, depth=1).eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        whole = net(x)
        net.set_attention_window(40)  # larger than the image: the whole image
        assert torch.equal(net(x), whole)
        net.set_attention_window(8)
        assert net.cell.projection2.in_scale.window == AttentionWindow(block=8, halo=4)
        assert net(x).shape == whole.shape
        net.set_attention_window(None)
        assert torch.equal(net(x), whole)
    smallest = net.smallest_attention_window()
    assert smallest == 6
    with pytest.raises(ValueError, match="at least 6"):
        net.set_attention_window(4)
    with pytest.raises(ValueError, match="multiple of 2"):
        net.set_attention_window(33)
    assert CSNLN(scale=3, n_feats=8, depth=1).smallest_attention_window() == 9


def test_a_test_window_is_refused_naming_the_smallest_valid_and_larger_runs_whole() -> None:
    from csnln.inference import Upscaler
    from csnln.inference.profiles import smallest_tile

    model = CSNLN(2, n_feats=8, depth=1).eval()
    assert smallest_tile(model.descriptor) == 4
    for tile in (25, 3):  # not a multiple of 2; under the 3x3 patch rounded up to 2
        with pytest.raises(ValueError, match=r"tile \d+: .*the smallest valid tile: 4") as error:
            Upscaler(model, tile=tile)
        assert "\n" not in str(error.value)
    x = torch.rand(1, 3, 20, 22)
    with torch.no_grad():
        whole = Upscaler(model, tile=0)(x)
        larger = Upscaler(model, tile=64)(x)
    assert torch.equal(whole, larger)
    assert Upscaler(model, tile=64).plan(20, 22).calls == 1


def test_upscale_refuses_a_bad_window_in_one_line_before_any_file(tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from csnln import save_checkpoint
    from csnln.cli import main

    checkpoint = save_checkpoint(CSNLN(2, n_feats=8, depth=1), tmp_path / "tiny.safetensors")
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "a.png")
    assert (
        main(["upscale", str(tmp_path / "a.png"), "--model", str(checkpoint), "--tile", "25"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "smallest valid tile: 4" in err
    assert not (tmp_path / "a_x2.png").exists()


def _masked_reference_mask(h: int, w: int, window: AttentionWindow, u: int) -> torch.Tensor:
    """query x key (keys on the grid ``u`` times smaller): True where a query's window holds
    the key, each query in the block that owns it."""
    by, bx, wh, ww, found = blocks(h, w, window)
    allowed = torch.zeros(h * w, (h // u) * (w // u), dtype=torch.bool)
    for b in found:
        keys = torch.zeros(h // u, w // u, dtype=torch.bool)
        keys[b.wy // u : (b.wy + wh) // u, b.wx // u : (b.wx + ww) // u] = True
        for y in range(b.y + b.own_y, b.y + by):
            allowed[y * w + b.x + b.own_x : y * w + b.x + bx] = keys.flatten()
    return allowed


@pytest.mark.parametrize("factor", [None, 2, 3])
def test_windowed_is_the_whole_attention_with_each_softmax_confined_to_its_window(
    factor: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key patch at a window's edge keeps its neighbours outside the window and pastes its
    whole value patch: the windowed result is the whole-image one with masked scores."""
    torch.manual_seed(0)
    size = 30 if factor == 3 else 32
    window = AttentionWindow(block=6 if factor == 3 else 8, halo=factor or 4)
    x = torch.randn(1, 16, size, size)
    u = factor or 1
    allowed = _masked_reference_mask(size, size, window, u)
    if factor is None:
        module: InScaleAttention | CrossScaleAttention = InScaleAttention(16).eval()

        def masked(query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
            scores = torch.bmm(query, key).masked_fill(~allowed[None], float("-inf"))
            return torch.softmax(scores, dim=-1)

        owner = InScaleAttention
    else:
        module = CrossScaleAttention(16, factor=factor).eval()

        def masked(key_t: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
            scores = torch.bmm(key_t, patches).masked_fill(~allowed.T[None], float("-inf"))
            return torch.softmax(scores, dim=1)

        owner = CrossScaleAttention
    with torch.no_grad():
        module.window = window
        windowed = module(x)
        module.window = None
        module.export = True  # one chunk: the mask covers every query at once
        monkeypatch.setattr(owner, "_attention", staticmethod(masked))
        reference = module(x)
    assert (windowed - reference).abs().max() < 1e-5 * reference.abs().max()


def test_bounded_scores_take_the_unnormalised_path_and_give_the_softmax() -> None:
    """Inference with bounded scores divides the sums out of the output: the same values as
    the softmax, and scores too large for it take the softmax."""
    from csnln.models import attention

    torch.manual_seed(0)
    module = InScaleAttention(16).eval()
    x = torch.randn(2, 16, 12, 12) * 0.2
    query = module.query(x).flatten(2).transpose(1, 2)
    key = module.key(x).flatten(2)
    assert attention._exp_is_safe(query, key, torch.float32)
    assert not attention._exp_is_safe(query * 1e3, key, torch.float32)
    assert not attention._exp_is_safe(query, key, torch.float16)
    with torch.no_grad():
        fast = module(x)
    reference = module(x)  # gradients on: the softmax path
    assert (fast - reference).abs().max() < 1e-6
    with torch.no_grad():
        big = module(x * 100)
    assert torch.isfinite(big).all()


def test_upscaler_attention_window_runs_a_windowed_copy_and_refuses_bad_ones() -> None:
    from csnln.inference import Upscaler
    from csnln.models import Bicubic

    torch.manual_seed(0)
    model = CSNLN(2, n_feats=8, depth=1).eval()
    x = torch.rand(1, 3, 40, 40)
    whole = Upscaler(model, tile=40, precision="fp32")
    windowed = Upscaler(model, tile=40, precision="fp32", attention_window=12)
    assert (
        windowed.plan(40, 40).attention_window == 12 and whole.plan(40, 40).attention_window is None
    )
    out = windowed(x)
    assert out.shape == whole(x).shape and not torch.allclose(out, whole(x))
    assert model.attention_window is None  # the given (perhaps shared) model is left as it is
    model.set_attention_window(12)
    with torch.no_grad():
        assert torch.allclose(out, model(x), atol=1e-6)  # one tile: the model itself
    model.set_attention_window(None)
    with pytest.raises(ValueError, match="smallest valid: 6"):
        Upscaler(model, attention_window=7)
    with pytest.raises(ValueError, match="smallest valid: 6"):
        Upscaler(model, attention_window=4)
    with pytest.raises(ValueError, match="no attention to confine"):
        Upscaler(Bicubic(2), attention_window=16)
    with pytest.raises(ValueError, match="number of LR pixels"):
        Upscaler(model, attention_window="16")  # type: ignore[arg-type]


def test_upscale_refuses_a_bad_attention_window_before_any_file(tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from csnln import save_checkpoint
    from csnln.cli import main

    checkpoint = save_checkpoint(CSNLN(2, n_feats=8, depth=1), tmp_path / "tiny.safetensors")
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "a.png")
    args = ["upscale", str(tmp_path / "a.png"), "--model", str(checkpoint)]
    assert main([*args, "--attention-window", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "smallest valid: 6" in err
    assert not (tmp_path / "a_x2.png").exists()
    assert main([*args, "--attention-window", "6"]) == 0
    assert (tmp_path / "a_x2.png").exists()


@pytest.mark.parametrize("factor", [None, 2])
def test_windowed_attention_backpropagates_as_the_whole_one_when_windows_hold_every_key(
    factor: int | None,
) -> None:
    # Blocks of 6 do not divide 20 x 22, so the last blocks overlap their neighbours and the
    # cross-scale path masks the queries they share: the mask must leave the softmax's output
    # intact for the backward pass (training in windows, model.attention_window).
    torch.manual_seed(0)
    module = InScaleAttention(8) if factor is None else CrossScaleAttention(8, factor=factor)
    x = torch.randn(1, 8, 20, 22, requires_grad=True)
    target = torch.randn_like(module(x))
    (module(x) * target).sum().backward()
    whole = x.grad.clone()
    x.grad = None
    module.window = AttentionWindow(block=6, halo=24)
    (module._windowed(x, module.window) * target).sum().backward()
    assert torch.allclose(x.grad, whole, atol=1e-4)


def test_weights_trained_in_windows_run_in_them_unless_told_otherwise(tmp_path) -> None:
    from csnln import load_checkpoint, save_checkpoint
    from csnln.inference import Upscaler

    torch.manual_seed(0)
    path = save_checkpoint(
        CSNLN(2, n_feats=8, depth=1), tmp_path / "w.safetensors", metadata={"attention_window": 12}
    )
    model = load_checkpoint(path)
    assert model.descriptor.trained_attention_window == 12 and model.attention_window is None
    x = torch.rand(1, 3, 40, 40)
    # fp32 pinned: `auto` is bf16 on a CPU whose bf16 matmul measures faster
    exact = {"tile": 40, "precision": "fp32"}
    default, whole = Upscaler(model, **exact), Upscaler(model, **exact, attention_window=0)
    other = Upscaler(model, **exact, attention_window=16)
    assert [u.plan(40, 40).attention_window for u in (default, whole, other)] == [12, None, 16]
    with torch.no_grad():
        assert torch.allclose(whole(x), model(x), atol=1e-6)  # 0: the authors' computation
        model.set_attention_window(12)
        assert torch.allclose(default(x), model(x), atol=1e-6)
    plain = save_checkpoint(CSNLN(2, n_feats=8, depth=1), tmp_path / "p.safetensors")
    assert load_checkpoint(plain).descriptor.trained_attention_window is None
