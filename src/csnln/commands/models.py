"""List the bundled models, describe a checkpoint, or convert an authors' checkpoint.

  csnln models                              bundled models and their scales
  csnln models info CHECKPOINT              config, parameter count and metadata
  csnln models convert model_x2.pt OUT.safetensors
                                            authors' .pt -> this package's format

Python: csnln.zoo.bundled_models(), csnln.zoo.load_model(), csnln.save_checkpoint().
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import read_checkpoint, save_checkpoint
from ..models.official import CheckpointError
from ..zoo import BUNDLED, bundled_models, load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "info", "convert"),
        default="list",
        help="list (default): bundled models; info: describe CHECKPOINT; "
        "convert: write CHECKPOINT (an authors' .pt) as OUTPUT (.safetensors)",
    )
    parser.add_argument("checkpoint", nargs="?", help="a .safetensors or authors' .pt file")
    parser.add_argument("output", nargs="?", help="with convert: the .safetensors file to write")
    parser.add_argument("--overwrite", action="store_true", help="with convert: replace OUTPUT")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            return _list()
        if not args.checkpoint:
            raise ValueError(f"models {args.action} needs a CHECKPOINT")
        if args.action == "info":
            return _info(Path(args.checkpoint))
        if not args.output:
            raise ValueError("models convert needs an OUTPUT path (.safetensors)")
        model = load_model(args.checkpoint)
        out = save_checkpoint(
            model,
            args.output,
            overwrite=args.overwrite,
            metadata={"converted_from": Path(args.checkpoint).name},
        )
        print(f"wrote {out}")
        return 0
    except (FileNotFoundError, FileExistsError, ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _list() -> int:
    installed = bundled_models()
    if not BUNDLED:
        print("no bundled models in this version; use --model bicubic or a checkpoint file")
        return 0
    for name, entry in BUNDLED.items():
        have = installed.get(name, {})
        scales = ", ".join(
            f"x{s}{'' if s in have else ' (missing)'}" for s in sorted(entry.files)
        )
        print(f"{name}: {scales}")
    return 0


def _info(path: Path) -> int:
    model = load_model(path)
    params = sum(p.numel() for p in model.parameters())
    info: dict[str, object] = {"file": str(path), "parameters": params}
    config = getattr(model, "config", None)
    if config is not None:
        info["config"] = config.to_dict()
    if path.suffix == ".safetensors":
        info["metadata"] = read_checkpoint(path)[2]
    else:
        info["format"] = "authors' release (.pt)"
    print(json.dumps(info, indent=2))
    return 0
