"""The benchmark script runs from a checkout: a tiny run of the strategies that need no peers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


def test_the_benchmark_runs_and_prints_a_row_per_strategy(postgresql_server: str) -> None:
    # --python: this environment, not benchmarks/.venv (that one holds the peers, which the
    # chosen strategies do not need). Timings of six tests mean nothing; the rows must exist.
    strategies = ["floor", "recipe", "ours", "ours_commit"]
    command = [sys.executable, str(SCRIPT), "--python", "--skip-extras", "--rounds", "1"]
    command += ["--tests", "6", "--tables", "3", "--url", postgresql_server, "--only", *strategies]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {
        line.split("  ")[0]: line.split()
        for line in result.stdout.splitlines()
        if line.startswith(("floor", "hand-written", "pytest-sessionmaker"))
    }
    assert set(rows) == {
        "floor: raw SAVEPOINT ... ROLLBACK",
        "hand-written SQLAlchemy recipe",
        "pytest-sessionmaker, rollback",
        "pytest-sessionmaker, db_commit",
    }
    for label, cells in rows.items():
        assert "failed:" not in " ".join(cells), label
        float(cells[-1])  # the "x floor" ratio: a number for every row that ran
