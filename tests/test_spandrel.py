"""csnln.spandrel: spandrel (chaiNNer's and ComfyUI's loader, from the registry) loads the
bundled weights and the authors' checkpoints and gives csnln's output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import golden_path, stub_torchvision

import csnln

ROOT = Path(__file__).resolve().parents[1]


if importlib.util.find_spec("spandrel") is None:
    pytest.skip("spandrel is not installed (the spandrel extra)", allow_module_level=True)
stub_torchvision()

import spandrel  # noqa: E402

import csnln.spandrel as csnln_spandrel  # noqa: E402


@pytest.fixture(scope="module")
def loader() -> spandrel.ModelLoader:
    return spandrel.ModelLoader(registry=csnln_spandrel.registry())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_bundled_weights_load_and_give_csnlns_output(
    loader: spandrel.ModelLoader, scale: int
) -> None:
    path = csnln.zoo.bundled_models()["small"][scale]
    described = loader.load_from_file(path)
    assert isinstance(described, spandrel.ImageModelDescriptor)
    assert described.architecture.id == "CSNLN" and described.purpose == "SR"
    assert described.scale == scale and described.input_channels == 3
    assert described.supports_half and described.supports_bfloat16
    assert described.tiling == spandrel.ModelTiling.SUPPORTED
    ours = csnln.zoo.load_model("small", scale).eval()
    x = torch.rand(1, 3, 21, 26)
    with torch.no_grad():
        expected = ours(x).clamp(0, 1)  # spandrel clamps to [0, 1]
        assert (described(x) - expected).abs().max().item() < 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_authors_checkpoints_load_and_match_their_code(
    loader: spandrel.ModelLoader, scale: int, tmp_path: Path
) -> None:
    golden = torch.load(golden_path(scale), weights_only=True)
    path = tmp_path / f"model_x{scale}.pt"
    torch.save({k: v.float() for k, v in golden["state_dict"].items()}, path)  # as released
    described = loader.load_from_file(path)
    assert described.architecture.id == "CSNLN-official" and described.scale == scale
    with torch.no_grad():
        out = described(golden["input"].float()[:1]).double()
    assert (out - golden["output"][:1].clamp(0, 1)).abs().max().item() < 1e-5


def test_rgb_range_is_read_from_the_mean_shift(loader: spandrel.ModelLoader) -> None:
    """A checkpoint of the EDSR framework trained with rgb_range 255 (its MeanShift biases are
    -255 * mean and +255 * mean) gets its inputs in [0, 255], its outputs divided back."""
    from reference import ReferenceCSNLN

    reference = ReferenceCSNLN(2, n_feats=8, depth=1).eval()
    state = reference.state_dict()
    for key in ("sub_mean.bias", "add_mean.bias"):
        state[key] = state[key] * 255
    described = loader.load_from_state_dict(state)
    net = csnln.load_official(state, 2)
    x = torch.rand(1, 3, 12, 14)
    with torch.no_grad():
        expected = (net(x * 255) / 255).clamp(0, 1)
        assert (described(x) - expected).abs().max().item() < 1e-5
        unscaled = loader.load_from_state_dict(reference.state_dict())
        assert (unscaled(x) - net(x).clamp(0, 1)).abs().max().item() > 1e-3


def test_install_adds_csnln_to_the_main_registry() -> None:
    added = csnln_spandrel.install(ignore_duplicates=True)
    assert "CSNLN" in spandrel.MAIN_REGISTRY and "CSNLN-official" in spandrel.MAIN_REGISTRY
    assert len(added) in (0, 2)
    with pytest.raises(spandrel.DuplicateArchitectureError):
        csnln_spandrel.install()
    described = spandrel.ModelLoader().load_from_file(csnln.zoo.bundled_models()["small"][2])
    assert described.architecture.id == "CSNLN"


@pytest.mark.parametrize(
    ("branches", "fusion"),
    [
        (("local",), "projection"),
        (("in_scale", "cross_scale"), "concat"),
        (("cross_scale",), "projection"),
        (("local", "cross_scale"), "projection"),
    ],
)
def test_the_papers_branch_options_are_told_apart(
    loader: spandrel.ModelLoader, tmp_path: Path, branches: tuple[str, ...], fusion: str
) -> None:
    """A cell without some attention (the attention study's variants, e.g. local only made
    wider) loads as the configuration it is, from its tensors alone."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = csnln.CSNLN(3, n_feats=12, depth=2, branches=branches, fusion=fusion).eval()
    path = tmp_path / "variant.safetensors"
    save_file(model.state_dict(), path)
    described = loader.load_from_file(path)
    assert described.scale == 3 and "+".join(branches) in described.tags
    assert described.model.config == model.config
    x = torch.rand(1, 3, 20, 22)
    with torch.no_grad():
        assert (described(x) - model(x).clamp(0, 1)).abs().max().item() < 1e-5


def test_an_output_kernel_of_no_scale_is_named() -> None:
    state = csnln.CSNLN(2, n_feats=8, depth=1).state_dict()
    state["cell.output_down.conv.weight"] = torch.zeros(8, 8, 7, 7)
    with pytest.raises(ValueError, match=r"is 7x7, expected 6 \(x2\), 9 \(x3\), 8 \(x4\)"):
        csnln_spandrel._csnln_config(state)
