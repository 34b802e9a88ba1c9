"""The memory plan bounds the real peak: a job's growth in anonymous resident memory (its
tensors and buffers) stays under the bytes its plan says it needs (measured in a fresh process,
on images large enough to show it).

Anonymous memory, sampled every millisecond, rather than the peak resident set: the resident
set also counts the mapped pages of shared libraries (torch's is 430 MB), which a plan cannot
budget. A clean-clone CI run measured 617 MB of resident growth for the x2 job below (plan:
594 MB; anonymous memory was not recorded then) where runs alone measure about 226 MB; the
cause was not found, and ``rss_growth`` is printed beside the anonymous growth to find it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

JOB = r"""
import json, resource, sys, threading, time
import numpy as np
from PIL import Image
from csnln.upscaling import plan_upscale, upscale_file
from csnln.zoo import resolve_model
folder, model = sys.argv[1], sys.argv[5]
w, h, scale = (int(v) for v in sys.argv[2:5])
window = {"attention_window": int(sys.argv[6])}  # 0: each tile whole
rng = np.random.default_rng(0)
Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(f"{folder}/in.png")
net = resolve_model(model, scale, "cpu")
plan = plan_upscale(net, h, w, device="cpu", **window)
def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key))
before, before_rss = status("RssAnon:"), status("VmRSS:")
peak, done = [before], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], status("RssAnon:"))
        time.sleep(0.001)
sampler = threading.Thread(target=sample)
sampler.start()
upscale_file(f"{folder}/in.png", f"{folder}/out.png", scale, net, device="cpu", **window)
done.set()
sampler.join()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before_rss
print(json.dumps({"needed": plan.needed, "growth": peak[0] - before, "rss_growth": rss,
                  "tile": plan.tile}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize(
    ("width", "height", "scale", "model", "window"),
    [(1200, 800, 4, "bicubic", 0), (600, 400, 2, "small", 0), (320, 240, 4, "small", 16)],
)
def test_plan_bounds_the_peak(
    tmp_path, width: int, height: int, scale: int, model: str, window: int
) -> None:
    """Also with the attentions in windows (its plan is the tiles' plan; the windows only
    make each call smaller)."""
    args = [str(tmp_path), str(width), str(height), str(scale), model, str(window)]
    out = subprocess.run(
        [sys.executable, "-c", JOB, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0 < got["growth"] <= got["needed"], got
