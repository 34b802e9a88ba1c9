"""Does the attention's gain follow repeated structure? Per image of SunHays80 and B100: the
PSNR of the bundled cell (LIC) minus local only (L) and minus local only at the cell's cost
(L, n_feats 86), from the attention study's result.json files, against how strongly the image's
structure recurs across scales, the property the cross-scale attention exploits, with the
image's edge content as the control (an image with more edges has more to gain from anything).

Cross-scale recurrence of an image: on its LR luma (the network's input), the structured 5x5
patches (mean removed; the quarter with the most contrast; 2,000 of them at random, seed 0)
are each matched against every patch of the same image downscaled by 2 (MATLAB bicubic, as the
cross-scale attention's exemplars are); the image's score is the mean, over those patches, of
the best normalised cross-correlation (1: an exact copy at half scale exists). In-scale
recurrence, the in-scale attention's: the same against the image's own patches that do not
overlap the query. Edge content: the mean gradient magnitude of the LR luma. (A check: fixed-
period stripes score 0.44 across scales and 1.00 within; concentric rings of growing period
0.99 and 1.00; uniform noise 0.66 and 0.73, the floor that a best of thousands gives.)

Printed and written: Spearman's rank correlation of each gain with recurrence and with edge
content, the partial correlation of gain and recurrence with edge content held fixed, each
set apart (recurrence is not comparable between sets of different image sizes), and, where
both seeds exist, how well the per-image gains of seed 0 and seed 1 agree (if they do not,
per-image gains are noise and no property can explain them), and how much one image's PSNR
moves between two seeds of one network, next to the spread of the gains.

    python benchmarks/attention_recurrence.py   # -> benchmarks/results/attention_recurrence.md
                                                #    docs/attention_recurrence.png

Needs ../shared and the runs' result.json (ablations/bundled/runs/...). A few minutes.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from csnln.ablation import BUDGETS, REFERENCE, Variant, load_results  # noqa: E402
from csnln.ablation.runs import RunResult  # noqa: E402
from csnln.ablation.shipped import per_image_gains  # noqa: E402
from csnln.ablation.studies import matched_local_width  # noqa: E402
from csnln.data.imresize import imresize  # noqa: E402
from csnln.data.protocol import prepare_pair  # noqa: E402
from csnln.metrics import rgb_to_y  # noqa: E402
from csnln.plots import cloud_chart  # noqa: E402

BENCH = ROOT.parent / "shared" / "data" / "benchmark"
PATCH = 5
QUERIES = 2000
SETS = ("SunHays80", "B100")


def _patches(y: torch.Tensor) -> torch.Tensor:
    """Every PATCH x PATCH patch of a 1 x 1 x H x W image, mean removed: N x PATCH²."""
    p = F.unfold(y, PATCH)[0].T
    return p - p.mean(1, keepdim=True)


def _structured(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """QUERIES of the most contrasted quarter of the image's patches (normalised; seed 0)
    and their top-left (row, column)."""
    patches = _patches(image)
    norm = patches.norm(dim=1)
    index = torch.nonzero(norm >= norm.quantile(0.75))[:, 0]
    generator = torch.Generator().manual_seed(0)
    index = index[torch.randperm(len(index), generator=generator)[:QUERIES]]
    width = image.shape[-1] - PATCH + 1
    where = torch.stack([index // width, index % width], dim=1)
    return F.normalize(patches[index], dim=1).float(), where


def _exemplars(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image's patches less the flatter half (a flat patch has no direction to match),
    normalised, and their top-left (row, column)."""
    patches = _patches(image)
    norm = patches.norm(dim=1)
    index = torch.nonzero(norm >= norm.quantile(0.5))[:, 0]
    width = image.shape[-1] - PATCH + 1
    where = torch.stack([index // width, index % width], dim=1)
    return F.normalize(patches[index], dim=1).float(), where


def recurrence(lr_y: torch.Tensor) -> tuple[float, float]:
    """(cross-scale, in-scale) recurrence of ``lr_y`` (H x W in [0, 1]): the mean, over its
    structured patches, of the best normalised cross-correlation with a patch of the image
    downscaled by 2, and with a patch of the image itself that does not overlap it."""
    image = lr_y[None, None].double()
    queries, where = _structured(image)
    smaller, _ = _exemplars(imresize(image, 0.5))
    same, there = _exemplars(image)
    # column of `same` at each patch position (-1: not an exemplar), to mask the overlaps
    grid = torch.full((image.shape[-2] - PATCH + 1, image.shape[-1] - PATCH + 1), -1)
    grid[there[:, 0], there[:, 1]] = torch.arange(len(there))
    shifts = torch.arange(-PATCH + 1, PATCH)
    cross, inside = [], []
    for q, w in zip(queries.split(250), where.split(250), strict=True):
        cross.append((q @ smaller.T).amax(1))
        ncc = F.pad(q @ same.T, (0, 1), value=-1.0)  # a last column for "no exemplar"
        rows = (w[:, :1] + shifts).clamp(0, grid.shape[0] - 1)  # queries x (2 PATCH - 1)
        cols = (w[:, 1:] + shifts).clamp(0, grid.shape[1] - 1)
        near = grid[rows[:, :, None], cols[:, None, :]].flatten(1)  # queries x (2 PATCH - 1)²
        ncc.scatter_(1, near.masked_fill(near < 0, len(same)), -1.0)
        inside.append(ncc.amax(1))
    return float(torch.cat(cross).mean()), float(torch.cat(inside).mean())


def edge_content(lr_y: torch.Tensor) -> float:
    """Mean gradient magnitude of ``lr_y`` (H x W in [0, 1])."""
    dy, dx = lr_y.diff(dim=0)[:, :-1], lr_y.diff(dim=1)[:-1]
    return float((dx.square() + dy.square()).sqrt().mean())


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    for rank, index in enumerate(order):
        ranks[index] = float(rank)
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (no ties expected among float scores)."""
    return statistics.correlation(_ranks(a), _ranks(b))


def partial(r_xy: float, r_xz: float, r_yz: float) -> float:
    """Correlation of x and y with z held fixed, from the three pairwise correlations."""
    return (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))


def _seed_noise(networks: dict[str, list[RunResult]]) -> list[str]:
    """How much one image's PSNR moves between two seeds of the same network (seed 1 minus
    seed 0), next to how much the per-image gain of LIC over L spreads (seed 0): if the two
    spreads are alike, a per-image gain says little about the image."""
    rows = []
    for dataset in SETS:
        cell = [r for r in networks["LIC"] if r.seed == 0]
        local = [r for r in networks.get("L", []) if r.seed == 0]
        gains = [g for _, g in per_image_gains(cell, local, dataset)] if local else []
        for name, runs in networks.items():
            by_seed = {r.seed: r for r in runs}
            if not {0, 1} <= set(by_seed):
                continue
            later, first = by_seed[1].per_image[dataset], by_seed[0].per_image[dataset]
            noise = [later[n] - first[n] for n in sorted(first)]
            spread = f"{statistics.stdev(gains):.3f}" if len(gains) > 1 else ""
            rows.append(
                f"| {dataset} | {name} | {statistics.fmean(noise):+.3f} | "
                f"{statistics.stdev(noise):.3f} | {statistics.median(map(abs, noise)):.3f} | "
                f"{spread} |"
            )
    if not rows:
        return ["", "Seed noise per image: not measured yet (no network has seeds 0 and 1)."]
    return [
        "",
        "How much does one image move from seed to seed? Per image, seed 1 minus seed 0 of the",
        "same network: its mean (the set's seed difference), standard deviation and median",
        "absolute value over the images, next to the standard deviation of the per-image gain",
        "LIC − L (seed 0).",
        "",
        "| set | network | mean | std | median abs | std of LIC − L |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
    ]


def main() -> int:
    budget = BUDGETS["bundled"]
    found = load_results(ROOT / "ablations", budget, "attention")  # variant -> its seeds
    cell = found[REFERENCE.resolved(budget)]
    others = {
        "L": found[Variant(branches=("local",)).resolved(budget)],
        "L-f86": found[
            Variant(branches=("local",), n_feats=matched_local_width(budget)).resolved(budget)
        ],
    }
    others = {k: v for k, v in others.items() if v}
    if not cell or not others:
        print("the attention study's LIC and L runs are not finished: nothing to compare")
        return 1
    seeds = sorted({r.seed for r in cell})
    lines = [
        "# Does the attention's gain follow repeated structure?",
        "",
        "`python benchmarks/attention_recurrence.py` (see its doc for the measures). Per image:",
        "the PSNR of the bundled cell (LIC) minus a local-only network (L: the same width;",
        f"L-f86: n_feats {matched_local_width(budget)}, the cell's FLOPs), mean of the seeds both",
        f"have (LIC seeds: {', '.join(map(str, seeds))}), against the image's cross-scale",
        "recurrence (across scales and within the scale) and its edge content. ρ: Spearman's",
        "rank correlation; partial: gain and that recurrence with edge content held fixed.",
        "|ρ| above 2/√n (0.22 for 80 images, 0.20 for 100) is about the 5 % level.",
        "",
        "| set | images | gain over | median gain | ρ(gain, cross-scale) | ρ(gain, in-scale) "
        "| ρ(gain, edges) | partial: cross-scale | partial: in-scale |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    clouds: dict[str, list[tuple[float, float]]] = {}
    for dataset in SETS:
        scores: dict[str, tuple[float, float, float]] = {}
        for hr_path in sorted((BENCH / dataset / "HR").iterdir()):
            _, lr = prepare_pair(hr_path, 2)
            lr_y = rgb_to_y(lr).float()[0] / 255
            scores[hr_path.stem] = (*recurrence(lr_y), edge_content(lr_y))
        names = sorted(scores)
        cross, inside, edges = ([scores[n][i] for n in names] for i in range(3))
        print(
            f"{dataset}: {len(scores)} images scored; ρ(cross-scale, edges) "
            f"{spearman(cross, edges):+.2f}, ρ(in-scale, edges) {spearman(inside, edges):+.2f}"
        )
        for name, runs in others.items():
            gains = dict(per_image_gains(cell, runs, dataset))
            gain = [gains[n] for n in names]
            r_ge = spearman(gain, edges)
            cells = []
            for rec in (cross, inside):
                r_gr, r_re = spearman(gain, rec), spearman(rec, edges)
                cells.append((r_gr, partial(r_gr, r_ge, r_re)))
            row = (
                f"| {dataset} | {len(names)} | {name} | {statistics.median(gain):+.3f} | "
                f"{cells[0][0]:+.2f} | {cells[1][0]:+.2f} | {r_ge:+.2f} | "
                f"{cells[0][1]:+.2f} | {cells[1][1]:+.2f} |"
            )
            lines.append(row)
            print(row, flush=True)
            if name == "L":
                clouds[f"{dataset}, LIC - L"] = list(zip(cross, gain, strict=True))
    agreement = []
    for name, runs in others.items():
        both = sorted({r.seed for r in cell} & {r.seed for r in runs})
        if len(both) < 2:
            continue
        for dataset in SETS:
            per_seed = [
                dict(
                    per_image_gains(
                        [r for r in cell if r.seed == s], [r for r in runs if r.seed == s], dataset
                    )
                )
                for s in both[:2]
            ]
            names = sorted(per_seed[0])
            rho = spearman([per_seed[0][n] for n in names], [per_seed[1][n] for n in names])
            agreement.append(f"| {dataset} | {name} | {rho:+.2f} |")
    lines += ["", "Do the per-image gains repeat from seed to seed?", ""]
    if agreement:
        lines += [
            "ρ between the per-image gains of seed 0 and of seed 1 (LIC seed k minus the other",
            "network's seed k): near 0, the per-image pattern is training noise.",
            "",
            "| set | gain over | ρ(seed 0, seed 1) |",
            "|---|---|---:|",
            *agreement,
        ]
    else:
        lines.append("Not measured yet: it needs seed 1 of LIC and of the other network.")
    lines += _seed_noise({"LIC": cell, **others})
    out = ROOT / "docs" / "attention_recurrence.png"
    cloud_chart(
        clouds,
        out,
        title="per image: PSNR of the bundled cell minus local only, against recurrence",
        x_label="cross-scale recurrence (mean best NCC of structured 5x5 patches at half scale)",
        y_label="LIC - L (dB)",
        refs={"no difference": 0.0},
    )
    lines += ["", "![gain against recurrence](../../docs/attention_recurrence.png)", ""]
    results = ROOT / "benchmarks" / "results" / "attention_recurrence.md"
    results.write_text("\n".join(lines))
    print(f"wrote {results} and {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
