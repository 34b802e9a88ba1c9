"""Training data: HR image folders, cached bicubic LR, random patches, deterministic sampling.

* :func:`find_images` expands folders and glob patterns into a sorted list of image files.
* :func:`prepare_images` decodes each image once, crops it to a multiple of the scale, makes
  its LR with the MATLAB-exact bicubic ``imresize`` (float64, rounded half away from zero to
  ``uint8``, as the evaluation protocol does) and caches both, in memory or as ``.npy`` files
  on disk keyed by the file's path, size, mtime and the scale (memory-mapped when read).
  Images smaller than one patch are skipped with a warning; unreadable ones are skipped and
  named.
* :class:`PatchDataset` maps a *global sample index* ``g`` to an ``(LR, HR)`` patch pair.
  Everything about sample ``g`` (which image, where the crop is, which flip/rotation) comes
  from ``seed`` and ``g`` alone: images are visited in a fresh random order each pass over
  the data ("epoch" = one pass), and the crop/augmentation draws use a generator seeded with
  ``(seed, g)``. Batch ``k`` of a global batch ``B`` is samples ``k B ... k B + B - 1``,
  split across processes by :class:`StepBatchSampler`. So batch ``k`` is the same whatever
  happened before it, with any number of workers or processes: resuming at step ``k`` is
  exact, and a K-process step sees the same samples as a 1-process step.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..atomic import atomic_write
from ..data.image_files import IMAGE_SUFFIXES, images_in, is_image_file
from ..data.imresize import imresize, modcrop
from ..data.protocol import load_rgb, to_uint8_matlab
from ..distributed import DistInfo, barrier
from ..progress import progress as progress_bar
from .config import ConfigError, TrainConfig

__all__ = [
    "IMAGE_SUFFIXES",
    "prepare_data",
    "ImageRecord",
    "PatchDataset",
    "StepBatchSampler",
    "default_cache_dir",
    "find_images",
    "make_loader",
    "make_lr",
    "prepare_images",
]

log = logging.getLogger("csnln.training")

#: File suffixes (lower case) read as training images.
_CACHE_VERSION = "1"


@dataclass(frozen=True)
class ImageRecord:
    """One training image: HR (cropped to a multiple of the scale) and its bicubic LR.

    ``hr``/``lr`` are ``H x W x 3`` uint8 arrays (memory cache) or paths of ``.npy`` files
    (disk cache, memory-mapped on first use in each process).
    """

    path: Path
    hr: np.ndarray | str
    lr: np.ndarray | str
    lr_size: tuple[int, int]


def default_cache_dir() -> Path:
    """``$CSNLN_CACHE``, else ``$XDG_CACHE_HOME/csnln/train`` (``~/.cache/csnln/train``)."""
    if os.environ.get("CSNLN_CACHE"):
        return Path(os.environ["CSNLN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "csnln" / "train"


def find_images(patterns: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files in the given folders (not recursive), glob patterns or files, in order.

    A glob may match folders (``../shared/data/train/*``) or files. Duplicates are dropped.

    Raises:
        FileNotFoundError: a folder or pattern matches no image (naming it).
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for pattern in patterns:
        text = str(pattern)
        if any(ch in text for ch in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(os.path.expanduser(text)))]
        else:
            matches = [Path(os.path.expanduser(text))]
        files: list[Path] = []
        for match in matches:
            if match.is_dir():
                files += images_in(match)
            elif is_image_file(match):
                files.append(match)
        if not files:
            if not matches or not matches[0].exists():
                raise FileNotFoundError(f"training data: no such folder or file: {text}")
            raise FileNotFoundError(
                f"training data: no images in {text} (expected {', '.join(IMAGE_SUFFIXES)})"
            )
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append(f)
    return found


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-exact bicubic ``imresize(hr, 1/scale)`` of an ``H x W x 3`` uint8 image (H, W
    multiples of ``scale``), in float64, rounded half away from zero to uint8."""
    chw = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1)))
    lr = to_uint8_matlab(imresize(chw.to(torch.float64), 1 / scale))
    return np.ascontiguousarray(lr.numpy().transpose(1, 2, 0))


def _read_hr(path: Path, scale: int) -> np.ndarray:
    """Decode ``path`` as uint8 RGB ``H x W x 3``, cropped to a multiple of ``scale``."""
    return np.ascontiguousarray(modcrop(load_rgb(path), scale).numpy().transpose(1, 2, 0))


