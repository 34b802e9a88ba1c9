"""Tiling, the authors' chop, self-ensemble, precision and the memory model."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

import csnln
from csnln import device, inference
from csnln.inference import (
    MEASURED_PLANS,
    TilePlan,
    Upscaler,
    chop_tile_count,
    estimate_memory,
    fast_bf16,
    memory_model,
    output_bytes,
    parse_memory,
    precision_context,
    resolve_precision,
    run_chop,
    run_tiled,
    self_ensemble,
    tile_for_memory,
    tile_starts,
)
from csnln.models import Bicubic, describe


def nearest(scale: int):
    return lambda x: F.interpolate(x, scale_factor=scale, mode="nearest")


@pytest.mark.parametrize(
    ("length", "tile", "overlap"), [(100, 30, 8), (64, 64, 8), (65, 64, 8), (7, 3, 1)]
)
def test_tile_starts_cover_with_overlap(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiling_and_chop_are_exact_for_a_local_operator(scale: int) -> None:
    x = torch.rand(2, 3, 53, 61)
    whole = nearest(scale)(x)
    assert torch.allclose(
        run_tiled(nearest(scale), x, scale=scale, tile=16, overlap=5), whole, atol=1e-6
    )
    assert torch.equal(run_chop(nearest(scale), x, scale=scale, min_size=900), whole)


def test_tiled_network_equals_whole_when_one_tile_covers_and_is_close_otherwise() -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=2).eval()
    x = F.interpolate(torch.rand(1, 3, 8, 8), size=(40, 36), mode="bicubic").clamp(0, 1)
    with torch.no_grad():
        whole = model(x)
        assert torch.equal(run_tiled(model, x, scale=2, tile=40, overlap=8), whole)
        tiled = run_tiled(model, x, scale=2, tile=24, overlap=12)
    assert (tiled - whole).abs().mean() < 0.01


def test_chop_calls_the_model_as_often_as_counted() -> None:
    calls = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape[-2:]))
        return nearest(2)(x)

    x = torch.rand(1, 3, 130, 90)
    run_chop(forward, x, scale=2)
    assert len(calls) == chop_tile_count(130, 90, scale=2)
    assert all(h * w < 3600 and h % 2 == 0 and w % 2 == 0 for h, w in calls)
    assert run_chop(forward, torch.rand(1, 3, 20, 20), scale=2).shape == (1, 3, 40, 40)


def test_self_ensemble_inverts_every_transform() -> None:
    x = torch.rand(1, 3, 9, 13)
    assert torch.allclose(self_ensemble(nearest(3), x), nearest(3)(x))
    seen = []

    def forward(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        return nearest(2)(t)

    self_ensemble(forward, x)
    assert len(seen) == 8
    assert len({tuple(t.flatten()[:20].tolist()) for t in seen}) == 8  # 8 different inputs


def test_upscaler_options() -> None:
    model = csnln.CSNLN(2, n_feats=4, depth=1)
    x = torch.rand(1, 3, 30, 30)
    whole = Upscaler(model, tile=0)(x)
    counted = []
    tiled = Upscaler(model, tile=16, tile_overlap=4)(x, on_tile=lambda: counted.append(1))
    assert tiled.shape == whole.shape == (1, 3, 60, 60)
    assert len(counted) == Upscaler(model, tile=16, tile_overlap=4).tiles_per_image(30, 30) == 9
    ensemble = Upscaler(model, tile=0, self_ensemble=True)
    assert ensemble.tiles_per_image(30, 30) == 8
    assert Upscaler(model, chop=True)(x).shape == whole.shape
    bf16 = Upscaler(model, tile=0, precision="bf16")(x)
    assert bf16.dtype == torch.float32 and (bf16 - whole).abs().max() < 0.05
    with pytest.raises(ValueError, match="fp16 is for GPUs"):
        precision_context("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="precision"):
        Upscaler(model, precision="int8")
    with pytest.raises(ValueError, match="tile"):
        Upscaler(model, tile=1)


def test_auto_plan_whole_when_small_tiles_when_large_on_cpu() -> None:
    upscaler = Upscaler(csnln.CSNLN(2, n_feats=8, depth=1), max_memory="8GB", device="cpu")
    assert upscaler.plan(64, 64).tile == 0
    assert upscaler.plan(512, 384).tile != 0
    small_budget = Upscaler(csnln.CSNLN(2), max_memory="300MB", tile=0)
    assert small_budget.plan(64, 64).tile == 0  # an explicit choice is respected


def test_a_local_only_cell_runs_whole_when_it_fits_and_tiles_when_not_on_cpu() -> None:
    """Without attention the work per pixel does not grow with the piece: tiles smaller than
    the memory allows only add overlap, so the CPU plan is the GPU's (whole when it fits)."""
    local = csnln.CSNLN(2, n_feats=8, depth=1, branches=("local",))
    assert not local.descriptor.quadratic_cost and csnln.CSNLN(2).descriptor.quadratic_cost
    assert Upscaler(local, max_memory="8GB", device="cpu").plan(512, 384).tile == 0
    budget = memory_model(local.descriptor)(200, 200)
    tiled = Upscaler(local, max_memory=budget, device="cpu").plan(512, 384)
    assert tiled.tile != 0 and tiled.tile < 200 and tiled.needed <= tiled.budget
    x = torch.rand(1, 3, 40, 44)
    with torch.no_grad():  # whole and tiled agree but at the seams (zero padding at a tile's
        whole = Upscaler(local, tile=0)(x)  # edge reaches into the blended overlap)
        pieces = Upscaler(local, tile=24, tile_overlap=16)(x)
    assert (whole - pieces).abs().max().item() < 5e-3
    assert (whole - pieces).abs().mean().item() < 1e-3


