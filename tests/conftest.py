from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN = SHARED / "reference" / "golden"
BENCHMARK = SHARED / "data" / "benchmark"

sys.path.insert(0, str(Path(__file__).parent))  # for `import reference`
torch.set_num_threads(min(2, torch.get_num_threads()))


def golden_path(scale: int) -> Path:
    path = GOLDEN / f"official_x{scale}.pt"
    if not path.is_file():
        pytest.skip(f"golden vectors not available ({path} missing: ../shared is absent)")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
