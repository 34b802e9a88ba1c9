"""trained/reproduce.sh: the chain of each bundled scale, and of another configuration when
given overrides (every run gets them, into its own folder; x3 then starts from that x2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "train"

pytestmark = pytest.mark.skipif(not TRAIN.is_dir(), reason="needs ../shared/data/train")


def _reproduce(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with a stand-in `csnln` that records its arguments, one call a line."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin" / "csnln"
    fake.parent.mkdir(parents=True)
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    # The stand-in first, then this interpreter's bin (the script's `python -c` must import
    # csnln when the virtual environment is not on PATH).
    path = os.pathsep.join([str(fake.parent), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = dict(os.environ, PATH=path)
    done = subprocess.run(
        ["bash", "trained/reproduce.sh", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_the_bundled_chain(tmp_path: Path) -> None:
    done, calls = _reproduce(tmp_path, "2")
    assert done.returncode == 0, done.stderr
    assert len(calls) == 4 and all("output_dir=runs/reproduce/" in c for c in calls)
    assert calls[0].startswith("train trained/wide_x2_f64d1/config.yaml")
    assert "model.init=null" in calls[0] and "train.steps=9000" in calls[-1]


def test_overrides_reach_every_run_of_the_chain(tmp_path: Path) -> None:
    done, calls = _reproduce(tmp_path, "2", "model.n_feats=86", "model.branches=[local]")
    assert done.returncode == 0, done.stderr
    assert len(calls) == 4
    folder = "runs/reproduce-model.n_feats=86_model.branches=_local"
    for call in calls:
        assert "model.n_feats=86 model.branches=[local] --resume" in call
        assert f"output_dir={folder}/" in call
    done, calls = _reproduce(tmp_path / "x3", "3", "model.n_feats=86")
    assert done.returncode == 2 and "run 'bash trained/reproduce.sh 2" in done.stderr
    assert calls == []
