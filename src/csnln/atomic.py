"""Writing files atomically: a temporary file beside the target, then a rename.

An interrupted run (Ctrl-C, a crash, a full disk) never leaves a partial file at the target,
and, with ``overwrite=False``, never replaces an existing one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, overwrite: bool = True
) -> Path:
    """Call ``write(tmp)`` to fill a temporary file in ``path``'s folder, then rename it to
    ``path``. On any error (or interruption) the temporary file is removed and ``path`` is left
    as it was. With ``overwrite=False`` an existing ``path`` raises :class:`FileExistsError`."""
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path} exists; not overwriting it")
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 & ~_umask()))
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        # A writer may replace the file with one of its own (safetensors 0.8 writes 0600):
        # the result gets the mode any new file of this process would have.
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if not overwrite and (path.exists() or path.is_symlink()):
            raise FileExistsError(f"{path} exists; not overwriting it")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