def test_memory_model() -> None:
    model = csnln.CSNLN(4)
    assert estimate_memory(model, 64, 64) < estimate_memory(model, 128, 128)
    tile = tile_for_memory(model, parse_memory("2GB"))
    assert (
        estimate_memory(model, tile, tile)
        <= parse_memory("2GB")
        < estimate_memory(model, tile + 1, tile + 1)
    )
    with pytest.raises(MemoryError, match="GB"):
        tile_for_memory(model, parse_memory("100MB"))
    assert parse_memory("4GB") == 4 * 2**30 and parse_memory("512 MB") == 512 * 2**20
    with pytest.raises(ValueError, match="4 parsecs"):
        parse_memory("4 parsecs")


def test_batched_tiles_equal_one_at_a_time() -> None:
    torch.manual_seed(0)
    model = csnln.CSNLN(2, n_feats=8, depth=2).eval()
    x = torch.rand(2, 3, 37, 45)
    calls: list[int] = []

    def forward(piece: torch.Tensor) -> torch.Tensor:
        calls.append(piece.shape[0])
        with torch.no_grad():
            return model(piece)

    one = run_tiled(forward, x, scale=2, tile=16, overlap=4, batch=2)
    assert set(calls) == {2}  # one tile (of both images) per call
    calls.clear()
    ticks: list[int] = []
    many = run_tiled(
        forward, x, scale=2, tile=16, overlap=4, batch=10, on_tile=lambda: ticks.append(1)
    )
    tiles = len(tile_starts(37, 16, 4)) * len(tile_starts(45, 16, 4))
    assert len(ticks) == tiles and sum(calls) == 2 * tiles and max(calls) == 10
    assert torch.allclose(one, many, atol=1e-5)


def test_concurrent_streams_equal_one_stream() -> None:
    torch.manual_seed(0)
    model = csnln.CSNLN(2, n_feats=8, depth=2).eval()
    x = torch.rand(1, 3, 37, 45)
    threads = torch.get_num_threads()
    callers: set[int] = set()

    def forward(piece: torch.Tensor) -> torch.Tensor:
        callers.add(threading.get_ident())
        with torch.no_grad():
            return model(piece)

    one = run_tiled(forward, x, scale=2, tile=16, overlap=4, batch=2)
    assert callers == {threading.get_ident()}
    callers.clear()
    ticks: list[int] = []
    two = run_tiled(
        forward, x, scale=2, tile=16, overlap=4, batch=2, streams=2, on_tile=lambda: ticks.append(1)
    )
    assert threading.get_ident() not in callers and len(callers) == 2  # two worker threads
    assert len(ticks) == len(tile_starts(37, 16, 4)) * len(tile_starts(45, 16, 4))
    assert torch.allclose(one, two, atol=1e-6)
    assert torch.get_num_threads() == threads  # the workers' thread counts stay theirs