def _header_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # unreadable: decoding it will name the reason
        return None
    return h, w


def _cache_key(path: Path, scale: int) -> str:
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|x{scale}|v{_CACHE_VERSION}"
    return hashlib.sha1(text.encode()).hexdigest()


def _save_npy(array: np.ndarray, path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    atomic_write(path, write)


def _prepare_one(
    path: Path, scale: int, patch: int, cache_dir: Path | None
) -> tuple[ImageRecord | None, str | None]:
    """(record, None), or (None, reason it was skipped)."""
    need = scale * patch
    if cache_dir is not None:
        key = _cache_key(path, scale)
        hr_file, lr_file = cache_dir / f"{key}.hr.npy", cache_dir / f"{key}.lr.npy"
        if hr_file.is_file() and lr_file.is_file():
            try:
                lr_shape = np.load(lr_file, mmap_mode="r").shape
                np.load(hr_file, mmap_mode="r")
            except (OSError, ValueError):
                pass  # a damaged entry: make it again
            else:
                if min(lr_shape[:2]) < patch:
                    return None, _too_small(path, lr_shape[0] * scale, lr_shape[1] * scale, need)
                return ImageRecord(path, str(hr_file), str(lr_file), lr_shape[:2]), None
    size = _header_size(path)
    if size is not None and min(size) < need:
        return None, _too_small(path, size[0], size[1], need)
    try:
        hr = _read_hr(path, scale)
    except (ValueError, OSError) as exc:  # UnreadableImageError is a ValueError
        return None, f"{path}: cannot read image ({getattr(exc, 'reason', exc)}); skipped"
    if min(hr.shape[:2]) < need:
        return None, _too_small(path, hr.shape[0], hr.shape[1], need)
    lr = make_lr(hr, scale)
    if cache_dir is None:
        return ImageRecord(path, hr, lr, lr.shape[:2]), None
    _save_npy(hr, hr_file)
    _save_npy(lr, lr_file)
    return ImageRecord(path, str(hr_file), str(lr_file), lr.shape[:2]), None


def _too_small(path: Path, h: int, w: int, need: int) -> str:
    return (
        f"{path}: {w}x{h} is smaller than one HR patch ({need}x{need}: LR patch x scale); skipped"
    )


def prepare_images(
    files: Sequence[Path],
    *,
    scale: int,
    patch_size: int,
    cache_dir: str | os.PathLike[str] | None = None,
    threads: int = 1,
    progress: bool = False,
) -> list[ImageRecord]:
    """Decode, crop, downscale and cache every image; skip (with a warning) unusable ones.

    ``cache_dir=None`` keeps the arrays in memory; otherwise ``.npy`` files are written there
    (atomically) and reused by later calls for unchanged files.

    Raises:
        ValueError: no usable image is left.
    """
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    records: list[ImageRecord] = []
    skipped = 0
    with (
        ThreadPoolExecutor(max_workers=max(1, threads)) as pool,
        progress_bar(
            total=len(files), desc="preparing LR", unit="img", enabled=progress, leave=False
        ) as bar,
    ):
        jobs = [pool.submit(_prepare_one, Path(f), scale, patch_size, cache) for f in files]
        for job in jobs:
            record, reason = job.result()
            bar.update(1)
            if record is None:
                skipped += 1
                log.warning("%s", reason)
            else:
                records.append(record)
    if not records:
        raise ValueError(
            f"no usable training images: all {len(files)} were skipped (see the warnings)"
        )
    if skipped:
        log.warning("training data: %d of %d images skipped", skipped, len(files))
    return records


class PatchDataset(Dataset):
    """Global sample index ``g`` -> ``(LR, HR)`` float32 patches in [0, 1], ``3 x p x p`` and
    ``3 x sp x sp``, drawn deterministically from ``(seed, g)`` (see the module docstring)."""

    def __init__(
        self,
        records: Sequence[ImageRecord],
        *,
        scale: int,
        patch_size: int,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        if not records:
            raise ValueError("PatchDataset needs at least one image")
        self.records = list(records)
        self.scale = scale
        self.patch_size = patch_size
        self.augment = augment
        self.seed = seed
        self._arrays: dict[str, np.ndarray] = {}
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        """The number of images (one pass over the data); indices beyond it are valid too."""
        return len(self.records)

    def _array(self, item: np.ndarray | str) -> np.ndarray:
        if isinstance(item, np.ndarray):
            return item
        array = self._arrays.get(item)
        if array is None:
            array = self._arrays[item] = np.load(item, mmap_mode="r")
        return array

    def image_index(self, g: int) -> int:
        """Which image sample ``g`` comes from: a fresh random order in every pass."""
        epoch, position = divmod(g, len(self.records))
        if self._order is None or self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, 0, epoch])
            self._order = (epoch, rng.permutation(len(self.records)))
        return int(self._order[1][position])

    def __getitem__(self, g: int) -> tuple[torch.Tensor, torch.Tensor]:
        record = self.records[self.image_index(g)]
        lr_full, hr_full = self._array(record.lr), self._array(record.hr)
        rng = np.random.default_rng([self.seed, 1, g])
        p, s = self.patch_size, self.scale
        h, w = record.lr_size
        y = int(rng.integers(0, h - p + 1))
        x = int(rng.integers(0, w - p + 1))
        lr = np.asarray(lr_full[y : y + p, x : x + p])
        hr = np.asarray(hr_full[s * y : s * (y + p), s * x : s * (x + p)])
        if self.augment:
            flip_h, flip_v, transpose = (bool(b) for b in rng.integers(0, 2, size=3))
            lr, hr = (_augment(a, flip_h, flip_v, transpose) for a in (lr, hr))
        return _to_tensor(lr), _to_tensor(hr)


