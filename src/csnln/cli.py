"""The ``csnln`` command line: one subcommand per module in :mod:`csnln.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__

#: subcommand -> module in csnln.commands defining ``add_arguments(parser)`` and ``run(args)``.
COMMANDS = {
    "upscale": ("upscale", "make images larger and sharper"),
    "eval": ("evaluate", "PSNR/SSIM on benchmark folders, as in the papers' tables"),
    "train": ("train", "train a model from a YAML config"),
    "models": ("models", "list the bundled models and inspect checkpoints"),
    "demo": ("demo", "the bundled model on a sample image, against bicubic"),
    "attention": ("attention", "picture where the attentions look for one pixel"),
    "ablate": (
        "ablate",
        "re-run the paper's ablations (branches, fusion, patch, depth, width) and test the "
        "attention at the bundled size",
    ),
    "serve": ("serve", "a local web app: upscale, compare, see the attention"),
    "export": ("export", "write a model as ONNX (checked by onnxruntime) for other runners"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="csnln",
        description="CSNLN super-resolution (Mei et al., CVPR 2020): upscale, evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"csnln {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, summary) in COMMANDS.items():
        module = importlib.import_module(f"csnln.commands.{module_name}")
        doc = (module.__doc__ or summary).strip()
        command = sub.add_parser(
            name,
            help=summary,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, leftovers = parser.parse_known_args(argv)
    if args.command == "train":  # key=value words after its options, or taken by --resume
        from .commands.train import take_leftover_overrides

        leftovers = take_leftover_overrides(args, leftovers)
    if leftovers:
        parser.error(f"unrecognized arguments: {' '.join(leftovers)}")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
