#!/usr/bin/env python3
"""What pytest-sessionmaker costs a user, next to what they would otherwise pick.

    python benchmarks/compare.py                     # all but the profile, ~16 minutes
    python benchmarks/compare.py per-test --only floor ours --rounds 3
    python benchmarks/compare.py --help

The benchmark itself is the package beside this file (``sessionmaker_bench``); the strategies it
compares are the conftest files under ``strategies/``. Only the standard library is needed to
start: the first run creates ``benchmarks/.venv`` with the peers and re-runs itself there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sessionmaker_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
