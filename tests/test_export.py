"""ONNX export (`csnln export`, csnln.export): the export mode computes what the network
computes; the graph onnxruntime runs matches PyTorch at several batches, with the authors'
weights on their code's inputs and with the bundled weights through our tiler; a graph that
does not match is never written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import golden_path

import csnln
from csnln.cli import main
from csnln.models.attention import _shift_sum, _shift_sum_slices

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")

from csnln.export import OPSET, ExportError, OnnxModel, export_onnx  # noqa: E402


@pytest.mark.parametrize("p", [1, 3, 5])
def test_the_slice_shift_sum_equals_the_strided_one_with_its_gradient(p: int) -> None:
    attn = torch.randn(2, 4, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    a, b = _shift_sum(attn, p), _shift_sum_slices(attn, p)
    assert a.shape == b.shape and torch.allclose(a, b, atol=1e-12)
    grad = torch.randn_like(a)
    (ga,) = torch.autograd.grad(a, attn, grad)
    (gb,) = torch.autograd.grad(b, attn, grad)
    assert torch.allclose(ga, gb, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_export_mode_computes_what_the_network_computes(scale: int) -> None:
    model = csnln.CSNLN(scale, n_feats=8, depth=2).eval()
    x = torch.rand(3, 3, 26, 30)
    with torch.no_grad():
        normal = model(x)
        model.set_export_mode(True)
        exported = model(x)
        model.set_export_mode(False)
    assert (normal - exported).abs().max().item() < 1e-5


def test_the_authors_weights_export_and_match_their_code(tmp_path: Path) -> None:
    """x2 with the authors' released weights (n_feats 128, 12 SEM steps), at the golden
    input's size: onnxruntime gives what their code gave, and what PyTorch gives, at batch
    1, 2 (the golden input), 3 and 8."""
    golden = torch.load(golden_path(2), weights_only=True)
    model = csnln.load_official({k: v.float() for k, v in golden["state_dict"].items()}, 2)
    x = golden["input"].float()
    report = export_onnx(
        model, tmp_path / "paper_x2.onnx", tile=tuple(x.shape[-2:]), check_inputs=[x]
    )
    assert report.max_abs_difference <= 1e-4 and report.checked_batches == (1, 2, 3, 8)
    runner = OnnxModel(report.path)
    out = runner(x)
    assert (out.double() - golden["output"]).abs().max().item() < 1e-4


def test_the_bundled_model_runs_through_our_tiler_as_in_pytorch(tmp_path: Path) -> None:
    report = export_onnx("small", tmp_path / "small_x2.onnx", scale=2)
    assert report.tile == (32, 32) and (report.overlap, report.margin) == (8, 3)
    assert report.max_abs_difference <= 1e-4
    meta = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
    assert meta["scale"] == "2" and meta["tile"] == "32" and meta["tile_overlap"] == "8"
    assert meta["tile_blend_margin"] == "3" and meta["csnln_version"] == csnln.__version__
    assert meta["opset"] == str(OPSET)
    assert onnx.load(str(report.path)).opset_import[0].version == OPSET
    # The file through csnln's tiler = the PyTorch model through the same plan (fp32), on an
    # image with tiles at its borders and one smaller than a tile.
    # The exported graph holds whole-tile attention (attention window 0), not the x2's window.
    pytorch = csnln.Upscaler(
        csnln.zoo.load_model("small", 2), precision="fp32", device="cpu", attention_window=0
    )
    onnx_run = csnln.Upscaler(OnnxModel(report.path), device="cpu")
    for h, w in ((45, 70), (20, 26)):
        lr = torch.rand(2, 3, h, w)
        assert onnx_run.plan(h, w).tile == pytorch.plan(h, w).tile or max(h, w) <= 32
        a, b = onnx_run(lr), pytorch(lr)
        assert a.shape == b.shape == (2, 3, 2 * h, 2 * w)
        if h > 32:  # equal tiles: the same computation
            assert (a - b).abs().max().item() < 1e-4
    with pytest.raises(FileExistsError):
        export_onnx("small", report.path, scale=2)


def test_a_graph_that_does_not_match_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csnln.export import onnx_export

    monkeypatch.setattr(onnx_export, "verify_onnx", lambda *a, **k: 0.25)
    model = csnln.CSNLN(2, n_feats=4, depth=1).eval()
    target = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match="differs from PyTorch by 2.50e-01"):
        export_onnx(model, target, tile=16)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_csnln_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    checkpoint = csnln.save_checkpoint(
        csnln.CSNLN(3, n_feats=4, depth=1), tmp_path / "tiny_x3.safetensors"
    )
    out = tmp_path / "tiny.onnx"
    assert main(["export", str(checkpoint), "-o", str(out), "--tile", "24"]) == 0
    said = capsys.readouterr().out
    assert "x3, input N x 3 x 24 x 24 (any N), opset 18" in said and "matches PyTorch" in said
    assert main(["export", str(checkpoint), "-o", str(out), "--tile", "24"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["export", "small"]) == 2  # a bundled name needs its scale
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "x.onx")]) == 2
    assert "an onnx file must end in .onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: the formats are the registry's
        main(["export", str(checkpoint), "--format", "tflite"])
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        csnln.export.export(checkpoint, tmp_path / "x.tflite", format="tflite")
    assert set(csnln.export.FORMATS) == {"onnx"}


@pytest.mark.parametrize(
    ("branches", "fusion"),
    [
        (("local",), "projection"),
        (("local", "in_scale"), "concat"),
        (("cross_scale",), "projection"),
    ],
)
def test_the_papers_branch_options_export_too(
    tmp_path: Path, branches: tuple[str, ...], fusion: str
) -> None:
    """The attention study's variants (a cell without some attention) are CSNLN
    configurations a user may ship: they export and verify like the bundled cell."""
    torch.manual_seed(0)
    model = csnln.CSNLN(2, n_feats=8, depth=1, branches=branches, fusion=fusion).eval()
    report = export_onnx(model, tmp_path / "variant.onnx", tile=24)
    assert report.max_abs_difference <= 1e-4
    x = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        assert (OnnxModel(report.path)(x) - model(x)).abs().max().item() < 1e-4
