"""Larger tiles or attention windows for the bundled model: faster, and at what PSNR?

Per scale, each candidate plan (LR tile / overlap, tiles per call, attention window; 0: the
whole tile) runs in float32 on two threads: seconds for a 384x256 crop of a Kodak photo
(one ``Upscaler`` call), PSNR (Y) on the held-out split (``csnln.data.splits``: the data
plans are chosen on) and on Set5 (reported only). The first row is the default plan.
Prints a markdown table; the verdict column says whether a candidate stays within 0.01 dB
of the default on the split.

    python benchmarks/window_plan.py                     # x2 and x4, the candidates below
    python benchmarks/window_plan.py --scales 4 --candidates 24,6,8,16 48,8,4,24

Needs ../shared. Run it alone (the seconds are one run each).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import cpu_description, head_commit  # noqa: E402
from PIL import Image  # noqa: E402

from csnln.data.splits import validation_files  # noqa: E402
from csnln.evaluation import evaluate  # noqa: E402
from csnln.inference import RunOptions, Upscaler  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PHOTO = SHARED / "train" / "Kodak24" / "kodim01.png"
SET5 = SHARED / "benchmark" / "Set5"
#: tile, overlap, tiles per call, attention window (0: whole tile)
CANDIDATES = {
    2: ["32,8,8,16", "32,8,8,24", "64,8,2,24", "64,8,2,32", "96,8,1,32", "64,8,2,0"],
    3: ["27,6,8,15", "54,6,2,15", "54,6,2,27"],
    4: ["24,6,8,16", "48,8,4,16", "48,8,4,24", "64,8,2,16", "48,8,4,0"],
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + __doc__.split("\n\n")[-2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4], choices=(2, 3, 4))
    parser.add_argument(
        "--candidates",
        nargs="+",
        metavar="T,O,B,W",
        help="tile,overlap,tiles per call,window (default: a list per scale)",
    )
    args = parser.parse_args()
    if not PHOTO.is_file():
        print(f"window_plan.py: needs ../shared ({PHOTO} not found)", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    split = validation_files(SHARED / "train")
    crop = Image.open(PHOTO).convert("RGB").crop((0, 0, 384, 256))
    lr = torch.from_numpy(np.array(crop)).permute(2, 0, 1)[None].float() / 255
    print(
        f"# Tiles and attention windows — `python benchmarks/window_plan.py "
        f"{' '.join(sys.argv[1:])}`".rstrip()
        + f"\n\ncommit {head_commit()}, {time.strftime('%Y-%m-%d %H:%M')}; {cpu_description()}; "
        "fp32; seconds: one call on a 384x256 crop of kodim01; PSNR on Y.\n"
    )
    print(
        "| scale | tile / overlap, per call | attention window | s | split dB | vs default "
        "| within 0.01 dB | Set5 dB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scale in args.scales:
        model = load_model("small", scale)
        base = None
        for text in [None, *(args.candidates or CANDIDATES[scale])]:
            if text is None:
                options, window = RunOptions(precision="fp32"), None
            else:
                tile, overlap, batch, size = (int(v) for v in text.split(","))
                window = size  # 0: each tile whole (whatever the weights were trained in)
                options = RunOptions(
                    precision="fp32",
                    tile=tile,
                    tile_overlap=overlap,
                    tile_batch=batch,
                    attention_window=window,
                )
            upscaler = Upscaler(model, options)
            plan = upscaler.plan(*lr.shape[-2:])
            upscaler(lr[:, :, :64, :64])  # kernels chosen
            began = time.perf_counter()
            upscaler(lr)
            seconds = time.perf_counter() - began
            results = evaluate(upscaler, split, scale, progress=False)
            psnr = statistics.fmean(r.psnr for r in results)
            set5 = evaluate(upscaler, [str(SET5)], scale, progress=False)[0].psnr
            base = psnr if base is None else base
            label = "default: " if text is None else ""
            print(
                f"| x{scale} | {label}{plan.tile} / {plan.overlap}, {plan.batch} "
                f"| {plan.attention_window or 'whole tile'} | {seconds:.2f} | {psnr:.4f} | {psnr - base:+.4f} "
                f"| {'yes' if psnr >= base - 0.01 else 'no'} | {set5:.4f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
