"""What one invocation of the benchmark was asked to measure, checked once."""

from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("per-test", "first-test", "startup", "xdist", "profile")
DEFAULT_MODES = ("per-test", "first-test", "startup", "xdist")
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Settings:
    modes: tuple[str, ...] = DEFAULT_MODES
    url: str = DEFAULT_URL
    only: tuple[str, ...] = ()
    rounds: int = 5
    sizes: tuple[int, int] = (100, 600)
    slow_sizes: tuple[int, int] = (20, 60)
    sizes_for: dict[str, tuple[int, int]] = field(default_factory=dict)
    tables: int = 32
    first_test_runs: int = 7
    first_test_tables: tuple[int, ...] = (1, 32)
    startup_tests: int = 1000
    startup_runs: int = 15
    callgrind: bool = False
    xdist_tests: int = 600
    xdist_workers: int = 2
    keep: bool = False
    json_path: str | None = None