def _augment(a: np.ndarray, flip_h: bool, flip_v: bool, transpose: bool) -> np.ndarray:
    """One of the 8 flips/90-degree rotations of an ``H x W x C`` array."""
    if flip_h:
        a = a[:, ::-1]
    if flip_v:
        a = a[::-1]
    if transpose:
        a = a.transpose(1, 0, 2)
    return a


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    chw = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return chw.to(torch.float32).div_(255)


class StepBatchSampler(Sampler[list[int]]):
    """Batches of global sample indices for steps ``start_step .. end_step - 1``.

    Step ``k``'s global batch is ``[k B, (k + 1) B)``; process ``rank`` of ``world_size``
    takes its contiguous ``B / world_size`` share.
    """

    def __init__(
        self,
        start_step: int,
        end_step: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"data.batch_size {batch_size} is not divisible by the {world_size} processes"
            )
        self.start_step, self.end_step = start_step, end_step
        self.batch_size = batch_size
        self.local = batch_size // world_size
        self.rank = rank

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for k in range(self.start_step, self.end_step):
            first = k * self.batch_size + self.rank * self.local
            yield list(range(first, first + self.local))


def make_loader(
    dataset: PatchDataset,
    *,
    start_step: int,
    end_step: int,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader yielding this process's ``(LR, HR)`` batch for each step from ``start_step``."""
    sampler = StepBatchSampler(start_step, end_step, batch_size, rank=rank, world_size=world_size)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


def prepare_data(config: TrainConfig, info: DistInfo) -> PatchDataset:
    d = config.data
    if not d.train_dirs:
        raise ConfigError("data.train_dirs is empty: give the folders of HR training images")
    files = find_images(d.train_dirs)
    if d.exclude:
        held_out = {f.resolve() for f in find_images(d.exclude)}
        files = [f for f in files if f.resolve() not in held_out]
        log.info("held out of training (data.exclude): %d images", len(held_out))
    cache_dir = None if d.cache == "memory" else Path(d.cache_dir or default_cache_dir())
    kwargs = {
        "scale": config.model.scale,
        "patch_size": d.patch_size,
        "cache_dir": cache_dir,
        "threads": max(1, d.workers),
    }
    if cache_dir is not None and info.distributed:
        # Rank 0 fills the shared cache, the others then read it.
        if info.is_main:
            records = prepare_images(files, progress=config.log.progress, **kwargs)
        barrier(info)
        if not info.is_main:
            records = prepare_images(files, **kwargs)
    else:
        records = prepare_images(files, progress=config.log.progress and info.is_main, **kwargs)
    log.info(
        "training data: %d images (%.1f Mpx HR) from %d folder pattern(s)",
        len(records),
        sum(r.lr_size[0] * r.lr_size[1] for r in records) * config.model.scale**2 / 1e6,
        len(d.train_dirs),
    )
    return PatchDataset(
        records,
        scale=config.model.scale,
        patch_size=d.patch_size,
        augment=d.augment,
        seed=config.seed,
    )
