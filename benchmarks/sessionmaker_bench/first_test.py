"""Time to the first test: the whole process of running ONE test, as a developer does all day.

Rows: plain pytest with one empty test; pytest-sessionmaker with nothing configured (it starts a
throwaway PostgreSQL); with the running server's URL, for each schema size; the same with
``--db-reuse`` from the second run on; pytest-postgresql starting its own server
(``postgresql_proc`` + ``postgresql``) and on the running server (``postgresql_noproc``); and the
ORM floor, the same test with no plugin (``create_all`` on the running server's database, one
connection, BEGIN ... ROLLBACK, ``drop_all``): what any SQLAlchemy test pays for its imports, its
driver and its tables, so that the excess over it is what a plugin adds. The database rows run
the same ORM test. Each row runs once uncounted first; then runs are
interleaved: each round runs every row once, in an order rotated by one row per round, and each
row is also given as its excess over plain pytest in the same round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sessionmaker_bench.running import environment, run_pytest
from sessionmaker_bench.strategies import BY_KEY
from sessionmaker_bench.suite import write_suite

if TYPE_CHECKING:
    from pathlib import Path

    from sessionmaker_bench.databases import Server
    from sessionmaker_bench.settings import Settings


@dataclass(frozen=True)
class Case:
    label: str
    strategy: str
    tables: int
    url: bool
    """Whether the server's URL is given (else the strategy finds or starts a server itself)."""
    arguments: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_")


@dataclass
class Timed:
    case: Case
    walls: dict[int, float] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class FirstTest:
    """One row (seconds): the walls of the rounds and the excess over plain pytest in each."""

    label: str
    walls: list[float]
    over_plain: list[float]
    over_floor: list[float]
    """The excess over the ORM floor with the same schema in the same round (the plugin rows)."""
    problem: str | None


def cases(settings: Settings, backend: str) -> list[Case]:
    rows = [Case("plain pytest, one empty test", "baseline", 1, url=False)]
    for tables in settings.first_test_tables:
        schema = f"{tables} table{'s' if tables > 1 else ''}"
        if backend in BY_KEY["floor"].backends:
            floor = f"ORM floor, no plugin (create_all), {schema}"
            rows += [Case(floor, "floor", tables, url=True)]
        rows += [
            Case(
                f"pytest-sessionmaker, no URL (throwaway server), {schema}",
                "ours",
                tables,
                url=False,
            )
        ]
        if backend in BY_KEY["ours"].backends:
            rows += [
                Case(f"pytest-sessionmaker, db_url, {schema}", "ours", tables, url=True),
                Case(
                    f"pytest-sessionmaker, db_url --db-reuse, {schema}",
                    "ours",
                    tables,
                    url=True,
                    arguments=("--db-reuse",),
                ),
            ]
        rows += [
            Case(
                f"pytest-postgresql, postgresql_proc, {schema}", "template_proc", tables, url=False
            )
        ]
        if backend in BY_KEY["template"].backends:
            rows += [
                Case(
                    f"pytest-postgresql, postgresql_noproc, {schema}", "template", tables, url=True
                )
            ]
    return rows


def measure(settings: Settings, server: Server, workdir: Path) -> list[FirstTest]:
    timed = [Timed(case) for case in cases(settings, server.backend)]
    folders: dict[str, Path] = {}
    for item in timed:
        strategy = BY_KEY[item.case.strategy]
        folders[item.case.name] = write_suite(workdir / "first-test" / item.case.name, strategy, 1)
        if item.case.url and not strategy.creates_database:
            server.create(item.case.name)

    def run(item: Timed, label: str) -> float | None:
        strategy = BY_KEY[item.case.strategy]
        url = server.url_for(item.case.name) if item.case.url else None
        # No TMPDIR, as users run it (it decides where the throwaway servers keep their
        # files); each server is removed by the run that started it.
        env = environment(None, url, item.case.tables)
        outcome = run_pytest(folders[item.case.name], strategy.plugins, env, item.case.arguments)
        if outcome.problem is not None:
            item.problem = outcome.problem
            print(f"{label}: {item.case.label} FAILED", flush=True)
            return None
        print(f"{label}: {item.case.label} {outcome.wall:.2f} s", flush=True)
        return outcome.wall

    # One uncounted run of every row: its bytecode is cached as in a developer's checkout, and
    # with --db-reuse what is measured is the second run onwards.
    for item in timed:
        run(item, "warm-up")
    active = [item for item in timed if item.problem is None]
    for number in range(settings.first_test_runs):
        shift = number % len(active)
        for item in active[shift:] + active[:shift]:
            if item.problem is None:
                wall = run(item, f"run {number + 1}/{settings.first_test_runs}")
                if wall is not None:
                    item.walls[number] = wall
    plain = timed[0].walls
    floors = {item.case.tables: item.walls for item in timed if item.case.strategy == "floor"}
    return [
        FirstTest(
            item.case.label,
            list(item.walls.values()),
            excess(item.walls, plain),
            []
            if item.case.strategy in ("baseline", "floor")
            else excess(item.walls, floors.get(item.case.tables, {})),
            item.problem,
        )
        for item in timed
    ]


def excess(walls: dict[int, float], reference: dict[int, float]) -> list[float]:
    """Each round's wall time less the reference row's in the same round."""
    return [wall - reference[number] for number, wall in walls.items() if number in reference]
