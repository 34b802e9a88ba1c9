"""Finding images: the one list of image suffixes, folders, globs and explicit files.

Used by ``csnln upscale`` (its inputs), ``csnln eval`` (dataset folders) and training (the
training folders), so that all three see the same files.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "expand_inputs", "images_in", "is_image_file"]

#: The image files every command reads (and ``csnln upscale`` writes), by suffix.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


def is_image_file(path: Path) -> bool:
    """A visible file with an image suffix (:data:`IMAGE_SUFFIXES`)."""
    return (
        path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()
    )


def images_in(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Expand files, folders (their image files, not recursive, sorted) and globs, in order.

    Duplicates (the same file reached twice) are dropped; a pattern that matches no image
    raises FileNotFoundError naming it. Folder contents and glob matches are filtered to
    :data:`IMAGE_SUFFIXES` and skip hidden files; files named explicitly are kept as they are.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        given = Path(pattern)
        if given.is_file():
            matches = [given]
        elif given.is_dir():
            matches = images_in(given)
        elif any(ch in str(pattern) for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True))
            matches = [p for p in matches if is_image_file(p)]
        else:
            raise FileNotFoundError(f"no such file or folder: {pattern}")
        if not matches:
            raise FileNotFoundError(f"no images found for {pattern!r}")
        for match in matches:
            key = match.resolve()
            if key not in seen:
                seen.add(key)
                found.append(match)
    return found
