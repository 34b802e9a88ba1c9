"""Where the time of `csnln upscale`'s default plan goes, per scale: one model call of the
plan's tile batch, profiled by operator kind and by module, and what the overlap costs.

For each scale: the bundled model's measured plan (``csnln.inference.MEASURED_PLANS``), one
call on ``batch`` tiles cut from a photograph (after one warm-up call), in fp32 on one thread
(what each of the two concurrent calls gets on a 2-core CPU). Printed:

* the share of the call's CPU time by operator kind (convolutions, batched matmuls, softmax,
  copies and layout, element-wise and the rest), from ``torch.profiler``'s self times;
* the share by module: the in-scale and cross-scale attentions (by the grid they run on: at
  x4 the second projection stage runs them on the 2x grid), and the rest of the network;
* the overlap: LR pixels the plan computes for the 1-Mpx photo against the photo's pixels.

    python benchmarks/profile_plan.py                 # x2 x3 x4
    python benchmarks/profile_plan.py --scales 4 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import cpu_description, head_commit  # noqa: E402

PHOTO = ROOT.parent / "shared" / "data" / "train" / "Wiki49" / "005.webp"
KINDS = {
    "convolution": ("conv", "mkldnn_convolution", "slow_conv"),
    "batched matmul": ("bmm", "matmul", "mm", "addmm", "baddbmm"),
    "softmax": ("softmax",),
    "copies and layout": ("copy_", "contiguous", "cat", "clone", "pad", "constant_pad", "index"),
}


def kind_of(name: str) -> str:
    op = name.removeprefix("aten::").lstrip("_")
    for kind, words in KINDS.items():
        if any(op == w or op.startswith(w + "_") or op.startswith(w) for w in words):
            return kind
    return "element-wise and the rest"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--repeats", type=int, default=2, help="profiled calls (default 2)")
    args = parser.parse_args()

    import torch
    from PIL import Image
    from torch.profiler import ProfilerActivity, profile

    from csnln.imageio import read_image
    from csnln.inference import count_tiles, measured_plan
    from csnln.models.attention import CrossScaleAttention, InScaleAttention
    from csnln.zoo import load_model

    if not PHOTO.is_file():
        print(f"{PHOTO} not found: this benchmark needs ../shared", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    photo = read_image(PHOTO).rgb
    h, w = photo.shape[-2:]
    with Image.open(PHOTO) as img:
        size = f"{img.size[0]}x{img.size[1]}"
    print(
        f"# Where a call of the default plan spends its time — `python benchmarks/profile_plan.py "
        f"{' '.join(sys.argv[1:])}`".rstrip()
        + f"\n\ncommit {head_commit()}, {time.strftime('%Y-%m-%d %H:%M')}; CPU: "
        f"{cpu_description()}; one thread, fp32; tiles cut from {PHOTO.name} ({size}).\n"
    )
    spent: dict[str, float] = defaultdict(float)  # module on its grid -> seconds
    began: dict[int, float] = {}

    def before(module, inputs):
        began[id(module)] = time.perf_counter()

    def after(module, inputs, output):
        grid = "x".join(map(str, inputs[0].shape[-2:]))
        name = f"{type(module).__name__} on {grid}"
        spent[name] += time.perf_counter() - began.pop(id(module))

    for scale in args.scales:
        model = load_model("small", scale).eval()
        plan = measured_plan(model.descriptor)
        assert plan is not None
        t = plan.tile
        tiles = torch.stack(
            [photo[:, y : y + t, y : y + t] for y in range(0, plan.batch * t, t)][: plan.batch]
        )
        hooks = []
        for module in model.modules():
            if isinstance(module, (InScaleAttention, CrossScaleAttention)):
                hooks += [
                    module.register_forward_pre_hook(before),
                    module.register_forward_hook(after),
                ]
        with torch.no_grad():
            model(tiles)  # warm-up
            spent.clear()
            start = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(args.repeats):
                    model(tiles)
            total = time.perf_counter() - start
        for hook in hooks:
            hook.remove()
        by_kind: dict[str, float] = defaultdict(float)
        for event in prof.key_averages():
            if event.key.startswith("aten::"):
                by_kind[kind_of(event.key)] += event.self_cpu_time_total
        all_us = sum(by_kind.values()) or 1.0
        per_call = total / args.repeats
        pixels = count_tiles(h, w, t, plan.overlap) * t * t
        print(
            f"## x{scale}: tiles of {t} overlapping by {plan.overlap}, {plan.batch} per call: "
            f"{per_call:.2f} s per call under the profiler\n"
        )
        print("| operator kind | share of the call |\n|---|---|")
        for kind, us in sorted(by_kind.items(), key=lambda kv: -kv[1]):
            print(f"| {kind} | {100 * us / all_us:.0f}% |")
        print("\n| module | share of the call |\n|---|---|")
        attention = 0.0
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            attention += seconds
            print(f"| {name} | {100 * seconds / args.repeats / per_call:.0f}% |")
        rest = 100 * (1 - attention / args.repeats / per_call)
        print(f"| the rest (convolutions of the head, cell, projections and tail) | {rest:.0f}% |")
        print(
            f"\nOverlap: the plan computes {pixels / (h * w):.2f}x the LR pixels of the "
            f"{w}x{h} photo.\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
