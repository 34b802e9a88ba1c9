"""`torchrun -m csnln upscale`: a folder shared by two CPU processes (gloo) gives the files of
one process, byte for byte, each written once, a bad file named while the rest finish, and a
second run skips what exists."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import csnln
from csnln.cli import main
from csnln.commands.upscale import _shard

ROOT = Path(__file__).resolve().parents[1]


def test_shards_hold_every_job_once() -> None:
    jobs = list(range(13))
    for world in (1, 2, 3, 5, 20):
        shares = [_shard(jobs, rank, world) for rank in range(world)]
        assert sorted(j for share in shares for j in share) == jobs


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("distributed")
    images = root / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        pixels = rng.integers(0, 256, (18 + i, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / f"im{i:02d}.png")
    (images / "bad.png").write_bytes(b"not an image")
    torch.manual_seed(0)
    csnln.save_checkpoint(csnln.CSNLN(2, n_feats=4, depth=1), root / "tiny.safetensors")
    return root


def _torchrun(folder: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "csnln", "upscale", str(folder / "in"), "-o", str(out),
        "--model", str(folder / "tiny.safetensors"), "--threads", "1", "--tile-streams", "1",
        "--precision", "fp32",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)


def test_two_processes_write_what_one_writes(folder: Path) -> None:
    single = folder / "single"
    args = ["upscale", str(folder / "in"), "-o", str(single), "--threads", "1", "--precision"]
    args += ["fp32"]  # `auto` is timed per process: the same precision on both sides
    assert main([*args, "--model", str(folder / "tiny.safetensors"), "--tile-streams", "1"]) == 1
    shared = folder / "shared"
    run = _torchrun(folder, shared)
    assert run.returncode != 0  # one file failed: the exit status says so
    assert "2 processes: 12 image(s) written, 0 skipped (their outputs exist), 1 failed" in (
        run.stderr
    )
    assert "bad.png" in run.stderr.split("1 failed")[1]
    # Each file by one process, once (two processes share the pipe: a line's end of line
    # may come after the other's line, so the names are found, not split by lines).
    written = re.findall(r"-> (\S+?_x2\.png)", run.stdout)
    assert len(written) == len(set(written)) == 12
    names = sorted(p.name for p in single.iterdir())
    assert names == sorted(p.name for p in shared.iterdir()) and len(names) == 12
    for name in names:
        assert (single / name).read_bytes() == (shared / name).read_bytes(), name
    # Resumable: a second run finds every output and computes nothing.
    again = _torchrun(folder, shared)
    assert "0 image(s) written, 12 skipped (their outputs exist), 1 failed" in again.stderr
    assert " -> " not in again.stdout
