"""The network: exactness to the authors' release, sizes, batching, chunking, options."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import golden_path
from reference import ReferenceCSNLN

import csnln
from csnln.models import MIN_INPUT_SIZE, CheckpointError, CSNLNConfig
from csnln.models.official import _rename as official_to_own_key

RELEASED_PARAMS = {2: 3_061_289, 3: 6_010_409, 4: 6_568_627}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_equals_release(scale: int) -> None:
    assert n_params(csnln.CSNLN(scale)) == RELEASED_PARAMS[scale]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_golden_vectors_of_the_authors_code(scale: int) -> None:
    golden = torch.load(golden_path(scale), weights_only=True)
    state = {k: v.float() for k, v in golden["state_dict"].items()}
    model = csnln.load_official(state, scale)
    assert not model.training
    with torch.no_grad():
        out = model(golden["input"].float())
    assert out.shape == golden["output"].shape
    assert (out.double() - golden["output"]).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    ("scale", "n_feats", "size"), [(2, 16, (8, 12)), (3, 6, (9, 6)), (4, 10, (6, 8))]
)
def test_matches_reference_implementation_at_other_widths(scale, n_feats, size) -> None:
    reference = ReferenceCSNLN(scale, n_feats=n_feats, depth=2).eval()
    for p in reference.parameters():  # move PReLU slopes away from their init
        if p.numel() == 1:
            p.data.uniform_(0.1, 0.4)
    model = csnln.load_official(reference.state_dict(), scale)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("scale", "size"),
    [(2, (13, 11)), (2, (3, 3)), (3, (17, 23)), (3, (4, 5)), (4, (15, 21)), (4, (7, 3))],
)
def test_any_size_gives_exactly_scaled_output(scale: int, size: tuple[int, int]) -> None:
    model = csnln.CSNLN(scale, n_feats=8, depth=2).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 3, scale * size[0], scale * size[1])
    assert torch.isfinite(out).all()


def test_odd_size_is_reflect_padded_then_cropped() -> None:
    model = csnln.CSNLN(3, n_feats=8, depth=2).eval()
    x = torch.rand(1, 3, 17, 23)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="reflect")
    with torch.no_grad():
        assert torch.equal(model(x), model(padded)[:, :, :51, :69])


@pytest.mark.parametrize("size", [(2, 10), (10, 1), (0, 0)])
def test_below_minimum_size_is_a_clear_error(size) -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=1)
    h, w = size  # the message gives the size as images are given: width x height
    with pytest.raises(
        ValueError, match=f"input of {w}x{h} pixels .* at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"
    ):
        model(torch.rand(1, 3, *size))


def test_wrong_channel_count_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"N x 3 x H x W.*\(1, 4, 8, 8\)"):
        csnln.CSNLN(2, n_feats=8, depth=1)(torch.rand(1, 4, 8, 8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_batch_equals_images_run_alone(scale: int) -> None:
    model = csnln.CSNLN(scale, n_feats=8, depth=2).eval()
    x = torch.rand(2, 3, 7, 10)
    with torch.no_grad():
        batch = model(x)
        alone = torch.cat([model(x[:1]), model(x[1:])])
    assert torch.allclose(batch, alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_chunked_equals_unchunked(scale: int) -> None:
    model = csnln.CSNLN(scale, n_feats=8, depth=2).eval()
    x = torch.rand(2, 3, 12, 18)
    with torch.no_grad():
        model.set_chunk_size(None)
        whole = model(x)
        for chunk in (1, 7, 40):  # one row per chunk, uneven bands, several rows
            model.set_chunk_size(chunk)
            assert (model(x) - whole).abs().max().item() < 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_both_softmax_layouts_give_the_same_values_and_gradients(scale: int) -> None:
    """Keys on dim 1 (the CPU's layout) vs keys last (the GPU's), chosen by hand here."""
    from csnln.models.attention import CrossScaleAttention

    attention = CrossScaleAttention(8, factor=scale, chunk_size=40).double()
    x = torch.rand(2, 8, 6 * scale, 4 * scale, dtype=torch.float64, requires_grad=True)
    results = []
    for keys_last in (False, True):
        attention.keys_last = keys_last
        out = attention(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *attention.parameters()])
        results.append((out, grads))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 4])
def test_fused_in_scale_attention_gives_the_same_values_and_gradients(scale: int) -> None:
    """scaled_dot_product_attention (the GPU's path) vs chunked bmm + softmax, forced here."""
    from csnln.models.attention import InScaleAttention

    torch.manual_seed(0)
    model = csnln.CSNLN(scale, n_feats=8, depth=2, chunk_size=7)
    x = torch.rand(2, 3, 10, 12, requires_grad=True)
    results = []
    for fused in (False, True):
        for module in model.modules():
            if isinstance(module, InScaleAttention):
                module.fused = fused
        out = model(x)
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(out.square().sum(), [x, *params])
        results.append((out, grads))
    (a, grads_a), (b, grads_b) = results
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        # Weight gradients are sums over every pixel, in different orders on the two paths:
        # compared at their tensor's scale (both paths are equally close to float64).
        scale = max(1.0, gb.abs().max().item())
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(("n_feats", "depth"), [(2, 1), (6, 1), (12, 3)])
def test_any_even_width_and_depth(n_feats: int, depth: int) -> None:
    model = csnln.CSNLN(2, n_feats=n_feats, depth=depth)
    assert model(torch.rand(1, 3, 6, 6)).shape == (1, 3, 12, 12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_feats": 7}, "n_feats"),
        ({"depth": 0}, "depth"),
        ({"branches": ()}, "branches"),
        ({"branches": ("global",)}, "branches"),
        ({"fusion": "sum"}, "fusion"),
        ({"patch_size": 2}, "patch_size"),
    ],
)
def test_invalid_options_are_rejected(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        csnln.CSNLN(2, **kwargs)
    with pytest.raises(ValueError, match="scale"):
        csnln.CSNLN(5)


BRANCH_SETS = [
    s for r in (1, 2, 3) for s in itertools.combinations(("local", "in_scale", "cross_scale"), r)
]


@pytest.mark.parametrize("branches", BRANCH_SETS, ids="+".join)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_branch_subset_runs(branches, scale) -> None:
    model = csnln.CSNLN(scale, n_feats=4, depth=2, branches=branches)
    assert model(torch.rand(1, 3, 6, 5)).shape == (1, 3, 6 * scale, 5 * scale)
    has = {name for name, _ in model.named_modules()}
    assert ("cell.projection.in_scale" in has) == ("in_scale" in branches)
    assert ("cell.projection.cross_scale" in has) == ("cross_scale" in branches)
    assert ("cell.error_up" in has) == ("local" in branches)


@pytest.mark.parametrize("fusion", ["projection", "concat"])
@pytest.mark.parametrize("patch_size", [1, 3, 5])
def test_fusion_and_patch_size_options(fusion: str, patch_size: int) -> None:
    model = csnln.CSNLN(2, n_feats=4, depth=1, fusion=fusion, patch_size=patch_size).eval()
    x = torch.rand(1, 3, 9, 8)
    with torch.no_grad():
        out = model(x)
        model.set_chunk_size(3)
        assert (model(x) - out).abs().max().item() < 1e-5
    assert out.shape == (1, 3, 18, 16)


def test_constants_are_used() -> None:
    x = torch.rand(1, 3, 8, 8)
    outs = []
    for kwargs in ({}, {"temperature": 9.0}, {"overlap_divisor": 9.0}):
        torch.manual_seed(1)
        model = csnln.CSNLN(2, n_feats=8, depth=1, **kwargs).eval()
        with torch.no_grad():
            outs.append(model(x))
    assert (outs[0] - outs[1]).abs().max() > 1e-6
    assert (outs[0] - outs[2]).abs().max() > 1e-6


def test_adam_steps_lower_the_l1_loss() -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=2)
    lr_img = torch.rand(1, 3, 8, 8)
    hr_img = torch.nn.functional.interpolate(lr_img, scale_factor=2, mode="bicubic")
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        loss = (model(lr_img) - hr_img).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert losses[-1] < 0.85 * losses[0]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_runs_under_bfloat16_autocast(scale: int) -> None:
    model = csnln.CSNLN(scale, n_feats=8, depth=2).eval()
    x = torch.rand(1, 3, 8, 9)
    with torch.no_grad():
        full = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x)
    assert half.shape == full.shape
    assert (half.float() - full).abs().max().item() < 0.1


