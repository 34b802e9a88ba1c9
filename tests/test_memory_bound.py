"""The memory plan bounds the real peak: a job's resident-memory growth stays under the bytes
its plan says it needs (measured in a fresh process, on images large enough to show it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

JOB = r"""
import json, resource, sys
import numpy as np
from PIL import Image
from csnln.upscaling import plan_upscale, resolve_model, upscale_file
folder, model = sys.argv[1], sys.argv[5]
w, h, scale = (int(v) for v in sys.argv[2:5])
rng = np.random.default_rng(0)
Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(f"{folder}/in.png")
net = resolve_model(model, scale, "cpu")
plan = plan_upscale(net, h, w, device="cpu")
with open("/proc/self/status") as handle:
    before = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS"))
upscale_file(f"{folder}/in.png", f"{folder}/out.png", scale, net, device="cpu")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"needed": plan.needed, "growth": peak - before, "tile": plan.tile}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize(
    ("width", "height", "scale", "model"),
    [(1200, 800, 4, "bicubic"), (600, 400, 2, "small")],
)
def test_plan_bounds_the_peak(tmp_path, width: int, height: int, scale: int, model: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", JOB, str(tmp_path), str(width), str(height), str(scale), model],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 < got["growth"] <= got["needed"], got
