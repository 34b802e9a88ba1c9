"""List the bundled models, describe a model, or convert an authors' checkpoint.

  csnln models                          bundled models: scales, parameters, Set5 PSNR, default
  csnln models info small               a bundled model at each of its scales (--scale 2: one)
  csnln models info CHECKPOINT          a checkpoint file: config, parameters, metadata
  csnln models convert model_x2.pt OUT.safetensors
                                        an authors' .pt (their release) -> this package's format

Python: csnln.zoo.bundled_models(), csnln.zoo.load_model("small", 2), csnln.save_checkpoint().
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..inference.profiles import measured_plan
from ..models.checkpoint import read_checkpoint, save_checkpoint
from ..models.descriptor import describe
from ..models.network import CSNLN
from ..models.official import CheckpointError
from ..zoo import BUNDLED, bundled_models, default_model_name, load_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "info", "convert"),
        default="list",
        help="list (default): bundled models; info: describe CHECKPOINT; "
        "convert: write CHECKPOINT (an authors' .pt) as OUTPUT (.safetensors)",
    )
    parser.add_argument(
        "checkpoint", nargs="?", help="a bundled model name, a .safetensors or an authors' .pt file"
    )
    parser.add_argument("output", nargs="?", help="with convert: the .safetensors file to write")
    parser.add_argument("--overwrite", action="store_true", help="with convert: replace OUTPUT")
    parser.add_argument(
        "--json", action="store_true", help="with info: print JSON (for scripts) instead of text"
    )
    parser.add_argument(
        "--scale",
        type=int,
        choices=(2, 3, 4),
        help="with info on a bundled model: only this scale (default: all of its scales)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "list":
            return _list()
        if not args.checkpoint:
            raise ValueError(f"models {args.action} needs a CHECKPOINT")
        if args.action == "info":
            if args.checkpoint in BUNDLED:
                return _info_bundled(args.checkpoint, args.scale, args.json)
            return _info(Path(args.checkpoint), args.json)
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
    defaults = {scale: default_model_name(scale) for scale in (2, 3, 4) if _has_default(scale)}
    print("name   scale  parameters  Set5 PSNR dB (csnln eval)  default")
    for name, entry in BUNDLED.items():
        for scale in sorted(entry.files):
            if scale not in installed.get(name, {}):
                print(f"{name:<6} x{scale}     (weights missing)")
                continue
            model = load_model(name, scale)
            params = sum(p.numel() for p in model.parameters())
            psnr = entry.set5_psnr.get(scale)
            shown = f"{psnr:.2f}" if psnr is not None else "not measured"
            default = "yes" if defaults.get(scale) == name else ""
            print(f"{name:<6} x{scale}     {params:>10,}  {shown:<25}  {default}")
    print("`csnln models info NAME` for the configs and tile plans.")
    return 0


def _has_default(scale: int) -> bool:
    try:
        default_model_name(scale)
    except LookupError:
        return False
    return True


def _info_bundled(name: str, scale: int | None, as_json: bool) -> int:
    entry = BUNDLED[name]
    scales = [scale] if scale is not None else sorted(entry.files)
    infos = []
    for s in scales:
        if s not in entry.files:
            have = ", ".join(f"x{k}" for k in sorted(entry.files))
            raise ValueError(f"bundled model {name!r} has no x{s} weights (has: {have})")
        model = load_model(name, s)
        plan = measured_plan(describe(model))
        infos.append(
            {
                "name": name,
                "scale": s,
                "file": str(bundled_models()[name][s]),
                "parameters": sum(p.numel() for p in model.parameters()),
                "config": model.config.to_dict(),
                "cpu_tile_plan": None if plan is None else dataclasses.asdict(plan),
                # The window its weights were trained in, which runs use (None: whole tiles).
                "attention_window": describe(model).trained_attention_window,
                "set5_psnr": entry.set5_psnr.get(s),
            }
        )
    _show(infos if scale is None else infos[0], as_json)
    return 0


def _info(path: Path, as_json: bool) -> int:
    model = load_model(path)
    params = sum(p.numel() for p in model.parameters())
    info: dict[str, object] = {"file": str(path), "parameters": params}
    if isinstance(model, CSNLN):
        info["config"] = model.config.to_dict()
    if path.suffix == ".safetensors":
        info["metadata"] = read_checkpoint(path)[2]
    else:
        info["format"] = "authors' release (.pt)"
    _show(info, as_json)
    return 0


def _show(info: object, as_json: bool) -> None:
    """``info`` as JSON, or as indented ``key: value`` lines for people."""
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print("\n\n".join(_lines(i) for i in (info if isinstance(info, list) else [info])))


def _lines(info: object, indent: str = "") -> str:
    if not isinstance(info, dict):
        return f"{indent}{info}"
    out = []
    for key, value in info.items():
        label = key.replace("_", " ")
        if isinstance(value, dict):
            out.append(f"{indent}{label}:")
            out.append(_lines(value, indent + "  "))
        elif isinstance(value, list):
            out.append(f"{indent}{label}: {', '.join(map(str, value))}")
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
            out.append(f"{indent}{label}: {value:,}")
        else:
            out.append(f"{indent}{label}: {'-' if value is None else value}")
    return "\n".join(out)
