"""``python -m csnln.train CONFIG [key=value ...] [--resume [CHECKPOINT]]``.

The same as ``csnln train``; this module form is what ``torchrun`` needs for multi-process
training::

    torchrun --nproc_per_node 4 -m csnln.train configs/paper_x2.yaml
"""

from __future__ import annotations

import sys

from .commands.train import main

if __name__ == "__main__":
    sys.exit(main())
