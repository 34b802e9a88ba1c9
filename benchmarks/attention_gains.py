"""Where the attention helps, shown: the images of SunHays80 and B100 on which the bundled cell
(LIC) gains most and loses most against local only (L), both of the attention study at the
bundled budget (seed 0), as crops side by side: bicubic | L | LIC | HR, each crop the 64x64 HR
window where LIC's squared error falls most below L's (or rises most, for a loss). Then, for
the top gainer, `csnln attention`'s picture at the pixel of that window's centre: which
exemplars the network borrowed.

    python benchmarks/attention_gains.py              # -> docs/attention_gains.png,
                                                      #    docs/attention_top_gainer.png

Needs ../shared and the two runs' final weights (ablations/bundled/runs/...).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from csnln.ablation import BUDGETS, REFERENCE, Variant, run_dir  # noqa: E402
from csnln.ablation.runs import RunResult  # noqa: E402
from csnln.ablation.shipped import per_image_gains  # noqa: E402
from csnln.attention_maps import attention_maps, attention_picture  # noqa: E402
from csnln.data.imresize import imresize  # noqa: E402
from csnln.data.protocol import prepare_pair  # noqa: E402
from csnln.inference import RunOptions, Upscaler  # noqa: E402
from csnln.zoo import load_model  # noqa: E402

BENCH = ROOT.parent / "shared" / "data" / "benchmark"
WINDOW = 64  # HR pixels of a crop
SHOWN = 160  # pixels of a crop in the figure


def _result(variant: object, budget: object) -> RunResult:
    path = run_dir(ROOT / "ablations", budget, variant, 0) / "result.json"  # type: ignore[arg-type]
    return RunResult.from_json(json.loads(path.read_text()))


def _image_path(dataset: str, name: str) -> Path:
    return next((BENCH / dataset / "HR").glob(f"{name}.*"))


def _best_window(gain: torch.Tensor) -> tuple[int, int]:
    """Top-left (y, x) of the WINDOW x WINDOW window with the largest summed ``gain``."""
    sums = F.avg_pool2d(gain[None, None], WINDOW, stride=WINDOW // 4)[0, 0]
    y, x = divmod(int(sums.argmax()), sums.shape[1])
    return y * WINDOW // 4, x * WINDOW // 4


def main() -> int:
    budget = BUDGETS["bundled"]
    lic_variant = REFERENCE.resolved(budget)
    l_variant = Variant(branches=("local",)).resolved(budget)
    lic_runs, l_runs = [_result(lic_variant, budget)], [_result(l_variant, budget)]
    options = RunOptions(precision="fp32", tile=budget.eval_tile, tile_overlap=budget.eval_overlap)
    weights = {
        name: run_dir(ROOT / "ablations", budget, v, 0) / "final.safetensors"
        for name, v in (("L", l_variant), ("LIC", lic_variant))
    }
    models = {name: Upscaler(load_model(path), options) for name, path in weights.items()}
    rows: list[tuple[str, str, float, list[Image.Image]]] = []
    top_gainer: tuple[str, torch.Tensor, tuple[int, int]] | None = None
    for dataset in ("SunHays80", "B100"):
        gains = per_image_gains(lic_runs, l_runs, dataset)
        picks = [(n, g, +1) for n, g in gains[:5]] + [(n, g, -1) for n, g in gains[::-1][:5]]
        for name, gain, sign in picks:
            hr, lr = prepare_pair(_image_path(dataset, name), 2)
            lr_f = lr.float().div(255)[None]
            outs = {k: m(lr_f)[0].clamp(0, 1) for k, m in models.items()}
            hr_f = hr.float().div(255)
            err = {k: (o - hr_f).pow(2).mean(0) for k, o in outs.items()}
            y, x = _best_window(sign * (err["L"] - err["LIC"]))
            bicubic = imresize(lr_f, 2.0)[0].clamp(0, 1)
            crops = [
                t[:, y : y + WINDOW, x : x + WINDOW]
                for t in (bicubic, outs["L"], outs["LIC"], hr_f)
            ]
            pictures = [
                Image.fromarray(c.mul(255).round().byte().permute(1, 2, 0).numpy()).resize(
                    (SHOWN, SHOWN), Image.Resampling.NEAREST
                )
                for c in crops
            ]
            rows.append((f"{dataset}/{name}", "gain" if sign > 0 else "loss", gain, pictures))
            if top_gainer is None and sign > 0 and dataset == "SunHays80":
                top_gainer = (name, lr_f, (y // 2 + WINDOW // 4, x // 2 + WINDOW // 4))
            print(f"{dataset}/{name}: LIC - L {gain:+.3f} dB, window at HR x={x}, y={y}")
    gap, text = 6, 16
    size = (4 * (SHOWN + gap) + 260, len(rows) * (SHOWN + gap) + text + gap)
    figure = Image.new("RGB", size, (32, 32, 32))
    draw = ImageDraw.Draw(figure)
    for i, title in enumerate(("bicubic", "L (local only)", "LIC (bundled cell)", "HR")):
        draw.text((260 + i * (SHOWN + gap), 2), title, fill=(235, 235, 235))
    for r, (name, kind, gain, pictures) in enumerate(rows):
        top = text + r * (SHOWN + gap)
        label = f"{name}\n{kind}: LIC - L {gain:+.3f} dB"
        draw.text((4, top + SHOWN // 2 - 8), label, fill=(235, 235, 235))
        for i, picture in enumerate(pictures):
            figure.paste(picture, (260 + i * (SHOWN + gap), top))
    out = ROOT / "docs" / "attention_gains.png"
    figure.save(out)
    print(f"wrote {out}")
    if top_gainer is not None:
        name, lr_f, (row, col) = top_gainer
        h, w = lr_f.shape[-2:]
        top, left = max(0, min(row - 48, h - 96)), max(0, min(col - 48, w - 96))
        window = lr_f[..., top : top + 96, left : left + 96]
        net = load_model(weights["LIC"]).eval()
        maps = attention_maps(net, window, (row - top, col - left))
        picture = attention_picture(window, maps, top_k=5)
        out = ROOT / "docs" / "attention_top_gainer.png"
        picture.save(out)
        print(
            f"wrote {out}: SunHays80/{name}, LR pixel x={col}, y={row} (window x={left}, y={top})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
