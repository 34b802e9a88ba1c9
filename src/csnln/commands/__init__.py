"""Subcommands of the ``csnln`` command line (see :mod:`csnln.cli`).

Each module defines ``add_arguments(parser)`` and ``run(args) -> int`` (the exit code) and
has a Python API equivalent elsewhere in the package.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..inference import RunOptions


def add_tile_argument(group: argparse._ActionsContainer) -> None:
    """``--tile``, as upscale and eval take it (each in its own exclusive group)."""
    group.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="run the model on overlapping N x N LR tiles blended without seams (0: always "
        "the whole image; default: the model's measured tile plan on a CPU; on a GPU the "
        "whole image when it fits the memory budget, else the largest tile that does)",
    )


def add_tile_options(parser: argparse.ArgumentParser) -> None:
    """``--tile-overlap``, ``--tile-batch``, ``--tile-streams`` and ``--tile-margin`` (the fields of
    :class:`csnln.inference.RunOptions` that refine a tile plan), as upscale and eval take them."""
    from ..inference import DEFAULT_OVERLAP

    parser.add_argument(
        "--tile-overlap",
        type=int,
        metavar="M",
        help="overlap of neighbouring tiles in LR pixels, cross-faded (default: the tile "
        f"plan's; {DEFAULT_OVERLAP} with an explicit --tile)",
    )
    parser.add_argument(
        "--tile-batch",
        type=int,
        metavar="K",
        help="tiles per model call (default: the tile plan's; 1 for models without one); "
        "changes speed and memory, not the result",
    )
    parser.add_argument(
        "--tile-streams",
        type=int,
        metavar="N",
        help="model calls running at once, each on its share of the CPU threads (default: "
        "2 on a CPU with 2 or more threads, else 1); changes speed and memory, the result only "
        "by float rounding",
    )
    parser.add_argument(
        "--tile-margin",
        type=int,
        metavar="P",
        help="in the blend, leave the outer P LR pixels of each overlap to the neighbouring "
        "tile (default: the tile plan's; 0 with an explicit --tile)",
    )
    parser.add_argument(
        "--attention-window",
        type=int,
        metavar="W",
        help="confine the attentions to windows of W LR pixels inside each tile (a multiple "
        "of 2 of at least 6, at x3 of 3 of at least 9; e.g. 16): faster, not the authors' "
        "computation (docs/benchmarks.md measures speed and PSNR); 0: each tile whole, as "
        "the authors compute it; default: the window the weights were trained in, else 0",
    )


def exists_error(exc: FileExistsError) -> str:
    """The one-line error of a write refused because the file exists, in command-line terms."""
    return "error: " + str(exc).replace("(pass overwrite", "(pass --overwrite")


def run_options(args: argparse.Namespace, *, chop: bool = False) -> RunOptions:
    """The :class:`~csnln.inference.RunOptions` of a command's tile/precision/device/memory
    arguments (``--tile 0``: whole images); a bad value raises ValueError naming it."""
    from ..inference import RunOptions, check_tile

    return RunOptions(
        tile="auto" if args.tile is None else check_tile(args.tile, "--tile"),
        tile_overlap=args.tile_overlap,
        tile_batch=args.tile_batch,
        tile_streams=args.tile_streams,
        tile_margin=args.tile_margin,
        chop=chop,
        self_ensemble=args.self_ensemble,
        precision=args.precision,
        device=args.device,
        max_memory=args.max_memory,
        attention_window=args.attention_window,
    )
