"""Benchmark datasets: a folder of HR images, the EDSR layout (``DIR/HR`` +
``DIR/LR_bicubic/X{s}``), or one image file (a dataset of one: a validation split held out
of the training data)."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import NamedTuple

from .image_files import IMAGE_SUFFIXES, images_in, is_image_file
from .protocol import check_sizes, image_size

PathArg = str | PathLike[str]

__all__ = ["DatasetEntry", "dataset_name", "find_dataset"]


class DatasetEntry(NamedTuple):
    """One image of a dataset: its name (the HR file's stem), HR file, LR file or None."""

    name: str
    hr_path: Path
    lr_path: Path | None


def dataset_name(folder: PathArg) -> str:
    """The dataset's name: the folder's name, or its parent's when the folder is ``HR``."""
    path = Path(folder).resolve()
    return path.parent.name if path.name == "HR" else path.name


def find_dataset(folder: PathArg, scale: int) -> list[DatasetEntry]:
    """The images of a dataset folder for ``scale``, sorted by file name.

    ``folder`` is either a folder of HR images, or the EDSR benchmark layout ``folder/HR`` +
    ``folder/LR_bicubic/X{scale}/<name>x{scale}.<ext>``; an LR file is used when present
    (``lr_path`` is None otherwise and LR is made by bicubic downscaling). Files whose
    suffix is not in :data:`IMAGE_SUFFIXES` are ignored.

    Image headers are read to check sizes up front: a ``ValueError`` names an LR file whose
    size times ``scale`` differs from its HR cropped to a multiple of ``scale``, or an HR
    image too small to measure. Files whose header cannot be read are returned anyway (and
    skipped by :func:`evaluate` with a warning).

    Raises:
        FileNotFoundError: the folder does not exist or holds no images.
        ValueError: ``folder`` is not a folder, a bad scale, or a size problem (see above).
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    if root.is_file() and is_image_file(root):  # one image: a dataset of one
        return [DatasetEntry(root.stem, root, None)]
    if not root.is_dir():
        raise ValueError(f"dataset path is not a folder or an image file: {root}")
    hr_dir, lr_dir = root, None
    if (root / "HR").is_dir():
        hr_dir = root / "HR"
        lr_dir = root / "LR_bicubic" / f"X{scale}"
    files = images_in(hr_dir)
    if not files:
        where = f"{hr_dir} (benchmark layout: {root}/HR)" if hr_dir != root else str(root)
        sets = sorted(p.name for p in root.iterdir() if p.is_dir() and _holds_images(p))
        hint = (
            f"; it holds dataset folders ({', '.join(sets[:6])}{', ...' if len(sets) > 6 else ''})"
            f": give those, e.g. {root / sets[0]}"
            if sets and hr_dir == root
            else ""
        )
        raise FileNotFoundError(
            f"no images in dataset folder {where}: expected {', '.join(IMAGE_SUFFIXES)} files{hint}"
        )
    lr_files: dict[str, Path] = {}
    if lr_dir is not None and lr_dir.is_dir():
        lr_files = {p.stem: p for p in images_in(lr_dir)}
    entries = []
    for hr_path in files:
        lr_path = lr_files.get(f"{hr_path.stem}x{scale}")
        hr_size = image_size(hr_path)
        if hr_size is not None:
            lr_size = image_size(lr_path) if lr_path is not None else None
            check_sizes(hr_size, lr_size, scale, hr_path, lr_path)
        entries.append(DatasetEntry(hr_path.stem, hr_path, lr_path))
    return entries


def _holds_images(folder: Path) -> bool:
    """A dataset folder: images in it, or in its HR/ (the benchmark layout)."""
    return bool(images_in(folder)) or ((folder / "HR").is_dir() and bool(images_in(folder / "HR")))
