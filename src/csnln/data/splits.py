"""The validation split: ten training images that no run of this project trains on.

Checkpoints and plans are chosen on these, never on a benchmark (Set5, Set14, B100 and
SunHays80 are for reporting only). The ten are spread over the training folders of
``../shared/data/train`` (two Kodak PhotoCD photos, four BSDS500 test images, two BSD300
training images, two of T91) and are of moderate size, so that one validation pass stays
cheap next to training. A config holds them out with ``data.exclude`` and validates on them
with ``val.dirs`` (an image file is a one-image dataset)::

    from csnln.data.splits import validation_files

    files = validation_files("../shared/data/train")   # ten paths
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

__all__ = ["VALIDATION_SPLIT", "validation_files"]

#: Paths relative to the training root (the folder holding T91/, BSD200/, ...).
VALIDATION_SPLIT: tuple[str, ...] = (
    "BSD200/16052.jpg",
    "BSD200/94079.jpg",
    "BSDS200test/100007.jpg",
    "BSDS200test/157032.jpg",
    "BSDS200test/226043.jpg",
    "BSDS200test/35028.jpg",
    "Kodak24/kodim07.png",
    "Kodak24/kodim19.png",
    "T91/t50.webp",
    "T91/tt12.webp",
)


def validation_files(root: str | PathLike[str]) -> list[str]:
    """The validation split's files under the training root ``root`` (as strings, in the
    order of :data:`VALIDATION_SPLIT`)."""
    return [str(Path(root) / name) for name in VALIDATION_SPLIT]
