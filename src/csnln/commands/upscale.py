"""Make images larger and sharper with CSNLN (or bicubic, for comparison).

INPUT is any mix of image files, folders (their images, not recursive) and globs. Each result
is written as <stem>_x<s>.<ext> beside its input, or in the folder given with -o, in the
input's format: PNG (8/16-bit), JPEG, WebP, TIFF, BMP; greyscale stays greyscale, an alpha
channel is upscaled with bicubic and kept, the EXIF orientation is applied and the ICC colour
profile and EXIF are carried over. Results of an earlier run (<stem>_x<s>.*, *_compare.png)
found in a folder or glob beside their source are skipped.

Images are cut into overlapping tiles, several run per model call, and blended without seams:
on a CPU by the tile plan measured best for the model (`csnln models info small`), on a GPU
whole when it fits the memory. Before a long job one line gives the plan and the time it will
take (measured on its first tiles). Outputs are
written atomically (a temporary file, then a rename) and never replace an existing file
without --overwrite; all outputs are checked before anything is computed.

Exit status: 0 when every image was written; 1 when some could not be (each is named on one
line: unreadable, too large for the memory budget, output exists); 2 for bad arguments (no
inputs, unusable model or option); 130 when interrupted with Ctrl-C.

Several processes (torchrun: one node or many) share a folder: each file is upscaled once,
by one process (each on its own GPU, or on its share of the CPU threads); outputs that exist
are skipped, so a stopped job resumes where it was; rank 0 prints one summary:
  torchrun --nproc_per_node 4 -m csnln upscale photos/ -o big/

Examples:
  csnln upscale photo.jpg                          # bundled model, x2 -> photo_x2.jpg
  csnln upscale photos/ 'scans/*.tif' --scale 4 -o big/
  csnln upscale photo.png --compare --precision fp32
  csnln upscale photo.png --model bicubic
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..device import PRECISION_CHOICES, resolve_device, resolve_precision
from ..distributed import DistInfo
from ..imageio import SUPPORTED_EXTENSIONS, ImageReadError, check_writable, expand_inputs
from ..inference.profiles import check_attention_window, check_model_tile
from ..models.descriptor import describe
from ..models.official import CheckpointError
from ..progress import TileProgress, progress
from ..upscaling import upscale_file
from ..zoo import NoBundledModelError, model_label, resolve_model
from . import add_tile_argument, add_tile_options, run_options

SCALES = (2, 3, 4)
PathArg = str | os.PathLike[str]


# Output naming: where `csnln upscale` writes, and what it takes for an earlier result.

_OUTPUT_NAME = re.compile(r"^(?P<stem>.+)_x(?P<scale>\d+)(?P<compare>_compare)?$")


def default_output_path(source: PathArg, scale: int, folder: PathArg | None = None) -> Path:
    """``<stem>_x<scale><ext>`` beside ``source``, or in ``folder`` when given."""
    source = Path(source)
    name = f"{source.stem}_x{scale}{source.suffix}"
    return (Path(folder) if folder is not None else source.parent) / name


def comparison_path(output: PathArg) -> Path:
    """Where ``--compare`` writes for an output file: ``<output stem>_compare.png`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.stem}_compare.png")


def is_earlier_output(path: PathArg, siblings: set[str]) -> bool:
    """Whether ``path`` looks like a result of an earlier run (``<stem>_x<s>[_compare]``) whose
    source stem is among ``siblings`` (or any ``_compare`` image)."""
    match = _OUTPUT_NAME.match(Path(path).stem)
    return bool(match) and (bool(match["compare"]) or match["stem"] in siblings)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``csnln upscale``."""
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders (their images) or globs such as 'photos/*.jpg'",
    )
    parser.add_argument(
        "--scale",
        type=int,
        choices=SCALES,
        help="upscaling factor (default: the checkpoint's scale when --model is a file, else 2: "
        "the bundled model's best and fastest scale)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="folder for the results (created if missing; default: beside each input), or, "
        "with a single input, the output file itself (its extension picks the format)",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        help="'bicubic', a bundled model name, a project checkpoint (.safetensors) or an "
        "authors' checkpoint (model_x2.pt etc.), as in `csnln eval` (default: the bundled "
        "model for the scale, when installed)",
    )
    memory = parser.add_mutually_exclusive_group()
    add_tile_argument(memory)
    memory.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget, e.g. 4GB or 512MB: the tile size is chosen from a measured model "
        "of memory per pixel, and an image that cannot fit even tiled is refused with the "
        "numbers (default: the free memory of the device)",
    )
    add_tile_options(parser)
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average the outputs of the 8 flips/transposes of each image (x8 slower, "
        "slightly sharper)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="arithmetic of the model: auto (default: bf16 where it is fast, i.e. GPUs that "
        "support it and CPUs with AVX512-BF16 or AMX whose bf16 matrix product measures at "
        "least 1.2x faster than fp32, once per run; else fp32), fp32, bf16 (about 0.01 dB "
        "from fp32 on Set5) or fp16 (GPU only)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda}",
        help="where to run: auto (default: CUDA if available, else CPU), cpu or cuda[:N]",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for the model (torch.set_num_threads; default: PyTorch's choice)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (default: an existing output is an error and "
        "that image is skipped)",
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="an image whose output exists is skipped, not an error (resuming a stopped "
        "job; always so under torchrun)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also write <stem>_x<s>_compare.png: bicubic | model side by side, each with a "
        "zoomed view of the most detailed region below it (its zoom factor in its caption)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (images, tiles) on stderr"
    )


def _error(message: object) -> None:
    tqdm.write(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    tqdm.write(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


def _gather_inputs(patterns: list[str], *, speak: bool = True) -> tuple[list[Path], int]:
    """Expanded inputs (earlier results in folders/globs left out) and the number of
    patterns that matched nothing (each reported, when ``speak``)."""
    found: list[Path] = []
    seen: set[Path] = set()
    failed = skipped = 0
    for pattern in patterns:
        try:
            matches = expand_inputs([pattern])
        except FileNotFoundError as exc:
            if speak:
                _error(exc)
            failed += 1
            continue
        if not Path(pattern).is_file():  # a folder or a glob: leave earlier results out
            stems = {p.stem for p in matches}
            kept = [p for p in matches if not is_earlier_output(p, stems)]
            skipped += len(matches) - len(kept)
            matches = kept
        for path in matches:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    if skipped and speak:
        tqdm.write(
            f"note: skipped {skipped} earlier result(s) (<stem>_x<s>.*, *_compare.png)",
            file=sys.stderr,
        )
    return found, failed


def _output_target(output: str | None, count: int) -> tuple[Path | None, Path | None]:
    """(folder, file) from -o: a file when it has an image extension and is not a folder."""
    if output is None:
        return None, None
    path = Path(output)
    if path.suffix.lower() in SUPPORTED_EXTENSIONS and not path.is_dir():
        if count != 1:
            raise ValueError(
                f"-o {output} names a file, but there are {count} inputs: give a folder"
            )
        return None, path
    if path.exists() and not path.is_dir():
        raise ValueError(f"-o {output} exists and is not a folder")
    if not path.exists() and _looks_like_extension(path.suffix):
        # Not made into a folder: out.xyz was meant as a file of a format this cannot write.
        raise ValueError(
            f"-o {output}: {path.suffix} is not an image format csnln writes (expected "
            f"{', '.join(SUPPORTED_EXTENSIONS)}); for a folder, give a name without a suffix "
            "or create it first"
        )
    return path, None


def _looks_like_extension(suffix: str) -> bool:
    """A file extension (``.xyz``, ``.jp2``), not a version-like folder suffix (``.1``)."""
    return 2 <= len(suffix) <= 6 and suffix[1:].isalnum() and not suffix[1:].isdigit()


def _scale_for(args: argparse.Namespace) -> int | None:
    """--scale, else None for a checkpoint file (its own scale), else 4."""
    if args.scale is not None:
        return int(args.scale)
    if args.model is not None and args.model != "bicubic" and Path(args.model).is_file():
        return None
    return 2


def run(args: argparse.Namespace) -> int:
    """Upscale every input; returns the exit status (see the module docstring). Under
    torchrun, this process's share of them (see :func:`_shard`)."""
    if not _in_torchrun():
        return _run(args, None)
    from ..distributed import cleanup, setup

    info = setup(args.device)
    try:
        return _run(args, info)
    finally:
        cleanup(info)


def _in_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _run(args: argparse.Namespace, info: DistInfo | None) -> int:
    if info is not None:
        args.skip_existing = True  # resumable: what an earlier run wrote is done
        args.no_progress = args.no_progress or not info.is_main
        if info.device.type == "cuda":
            args.device = str(info.device)  # this process's GPU (its local rank)
        elif args.threads is None:  # this process's share of the node's cores
            local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
            args.threads = max(1, (os.cpu_count() or 1) // local)
    speak = info is None or info.is_main  # input and output checks: said once
    if args.max_memory is None:  # (it raises peak memory: not when a budget is given)
        keep_freed_memory()  # no page-fault churn between model calls (csnln/allocator.py)
    if args.threads is not None:
        if args.threads < 1:
            _error(f"--threads must be at least 1, got {args.threads}")
            return 2
        torch.set_num_threads(args.threads)
    try:  # every run option, validated once (RunOptions); the error names the value
        options = run_options(args)
    except ValueError as exc:
        _error(f"{exc}")
        return 2

    inputs, failed = _gather_inputs(args.inputs, speak=speak)
    if not inputs:
        if speak:
            _error("no input images")
        return 2

    scale = _scale_for(args)
    try:
        device = resolve_device(options.device)
        model = resolve_model(args.model, scale, device)
        check_model_tile(describe(model), options.tile)  # the window, before any file
        check_attention_window(describe(model), options.attention_window)
        precision = resolve_precision(options.precision, device, describe(model))
        if info is not None:  # `auto` is timed per process: every process takes rank 0's
            from ..distributed import gather_objects

            precision = str(gather_objects(precision, info)[0])
        options = options.replace(device=device, precision=precision)
        folder, single = _output_target(args.output, len(inputs))
    except NoBundledModelError as exc:
        _error(
            f"no bundled weights are installed for x{exc.scale}; pass --model bicubic or a "
            f"checkpoint (.safetensors, or the authors' model_x{exc.scale}.pt)"
        )
        return 2
    except (CheckpointError, ValueError, OSError) as exc:
        _error(exc)
        return 2
    scale = describe(model).scale
    label = model_label(args.model, scale)
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _error(f"cannot create the output folder {folder}: {exc}")
            return 2

    # Check every output before computing anything.
    jobs: list[tuple[Path, Path, Path | None]] = []
    claimed: dict[Path, Path] = {}
    existed = 0
    for source in inputs:
        out = single if single is not None else default_output_path(source, scale, folder)
        compare = comparison_path(out) if args.compare else None
        targets = [out] if compare is None else [out, compare]
        clash = next((claimed[t.resolve()] for t in targets if t.resolve() in claimed), None)
        if clash is not None:
            _error(f"{source}: its output {out} would also be written for {clash}; skipped")
            failed += 1
            continue
        try:
            for target in targets:
                check_writable(target, args.overwrite)
        except FileExistsError:
            if args.skip_existing:
                existed += 1
                continue
            if speak:
                _error(f"{source}: {target} already exists (pass --overwrite to replace it)")
            failed += 1
            continue
        except (ValueError, OSError) as exc:
            if speak:
                _error(f"{source}: {exc}")
            failed += 1
            continue
        for target in targets:
            claimed[target.resolve()] = source
        jobs.append((source, out, compare))

    if info is not None:
        jobs = _shard(jobs, info.rank, info.world_size)
        if not speak:
            failed = 0  # the checks above are rank 0's to count
    written: list[str] = []
    failures: list[str] = []
    done = 0
    images = progress(total=len(jobs), unit="image", enabled=not args.no_progress and len(jobs) > 1)
    tiles = TileProgress(enabled=not args.no_progress)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = _show_warning
            for source, out, compare in jobs:
                images.set_postfix_str(source.name, refresh=False)
                tiles.name = source.name
                try:
                    upscale_file(
                        source,
                        out,
                        scale,
                        model,
                        options,
                        overwrite=args.overwrite,
                        compare_path=compare,
                        label=label,
                        on_plan=tiles.start,
                        on_tile=tiles.update,
                    )
                except (ImageReadError, FileNotFoundError) as exc:
                    _error(exc)
                    failed += 1
                    failures.append(str(source))
                except FileExistsError:
                    _error(f"{source}: {out} already exists (pass --overwrite to replace it)")
                    failed += 1
                    failures.append(str(source))
                except torch.OutOfMemoryError as exc:
                    _error(f"{source}: out of memory ({exc}); use --max-memory or a smaller --tile")
                    failed += 1
                    failures.append(str(source))
                except (MemoryError, ValueError, OSError, RuntimeError) as exc:
                    _error(f"{source}: {exc}")
                    failed += 1
                    failures.append(str(source))
                else:
                    done += 1
                    written.append(str(out))
                    line = f"{source} -> {out}" + (f" (+ {compare.name})" if compare else "")
                    tqdm.write(line, file=sys.stdout)
                finally:
                    tiles.close()
                    images.update()
    except KeyboardInterrupt:
        tiles.close()
        images.close()
        print(
            f"interrupted: {done} of {len(jobs)} image(s) done; no partial output was left",
            file=sys.stderr,
        )
        return 130
    images.close()
    if info is not None:
        return _summary(info, done, failed, existed, failures)
    if existed:
        print(f"skipped {existed} image(s) whose output exists (--skip-existing)", file=sys.stderr)
    if failed:
        # `failed` counts the images that were not written and the inputs that matched
        # nothing, so the two numbers add up to what was asked for.
        asked = done + failed
        print(
            f"{done} of {asked} input(s) written; {failed} failed (each named above)",
            file=sys.stderr,
        )
        return 1
    return 0


def _shard(jobs: list[Any], rank: int, world: int) -> list[Any]:
    """This process's share: every ``world``-th job from ``rank`` (each job in exactly one
    share, none repeated to even them out; every process lists the same jobs in the same
    order, so no process needs to be told its files)."""
    return jobs[rank::world]


def _summary(info: DistInfo, done: int, failed: int, existed: int, failures: list[str]) -> int:
    """Rank 0's one summary of every process's counts; the same exit status everywhere."""
    from ..distributed import barrier, gather_objects

    reports = gather_objects((done, failed, failures), info)
    written = sum(r[0] for r in reports)  # type: ignore[index]
    bad = sum(r[1] for r in reports)  # type: ignore[index]
    names = [name for r in reports for name in r[2]]  # type: ignore[index]
    if info.is_main:
        text = (
            f"{info.world_size} processes: {written} image(s) written, {existed} skipped "
            f"(their outputs exist), {bad} failed"
        )
        print(text + (f": {', '.join(names)}" if names else ""), file=sys.stderr, flush=True)
    # No process exits before the summary is out: torchrun stops the others when one exits
    # with a failure status.
    barrier(info)
    return 1 if bad else 0