def _measured(monkeypatch: pytest.MonkeyPatch, model: csnln.CSNLN, plan: TilePlan) -> None:
    """As if ``plan`` were measured for ``model``'s weights."""
    monkeypatch.setitem(MEASURED_PLANS, "measured-here", {model.scale: plan})
    model.weights = "measured-here"


def test_streams_in_the_plan_and_its_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=1)
    _measured(monkeypatch, model, TilePlan(tile=16, overlap=3, batch=4))
    plan = Upscaler(model, device="cpu", max_memory="8GB", tile_streams=2).plan(40, 50)
    memory = memory_model(model.descriptor)
    buffers = output_bytes(2, 40, 50, 1, tiled=True, alpha=False, ensemble=False)
    assert plan.streams == 2 and plan.needed == buffers + 2 * memory(16 * 4, 16)
    assert Upscaler(model, device="cpu", tile_streams=1).plan(40, 50).streams == 1
    # A budget for one call of 4 tiles but not two runs one stream before fewer tiles per call.
    budget = memory(16 * 4, 16) + buffers + 1
    plan = Upscaler(model, device="cpu", max_memory=budget, tile_streams=2).plan(40, 50)
    assert (plan.streams, plan.batch) == (1, 4)
    assert Upscaler(model, device="cpu", tile_streams=2).plan(16, 12).streams == 1  # whole
    with pytest.raises(ValueError, match="tile streams must be >= 1, got 0"):
        csnln.RunOptions(tile_streams=0)


def test_auto_plan_is_the_models_measured_plan_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    model = csnln.CSNLN(2, n_feats=8, depth=1)
    _measured(monkeypatch, model, TilePlan(tile=16, overlap=3, batch=4))
    assert model.descriptor.weights == "measured-here"
    upscaler = Upscaler(model, device="cpu", max_memory="8GB")
    plan = upscaler.plan(40, 50)
    assert (plan.tile, plan.overlap, plan.batch) == (16, 3, 4)
    assert plan.calls == len(tile_starts(40, 16, 3)) * len(tile_starts(50, 16, 3))
    assert plan.needed <= plan.budget == 8 * 2**30
    assert upscaler.plan(16, 12).tile == 0  # fits in one tile: whole
    explicit = Upscaler(model, device="cpu", tile=24, tile_overlap=5, tile_batch=2)
    plan = explicit.plan(40, 50)
    assert (plan.tile, plan.overlap, plan.batch) == (24, 5, 2)
    # A budget too small for 4 tiles per call runs fewer per call before smaller tiles.
    buffers = output_bytes(2, 40, 50, 1, tiled=True, alpha=False, ensemble=False)
    budget = memory_model(model.descriptor)(16 * 2, 16) + buffers + 1
    assert Upscaler(model, device="cpu", max_memory=budget).plan(40, 50).batch == 2


def test_fast_bf16_needs_flags_and_a_measured_speedup(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    speedup = inference.cpu_bf16_speedup()
    assert speedup > 0 and inference.cpu_bf16_speedup() == speedup  # measured once, cached
    monkeypatch.setattr(device, "_cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 0.55)  # no AMX: bf16 slower
    assert not fast_bf16(cpu) and resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(device, "cpu_bf16_speedup", lambda: 4.4)
    assert fast_bf16(cpu) and resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(device, "_cpu_flags", lambda: frozenset({"avx2"}))
    assert not fast_bf16(cpu)


def test_precision_auto_and_descriptors() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16" if fast_bf16(cpu) else "fp32")
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ValueError, match="fp16 is for GPUs"):
        resolve_precision("fp16", cpu)
    assert describe(Bicubic(3)) == Bicubic(3).descriptor and not Bicubic(3).descriptor.tileable
    with pytest.raises(TypeError, match="Conv2d is not a model csnln can run"):
        describe(torch.nn.Conv2d(3, 3, 1))
