"""The benchmark runs from a checkout: a tiny configuration of every mode that needs no peers.

Timings of a handful of tests mean nothing, so nothing here compares times: every row must
exist, hold numbers and report no failure. Marked ``benchmark``, so the default run deselects it
(it runs some fifty pytest processes and starts two throwaway servers); CI runs it on its own
with ``pytest -m benchmark tests/test_benchmark.py``. ``--python``: this interpreter, not
``benchmarks/.venv``, which holds the peers these modes do not need (pytest-sqla, pyinstrument).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"
WITHOUT_PEERS = ["floor", "recipe", "template", "truncate", "ours", "ours_commit"]


def run_benchmark(tmp_path: Path, *arguments: str) -> dict[str, Any]:
    output = tmp_path / "results.json"
    command = [sys.executable, str(SCRIPT), "--python", "--json", str(output), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    results: dict[str, Any] = json.loads(output.read_text())
    return results


def numbers(values: list[Any], count: int) -> bool:
    return len(values) == count and all(
        isinstance(value, float) and math.isfinite(value) for value in values
    )


def test_per_test_gives_a_slope_and_a_set_up_per_round_for_each_strategy(
    postgresql_server: str, tmp_path: Path
) -> None:
    results = run_benchmark(
        tmp_path,
        "per-test",
        *("--url", postgresql_server, "--rounds", "2", "--tables", "3"),
        *("--sizes", "2,4", "--slow-sizes", "1,2", "--only", *WITHOUT_PEERS),
    )
    rows = {row["key"]: row for row in results["per_test"]}
    assert list(rows) == ["baseline", *WITHOUT_PEERS]
    for key, row in rows.items():
        assert row["problem"] is None, key
        assert numbers(row["per_test"], 2), key
        assert numbers(row["setup"], 2), key
        assert numbers(row["cpu_per_test"], 2), key
        # Ratios exist for the rounds whose floor slope came out positive, which a suite of
        # four tests does not promise; those that exist are numbers.
        assert numbers(row["x_floor"], len(row["x_floor"])), key
        assert numbers(row["cpu_x_floor"], len(row["cpu_x_floor"])), key
    assert rows["floor"]["x_floor"] in ([], [1.0], [1.0, 1.0])


def test_per_test_async_rows_are_compared_with_the_async_floor(
    postgresql_server: str, tmp_path: Path
) -> None:
    results = run_benchmark(
        tmp_path,
        "per-test",
        *("--url", postgresql_server, "--rounds", "2", "--tables", "3", "--sizes", "2,4"),
        *("--only", "async_floor", "async_recipe", "ours_async"),
    )
    rows = {row["key"]: row for row in results["per_test"]}
    assert list(rows) == ["baseline", "async_floor", "async_recipe", "ours_async"]
    for key, row in rows.items():
        assert row["problem"] is None, key
        assert numbers(row["per_test"], 2), key
        assert numbers(row["x_floor"], len(row["x_floor"])), key
    # Each async row's ratio is to the async floor, whose own ratio is 1.
    assert rows["async_floor"]["x_floor"] in ([], [1.0], [1.0, 1.0])


def test_first_test_times_every_row_and_its_excess_over_plain_pytest_and_the_floor(
    postgresql_server: str, tmp_path: Path
) -> None:
    results = run_benchmark(
        tmp_path,
        "first-test",
        *("--url", postgresql_server, "--first-test-runs", "1", "--first-test-tables", "2"),
    )
    rows = {row["label"]: row for row in results["first_test"]}
    assert list(rows) == [
        "plain pytest, one empty test",
        "ORM floor, no plugin (create_all), 2 tables",
        "pytest-sessionmaker, no URL (throwaway server), 2 tables",
        "pytest-sessionmaker, db_url, 2 tables",
        "pytest-sessionmaker, db_url --db-reuse, 2 tables",
        "pytest-postgresql, postgresql_proc, 2 tables",
        "pytest-postgresql, postgresql_noproc, 2 tables",
    ]
    for label, row in rows.items():
        assert row["problem"] is None, label
        assert numbers(row["walls"], 1), label
        assert numbers(row["over_plain"], 1), label
    # The plugin rows are also given as their excess over the ORM floor in the same round.
    for label, row in rows.items():
        if label.startswith(("plain", "ORM floor")):
            assert row["over_floor"] == [], label
        else:
            assert numbers(row["over_floor"], 1), label


def test_startup_and_xdist_time_every_variant(postgresql_server: str, tmp_path: Path) -> None:
    results = run_benchmark(
        tmp_path,
        *("startup", "xdist", "--url", postgresql_server, "--tables", "3", "--rounds", "1"),
        *("--startup-tests", "5", "--startup-runs", "2", "--xdist-tests", "4"),
    )
    variants = {variant["label"]: variant for variant in results["startup"]}
    assert list(variants) == [
        "plain pytest",
        "+ plugin, nothing configured",
        "+ plugin, db_url configured",
        "+ plugin + pytest-postgresql's",
    ]
    for label, variant in variants.items():
        assert variant["problem"] is None, label
        assert numbers(variant["values"], 2), label
    assert list(results["xdist"]) == ["-n 0", "-n 2"]
    for label, walls in results["xdist"].items():
        assert numbers(walls, 1), label
