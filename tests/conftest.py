from __future__ import annotations

import enum
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

from csnln.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN = SHARED / "reference" / "golden"
BENCHMARK = SHARED / "data" / "benchmark"

sys.path.insert(0, str(Path(__file__).parent))  # for `import reference`
torch.set_num_threads(min(2, torch.get_num_threads()))
# As the inference commands do: glibc keeps freed memory for reuse instead of page-faulting it
# in again at every model call (csnln/allocator.py); this halves the suite's system time.
keep_freed_memory()


def golden_path(scale: int) -> Path:
    path = GOLDEN / f"official_x{scale}.pt"
    if not path.is_file():
        pytest.skip(f"golden vectors not available ({path} missing: ../shared is absent)")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def stub_torchvision() -> None:
    """spandrel imports torchvision for two architectures of its own (LaMa, RestoreFormer);
    PyPI's torchvision does not import beside the CPU torch these tests run on, so where it
    is missing the two names they import are stubbed (CSNLN never uses them)."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return  # the real one, or the stub already
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC")  # type: ignore[attr-defined]

    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError("torchvision is not installed (stubbed for spandrel's import)")

    functional.rotate = functional.normalize = unavailable  # type: ignore[attr-defined]
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional  # type: ignore[attr-defined]
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules.update(
        {
            "torchvision": torchvision,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
        }
    )
