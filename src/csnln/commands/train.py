"""Train a CSNLN model from a YAML config.

  csnln train CONFIG.yaml [key=value ...] [--resume [CHECKPOINT]]

CONFIG is a YAML file of the keys listed by `csnln train --keys` (configs/README.md):
configs/paper_x{2,3,4}.yaml are the paper's settings, configs/cpu_small_x{2,3,4}.yaml
small ones that train on a CPU. Overrides: section.key=value, or key=value when the key
name is unique (values are YAML): optim.lr=2e-4 steps=5000 data.workers=0 val.dirs=[].

Writes to runs/<config name>/ (or output_dir): config.yaml, log.csv, train.log,
checkpoints/ (every checkpoint.every steps, on Ctrl-C / SIGTERM and at the end),
best.safetensors (best validation PSNR) and final.safetensors. Every .safetensors is a
model file usable with `csnln upscale --model` and `csnln eval --model`.

--resume continues a run exactly where its checkpoint left it (same weights as if it had
never stopped): without a value, from the latest checkpoint of the run folder (or a new
run when there is none, so a job script can always pass it); with a value, from that
checkpoint (.safetensors or .state.pt of a training checkpoint, or a run folder).
Overrides still apply, e.g. steps=2000000 to train longer.

Several processes (DistributedDataParallel; gloo on CPU, nccl on GPU; data.batch_size is
the global batch):
  torchrun --nproc_per_node 4 -m csnln train configs/paper_x2.yaml

Exit status: 0 when training finished; 130 / 143 when stopped by Ctrl-C / SIGTERM (after
writing a checkpoint); 2 for a bad config or arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``csnln train``."""
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        metavar="CONFIG.yaml",
        help="training config (YAML); see configs/ and --keys",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides: section.key=value, or key=value for a unique key name; "
        "values are YAML (e.g. optim.lr=2e-4 steps=5000 data.train_dirs=[a,b])",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="CHECKPOINT",
        help="continue a run exactly: from the latest checkpoint of the run folder (no "
        "value; starts a new run if there is none), or from CHECKPOINT (a training "
        "checkpoint's .safetensors or .state.pt, or a run folder)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config (file + overrides, all keys) as YAML and exit",
    )
    parser.add_argument(
        "--keys",
        action="store_true",
        help="print every config key with its type, default and meaning, and exit",
    )


def take_leftover_overrides(args: argparse.Namespace, leftovers: Sequence[str]) -> list[str]:
    """Append ``key=value`` words that argparse left over to ``args.overrides``.

    argparse ends the positional ``overrides`` at the first option, so in
    ``CONFIG --resume a=1 b=2`` it takes ``a=1`` as the checkpoint and leaves ``b=2`` over;
    job scripts pass extra overrides exactly that way. Returns the words that are not
    overrides (the caller reports them as unrecognized arguments).
    """
    taken = [word for word in leftovers if "=" in word and not word.startswith("-")]
    if _resume_is_override(args.resume):  # it came first on the command line
        taken.insert(0, args.resume)
        args.resume = True
    args.overrides = [*args.overrides, *taken]
    return [word for word in leftovers if word not in taken]


def _resume_is_override(resume: object) -> bool:
    """``--resume steps=10``: argparse took the override as the checkpoint."""
    return isinstance(resume, str) and "=" in resume and not Path(resume).exists()


def run(args: argparse.Namespace) -> int:
    """Run ``csnln train``; returns the exit status."""
    from ..training import ConfigError, config_table, load_config, run_training

    if args.keys:
        print(config_table(), end="")
        return 0
    # Both entry points pass args through take_leftover_overrides first, which also moves an
    # override that argparse took as --resume's checkpoint back among the overrides.
    overrides = list(args.overrides)
    resume = args.resume
    if args.config is None:
        print("csnln train: a CONFIG.yaml is needed (see configs/)", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config, overrides)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"csnln train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_yaml(), end="")
        return 0
    try:
        result = run_training(config, resume=resume)
    except (ConfigError, FileNotFoundError, FileExistsError) as exc:
        print(f"csnln train: {exc}", file=sys.stderr)
        return 2
    print(result.weights)
    if result.finished:
        return 0
    return 143 if result.stopped_by == "SIGTERM" else 130


def main(argv: Sequence[str] | None = None) -> int:
    """The train command alone (``csnln train``'s parser and run, without the other
    commands); ``torchrun ... -m csnln train`` goes through :func:`csnln.cli.main`."""
    parser = argparse.ArgumentParser(
        prog="csnln train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args, leftovers = parser.parse_known_args(argv)
    if leftovers := take_leftover_overrides(args, leftovers):
        parser.error(f"unrecognized arguments: {' '.join(leftovers)}")
    return run(args)