# --- checkpoints -------------------------------------------------------------------------


def test_load_official_from_a_file(tmp_path) -> None:
    reference = ReferenceCSNLN(3, n_feats=4, depth=1)
    path = tmp_path / "model_x3.pt"
    torch.save(reference.state_dict(), path)
    model = csnln.load_official(path, 3)
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.allclose(model(x), reference.eval()(x), atol=1e-5)
    with pytest.raises(CheckpointError, match="x3, but scale=2"):
        csnln.load_official(path, 2)


def test_load_official_lists_every_problem_in_one_error() -> None:
    state = ReferenceCSNLN(2, n_feats=4, depth=1).state_dict()
    del state["SEM.post_conv.0.bias"]
    state["SEM.extra.weight"] = torch.zeros(1)
    state["SEM.down_sample_1.0.weight"] = torch.zeros(4, 4, 5, 5)
    with pytest.raises(CheckpointError) as info:
        csnln.load_official(state, 2)
    message = str(info.value)
    assert "cell.post_conv.conv.bias" in message
    assert "SEM.extra.weight" in message
    assert "SEM.down_sample_1.0.weight: shape (4, 4, 5, 5), expected (4, 4, 6, 6)" in message
    assert "\n" not in message


def test_load_official_never_unpickles_objects(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": object()}}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        csnln.load_official(path)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        csnln.load_official(tmp_path / "nope.pt")


def test_checkpoint_round_trip(tmp_path) -> None:
    model = csnln.CSNLN(
        4, n_feats=6, depth=2, branches=("local", "cross_scale"), patch_size=1
    ).eval()
    path = csnln.save_checkpoint(model, tmp_path / "m.safetensors", metadata={"step": 3})
    loaded = csnln.load_checkpoint(path)
    assert loaded.config == model.config
    assert isinstance(loaded.config, CSNLNConfig)
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    _, _, metadata = csnln.models.read_checkpoint(path)
    assert metadata == {"step": 3}
    with pytest.raises(FileExistsError):
        csnln.save_checkpoint(model, path, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_load_checkpoint_rejects_other_files(tmp_path) -> None:
    path = tmp_path / "not.safetensors"
    path.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not.safetensors"):
        csnln.load_checkpoint(path)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_gradients_equal_the_reference_implementation(scale: int) -> None:
    """The backward pass (the paste's custom autograd included) against autograd through the
    authors' computation, input gradient and every parameter's gradient."""
    reference = ReferenceCSNLN(scale, n_feats=8, depth=2)
    model = csnln.load_official(reference.state_dict(), scale).train()
    size = {2: (8, 10), 3: (9, 6), 4: (6, 8)}[scale]
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    target = torch.rand(2, 3, size[0] * scale, size[1] * scale, dtype=torch.float64)
    input_grads = []
    for net in (reference.double(), model.double()):
        xi = x.clone().requires_grad_(True)
        (net(xi) - target).abs().mean().backward()
        input_grads.append(xi.grad)
    assert torch.allclose(input_grads[1], input_grads[0], atol=1e-12, rtol=1e-8)
    # the authors' parameter names, translated by the converter, name this model's parameters
    reference_grads = {key: p.grad for key, p in reference.named_parameters() if p.requires_grad}
    converted = {official_to_own_key(key): g for key, g in reference_grads.items()}
    params = dict(model.named_parameters())
    assert converted.keys() == {k for k, p in params.items() if p.requires_grad}
    for key, ref_grad in converted.items():
        assert torch.allclose(params[key].grad, ref_grad, atol=1e-12, rtol=1e-8), key


@pytest.mark.parametrize("mode", [True, "full", "selective"])
def test_gradient_checkpointing_gives_the_same_gradients(mode: bool | str) -> None:
    model = csnln.CSNLN(4, n_feats=6, depth=3)
    x, target = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 24, 24)
    grads = []
    for setting in (False, mode):
        model.zero_grad()
        model.set_gradient_checkpointing(setting)
        (model(x) - target).abs().mean().backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    assert grads[0].numel() == grads[1].numel()
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_gradient_checkpointing_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        csnln.CSNLN(2, n_feats=4, depth=1).set_gradient_checkpointing("sometimes")


def test_selective_checkpointing_under_bfloat16_autocast() -> None:
    # autocast caches cast weights; the selective replay must not depend on that cache
    model = csnln.CSNLN(2, n_feats=8, depth=2)
    x, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    grads = []
    for mode in ("none", "selective", "full"):
        model.zero_grad()
        model.set_gradient_checkpointing(mode)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        (out.float() - target).abs().mean().backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    # the same gradients up to bf16 rounding (with autocast's cache, the gradients of a weight
    # used by several steps are summed in bf16 before the cast back; without it, in fp32)
    scale = grads[0].abs().max()
    assert (grads[1] - grads[0]).abs().max() < 1e-2 * scale
    assert (grads[2] - grads[0]).abs().max() < 1e-2 * scale


def test_pixels_stay_float32_under_bfloat16_autocast() -> None:
    """The mean shifts, the first conv and the tail run in float32 under autocast: the output
    is not rounded to bf16's 8 bits (which would move it by up to ~1/500 here)."""
    model = csnln.CSNLN(2, n_feats=4, depth=2).eval()
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.fill_(0.001234)
        x = torch.rand(1, 3, 6, 6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.dtype == torch.float32
    expected = torch.tensor(csnln.models.network.RGB_MEAN).view(1, 3, 1, 1) + 0.001234
    assert (out - expected).abs().max().item() < 1e-6


def _shift_sum_by_definition(attn: torch.Tensor, p: int) -> torch.Tensor:
    """``T[ly', lx', qy, qx] = sum_m attn[ly' - my + h, lx' - mx + h, qy - my, qx - mx]``."""
    n, ly, lx, r, w = attn.shape
    h = p // 2
    out = attn.new_zeros(n, ly, lx, r + p - 1, w + p - 1)
    for my, mx, y, x, qy, qx in itertools.product(
        range(p), range(p), range(ly), range(lx), range(r + p - 1), range(w + p - 1)
    ):
        sy, sx, ry, rx = y - my + h, x - mx + h, qy - my, qx - mx
        if 0 <= sy < ly and 0 <= sx < lx and 0 <= ry < r and 0 <= rx < w:
            out[:, y, x, qy, qx] += attn[:, sy, sx, ry, rx]
    return out


@pytest.mark.parametrize("p", [1, 3, 5])
@pytest.mark.parametrize("shape", [(2, 3, 4, 2, 3), (1, 1, 2, 1, 1), (1, 4, 2, 3, 1)])
def test_shift_sum_matches_its_definition_and_adjoint(p: int, shape) -> None:
    """The paste's flat-slice shift sum (zero margins instead of bounds) against the loops."""
    from csnln.models.attention import _shift_sum

    attn = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    out = _shift_sum(attn, p)
    torch.testing.assert_close(out, _shift_sum_by_definition(attn.detach(), p))
    # <T(a), g> = <a, T*(g)>: the backward is the adjoint
    grad = torch.randn_like(out)
    (adjoint,) = torch.autograd.grad(out, attn, grad)
    torch.testing.assert_close((out * grad).sum(), (attn * adjoint).sum())
    if p > 1:
        assert torch.autograd.gradcheck(lambda a: _shift_sum(a, p), (attn,))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_rearrangements_equal_unfold_and_the_pixel_shuffles(layout: str) -> None:
    """The attention's slice-and-permute rearrangements are F.unfold and the pixel shuffles,
    values and gradients, whatever the input's memory layout."""
    import torch.nn.functional as F

    from csnln.models.attention import _depth_to_space, _patches, _space_to_depth

    def sample(*shape: int) -> torch.Tensor:
        x = torch.randn(*shape[:-1], shape[-1] + 2, dtype=torch.float64)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        x = x[..., 1:-1] if layout == "sliced" else x[..., : shape[-1]]
        return x.requires_grad_()

    for p in (1, 3, 5):
        x = sample(2, 2, 6, 5)
        torch.testing.assert_close(_patches(x, p), F.unfold(x, p), rtol=0, atol=0)
        assert torch.autograd.gradcheck(lambda t, p=p: _patches(t, p), (x,))
    for u in (2, 3):
        x, y = sample(1, 2, 2 * u, 3 * u), sample(1, 2 * u * u, 2, 3)
        torch.testing.assert_close(_space_to_depth(x, u), F.pixel_unshuffle(x, u), rtol=0, atol=0)
        torch.testing.assert_close(_depth_to_space(y, u), F.pixel_shuffle(y, u), rtol=0, atol=0)
        assert torch.autograd.gradcheck(lambda t, u=u: _space_to_depth(t, u), (x,))
        assert torch.autograd.gradcheck(lambda t, u=u: _depth_to_space(t, u), (y,))


def test_load_model_names_a_corrupt_file_in_one_short_line(tmp_path) -> None:
    from csnln.zoo import load_model

    for name, data in (("random.pt", bytes(range(7, 107))), ("empty.pth", b"")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            load_model(path)
        message = str(info.value)
        assert message.startswith(f"{path}: not a loadable checkpoint")
        assert "\n" not in message and len(message) < 300  # not torch's weights_only essay


def test_saved_files_get_the_usual_mode(tmp_path) -> None:
    """safetensors 0.8 writes its files 0600; ours get what the umask gives any new file."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = csnln.save_checkpoint(csnln.CSNLN(2, n_feats=4, depth=1), tmp_path / "m.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
