from __future__ import annotations

import sys
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
