"""The GPU paths, skipped where PyTorch sees no CUDA GPU: float32 on the GPU gives the authors'
numbers, bf16/fp16 stay close, training runs in fp16 (GradScaler) and bf16 and resumes, the
upscale command runs on ``--device cuda``, and ``--max-memory`` bounds the GPU's memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import golden_path
from PIL import Image
from reference import ReferenceCSNLN

import csnln
from csnln.cli import main
from csnln.inference import Upscaler, precision_context
from csnln.metrics import psnr
from csnln.models.checkpoint import read_checkpoint
from csnln.training import load_config, train
from csnln.upscaling import plan_upscale

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

CUDA = torch.device("cuda")
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_test.yaml"


def _paper_model(scale: int, depth: int = 2) -> csnln.CSNLN:
    """The authors' network (n_feats 128) with random weights, through their key names."""
    torch.manual_seed(0)
    return csnln.load_official(ReferenceCSNLN(scale, 128, depth).state_dict(), scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_golden_vectors_on_the_gpu(scale: int) -> None:
    golden = torch.load(golden_path(scale), weights_only=True)
    model = csnln.load_official({k: v.float() for k, v in golden["state_dict"].items()}, scale)
    model = model.to(CUDA)
    with torch.no_grad(), precision_context("fp32", CUDA):
        out = model(golden["input"].float().to(CUDA)).double().cpu()
    assert (out - golden["output"]).abs().max().item() < 1e-5


def test_fp32_context_turns_tf32_off_and_restores_it() -> None:
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    with precision_context("fp32", CUDA):
        assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before


@pytest.mark.parametrize("scale", [2, 4])
def test_gpu_equals_cpu_in_float32_and_half_precisions_are_close(scale: int) -> None:
    model = _paper_model(scale).eval()
    lr = torch.rand(1, 3, 37, 29)
    with torch.no_grad():
        cpu = model(lr)
    gpu = Upscaler(model, tile=0, device="cuda")
    torch.testing.assert_close(gpu(lr).cpu(), cpu, atol=2e-5, rtol=0)
    for precision in ("bf16", "fp16"):
        half = Upscaler(model, tile=0, device="cuda", precision=precision)(lr).cpu()
        assert torch.isfinite(half).all()
        assert psnr(half.clamp(0, 1), cpu.clamp(0, 1)) > 40, precision


def test_tiled_equals_whole_when_one_tile_covers_on_the_gpu() -> None:
    model = _paper_model(2, depth=1).eval()
    lr = torch.rand(1, 3, 40, 36)
    whole = Upscaler(model, tile=0, device="cuda")(lr)
    # One tile is the same single model call as the whole image; but two calls on a GPU are
    # not bit-identical (cuDNN's transposed convolution is not deterministic): 1-ulp changes.
    again = Upscaler(model, tile=0, device="cuda")(lr)
    one_tile = Upscaler(model, tile=40, tile_overlap=8, device="cuda")(lr)
    ulp = (again - whole).abs().max().item()
    assert ulp < 1e-6 and (one_tile - whole).abs().max().item() < 1e-6
    tiled = Upscaler(model, tile=24, tile_overlap=8, device="cuda")(lr)
    assert psnr(tiled.clamp(0, 1).cpu(), whole.clamp(0, 1).cpu()) > 30


def test_max_memory_bounds_the_gpu_memory() -> None:
    model = _paper_model(2, depth=1).to(CUDA).eval()
    budget = 2**30
    plan = plan_upscale(model, 320, 320, max_memory=budget, device="cuda")
    assert plan.tile != 0 and plan.needed <= budget  # the whole image would not fit
    lr = torch.rand(1, 3, 320, 320, device=CUDA)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    out = csnln.upscale(lr, 2, model, max_memory=budget, device="cuda")
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - start
    assert out.shape == (1, 3, 640, 640)
    assert peak <= budget, f"peak {peak / 2**20:.0f} MB over the {budget / 2**20:.0f} MB budget"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    for i in range(4):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((32, 32), Image.BICUBIC).save(folder / f"img{i}.png")
    return folder


@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_training_on_the_gpu_resumes_exactly(
    tmp_path: Path, data_dir: Path, precision: str
) -> None:
    def config(steps: int, out: str):
        return load_config(
            TINY,
            [
                f"data.train_dirs=[{data_dir}]",
                "train.device=cuda",
                f"train.precision={precision}",
                "model.n_feats=8",
                f"steps={steps}",
                f"output_dir={tmp_path / out}",
            ],
        )

    straight = train(config(6, "straight"))
    train(config(3, "resumed"))
    resumed = train(config(6, "resumed"), resume=True)
    a, b = read_checkpoint(straight)[1], read_checkpoint(resumed)[1]
    for key in a:
        assert torch.isfinite(a[key]).all(), key
        # Same steps on the same GPU: equal up to non-deterministic CUDA kernels.
        torch.testing.assert_close(a[key], b[key], atol=1e-4, rtol=1e-3)
    log = (tmp_path / "straight" / "train.log").read_text()
    assert "cuda" in log


def test_upscale_command_on_the_gpu(tmp_path: Path) -> None:
    y, x = np.mgrid[0:40, 0:48].astype(np.float32)
    image = np.stack([0.5 + 0.4 * np.sin(x / 3 + c) * np.cos(y / 4) for c in range(3)], axis=2)
    Image.fromarray((image * 255).round().astype(np.uint8)).save(tmp_path / "a.png")
    model = csnln.save_checkpoint(_paper_model(2, depth=1), tmp_path / "m.safetensors")
    outputs = {}
    runs = [("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "fp16"), ("cuda", "bf16")]
    for device, precision in runs:
        out = tmp_path / f"{device}_{precision}"
        args = ["upscale", str(tmp_path / "a.png"), "--scale", "2", "--model", str(model)]
        assert main([*args, "-o", str(out), "--device", device, "--precision", precision]) == 0
        outputs[device, precision] = np.asarray(Image.open(out / "a_x2.png"), dtype=np.float64)
    cpu = outputs["cpu", "fp32"]
    assert cpu.shape == (80, 96, 3)
    assert np.abs(outputs["cuda", "fp32"] - cpu).max() <= 1  # rounding of a few pixels at most
    for precision in ("fp16", "bf16"):
        assert psnr(outputs["cuda", precision] / 255, cpu / 255) > 40, precision
