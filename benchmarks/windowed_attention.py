"""Windowed attention against today's tiles, on this CPU: does confining only the attentions
to windows (and running the convolutions on large tiles) make the bundled model faster, and
what does it cost on Set5?

Per scale, in one process, one after the other (the machine to itself):

* ``tiles``: the default plan (the model's measured tile plan: small tiles overlapping, every
  layer paying for the overlap), float32;
* ``windowed W``: LR tiles of 192 overlapping by 16 (convolutions nearly free of overlap),
  the attentions in query blocks over windows of W LR pixels
  (``CSNLN.set_attention_window``), float32.

Prints seconds on a crop of a Kodak photo (``--size``, whole ``Upscaler`` call, 2 threads),
their ratio, and Set5 PSNR (Y) of both, as ``csnln eval`` measures it.

    python benchmarks/windowed_attention.py                 # x2 x3 x4, windows 24 and 36
    python benchmarks/windowed_attention.py --scales 2 --windows 32
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from csnln.device import _cpu_flags  # noqa: E402
from csnln.evaluation import evaluate  # noqa: E402
from csnln.inference import RunOptions, Upscaler  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PHOTO = SHARED / "train" / "Kodak24" / "kodim01.png"
SET5 = SHARED / "benchmark" / "Set5"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--windows", type=int, nargs="+", default=[24, 36])
    parser.add_argument("--size", type=int, nargs=2, default=[384, 256], metavar=("W", "H"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    flags = _cpu_flags()
    print(
        f"# Windowed attention against tiles — `python benchmarks/windowed_attention.py`\n\n"
        f"{cpu_name()}; AMX: {'yes' if 'amx_bf16' in flags else 'no'}, AVX512-BF16: "
        f"{'yes' if 'avx512_bf16' in flags else 'no'}; torch {torch.__version__}, 2 threads; "
        f"photo: {PHOTO.name} cropped to {args.size[0]}x{args.size[1]} (LR).\n"
    )
    photo = Image.open(PHOTO).convert("RGB").crop((0, 0, *args.size))
    lr = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255
    print("| scale | path | plan | photo s | vs tiles | Set5 PSNR | vs tiles dB |")
    print("|---|---|---|---|---|---|---|")
    for scale in args.scales:
        model = load_model("small", scale)
        base_seconds = base_psnr = 0.0
        for window in [None, *args.windows]:
            m = model.size_multiple
            size = (
                None if window is None else max(model.smallest_attention_window(), window // m * m)
            )
            model.set_attention_window(size)
            options = (
                RunOptions(precision="fp32")
                if size is None
                else RunOptions(precision="fp32", tile=192, tile_overlap=16, tile_batch=1)
            )
            upscaler = Upscaler(model, options)
            plan = upscaler.plan(*lr.shape[-2:])
            began = time.perf_counter()
            upscaler(lr)
            seconds = time.perf_counter() - began
            psnr = evaluate(model, [str(SET5)], scale, options, progress=False)[0].psnr
            if size is None:
                base_seconds, base_psnr = seconds, psnr
            name = "tiles" if size is None else f"windowed {size}"
            print(
                f"| x{scale} | {name} | tile {plan.tile}/{plan.overlap}, {plan.batch}/call | "
                f"{seconds:.2f} | {base_seconds / seconds:.2f}x | {psnr:.3f} | "
                f"{psnr - base_psnr:+.3f} |",
                flush=True,
            )
        model.set_attention_window(None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
