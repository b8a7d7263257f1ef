"""The per-test cost users feel: the slope of whole-process wall time over the suite's size.

Each strategy's suite runs at two sizes (100 and 600 tests by default) as whole ``pytest``
processes. Per round, (T(large) - T(small)) / (large - small) is the cost of one more test:
pytest's own per-test work included, the one-time set-up (start-up, imports, connecting,
creating tables or databases) split out. That set-up is the intercept, T(small) - small * slope.
Rounds are interleaved: each round runs every strategy, in an order rotated by one strategy per
round, its two sizes back to back (small first in even rounds, large first in odd ones), so a
shared machine's drift reaches all strategies alike. Each strategy is compared with the floor
of the same round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sessionmaker_bench.environment import unavailable
from sessionmaker_bench.running import Run, environment, run_pytest
from sessionmaker_bench.strategies import BY_KEY, COMPARED, Strategy
from sessionmaker_bench.suite import write_suite

if TYPE_CHECKING:
    from pathlib import Path

    from sessionmaker_bench.databases import Server
    from sessionmaker_bench.settings import Settings


@dataclass
class Measured:
    """One strategy's runs: per round, seconds (wall and CPU) per suite size."""

    strategy: Strategy
    sizes: tuple[int, int]
    walls: dict[int, dict[int, float]] = field(default_factory=dict)
    cpus: dict[int, dict[int, float]] = field(default_factory=dict)
    problem: str | None = None

    def slopes(self, cpu: bool = False) -> dict[int, float]:
        small, large = self.sizes
        return {
            number: (times[large] - times[small]) / (large - small)
            for number, times in (self.cpus if cpu else self.walls).items()
            if len(times) == 2
        }

    def setups(self) -> dict[int, float]:
        small = self.sizes[0]
        return {
            number: self.walls[number][small] - small * slope
            for number, slope in self.slopes().items()
        }


@dataclass(frozen=True)
class Slope:
    """One row of the comparison (seconds), each list one value per complete round."""

    key: str
    label: str
    sizes: tuple[int, int]
    per_test: list[float]
    setup: list[float]
    x_floor: list[float]
    cpu_per_test: list[float]
    cpu_x_floor: list[float]
    problem: str | None


def sizes_of(settings: Settings, strategy: Strategy) -> tuple[int, int]:
    if strategy.key in settings.sizes_for:
        return settings.sizes_for[strategy.key]
    return settings.slow_sizes if strategy.slow else settings.sizes


def why_not(strategy: Strategy, server: Server) -> str | None:
    if server.backend not in strategy.backends:
        return f"not for {server.backend}"
    for module in strategy.needs:
        problem = unavailable(module)
        if problem is not None:
            return problem
    return None


def measure(settings: Settings, server: Server, workdir: Path) -> list[Slope]:
    keys = ["baseline", *(key for key in COMPARED[1:] if key in settings.only)]
    measured = [Measured(BY_KEY[key], sizes_of(settings, BY_KEY[key])) for key in keys]
    folders: dict[tuple[str, int], Path] = {}
    for item in measured:
        item.problem = why_not(item.strategy, server)
        if item.problem is not None:
            continue
        if item.strategy.fixture is not None and not item.strategy.creates_database:
            server.create(item.strategy.key)
        for size in item.sizes:
            folder = workdir / "per-test" / f"{item.strategy.key}-{size}"
            folders[item.strategy.key, size] = write_suite(folder, item.strategy, size)

    def run(item: Measured, size: int, label: str) -> Run | None:
        env = environment(workdir / "tmp", server.url_for(item.strategy.key), settings.tables)
        outcome = run_pytest(folders[item.strategy.key, size], item.strategy.plugins, env)
        if outcome.problem is not None:
            item.problem = f"failed at {size} tests: {outcome.problem}"
            print(f"{label}: {item.strategy.key} at {size} tests FAILED", flush=True)
            return None
        print(f"{label}: {item.strategy.key} at {size} tests {outcome.wall:.2f} s", flush=True)
        return outcome

    # One uncounted run of every suite: compiles and caches its modules, warms the server's
    # caches, and finds a failing strategy before the rounds spend time on it.
    for item in measured:
        for size in item.sizes:
            if item.problem is None:
                run(item, size, "warm-up")
    active = [item for item in measured if item.problem is None]
    for number in range(settings.rounds):
        shift = number % len(active) if active else 0
        for item in active[shift:] + active[:shift]:
            sizes = item.sizes if number % 2 == 0 else item.sizes[::-1]
            for size in sizes:
                if item.problem is not None:
                    break
                outcome = run(item, size, f"round {number + 1}/{settings.rounds}")
                if outcome is not None:
                    item.walls.setdefault(number, {})[size] = outcome.wall
                    item.cpus.setdefault(number, {})[size] = outcome.cpu
    return [slope_row(item, measured) for item in measured]


def slope_row(item: Measured, measured: list[Measured]) -> Slope:
    floor = next((m for m in measured if m.strategy.key == item.strategy.floor), None)

    def ratios(cpu: bool) -> list[float]:
        """Each round's slope over the floor's of the same round."""
        floors = floor.slopes(cpu) if floor is not None else {}
        return [
            slope / floors[number]
            for number, slope in item.slopes(cpu).items()
            if floors.get(number, 0) > 0
        ]

    return Slope(
        item.strategy.key,
        item.strategy.label,
        item.sizes,
        list(item.slopes().values()),
        list(item.setups().values()),
        ratios(cpu=False),
        list(item.slopes(cpu=True).values()),
        ratios(cpu=True),
        item.problem,
    )
