#!/usr/bin/env python3
"""One-time cost of the test database: db_schema = create next to db_schema = alembic.

    python benchmarks/migrations.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test

A project is generated in a temporary directory: N tables (default 30, each with a foreign key
to the one before and an index) described twice, as models for ``create`` and as an Alembic
environment of three revisions for ``alembic`` (half the tables, the other half, then a data
migration of 100 rows and a view). Its suite is 20 tests of one row each. Each configuration
runs as ``python -m pytest`` in a subprocess, in one process or with ``-n 2``, in a new test
database or (``--db-reuse``) in one a first run kept. The configurations take turns, round by
round in a rotated order, so that a machine slowing down for a while slows them alike.

A small plugin in the project's conftest times the db_setup fixture: its set-up (test database,
schema, change log), the schema part of it alone (``DatabaseRun.prepare``: tables or migrations,
then the change log) and its teardown (change log removed, database dropped unless kept); under
xdist every worker reports its own. The table gives the median over the runs (and workers) with
the range.

Runs in the current environment: the plugin with its ``alembic`` extra and pytest-xdist.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TIMING_CONFTEST = """
import json, os, time
import pytest
from pytest_sessionmaker.run import DatabaseRun

STARTED = {}
_prepare = DatabaseRun.prepare


def _timed_prepare(self):
    # The schema part of the set-up alone: tables or migrations, then the change log.
    start = time.perf_counter()
    try:
        return _prepare(self)
    finally:
        STARTED["schema"] = time.perf_counter() - start


DatabaseRun.prepare = _timed_prepare


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if fixturedef.argname != "db_setup":
        return (yield)
    start = time.perf_counter()
    result = yield
    STARTED["setup"] = time.perf_counter() - start
    # Finalizers run last-in first-out: this one marks the start of db_setup's teardown.
    fixturedef.addfinalizer(lambda: STARTED.__setitem__("teardown", time.perf_counter()))
    return result


def pytest_fixture_post_finalizer(fixturedef, request):
    if fixturedef.argname == "db_setup" and "teardown" in STARTED:
        STARTED["teardown"] = time.perf_counter() - STARTED["teardown"]
        with open(os.environ["TIMINGS"], "a") as out:
            out.write(json.dumps(STARTED) + "\\n")
        STARTED.clear()
"""


def models(tables: int) -> str:
    lines = [
        "from sqlalchemy import ForeignKey, Index, Integer, String",
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column",
        "",
        "class Base(DeclarativeBase):",
        "    pass",
        "",
    ]
    for n in range(tables):
        parent = f', ForeignKey("t{n - 1}.id")' if n else ""
        lines += [
            f"class T{n}(Base):",
            f'    __tablename__ = "t{n}"',
            "    id: Mapped[int] = mapped_column(primary_key=True)",
            f"    parent_id: Mapped[int | None] = mapped_column(Integer{parent})",
            "    name: Mapped[str] = mapped_column(String(50), index=True)",
            "",
        ]
    return "\n".join(lines)


def revision(number: int, body: str) -> str:
    down = repr(f"{number - 1:04d}") if number > 1 else "None"
    return (
        f'"""Revision {number}."""\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {f'{number:04d}'!r}\n"
        f"down_revision = {down}\n\n\n"
        f"def upgrade():\n{textwrap.indent(body, '    ')}\n"
    )


def create_tables(numbers: range) -> str:
    statements = []
    for n in numbers:
        parent = f', sa.ForeignKey("t{n - 1}.id")' if n else ""
        statements.append(
            f'op.create_table("t{n}", sa.Column("id", sa.Integer(), primary_key=True), '
            f'sa.Column("parent_id", sa.Integer(){parent}), '
            'sa.Column("name", sa.String(50), nullable=False))\n'
            f'op.create_index("ix_t{n}_name", "t{n}", ["name"])'
        )
    return "\n".join(statements)


def write_project(folder: Path, tables: int) -> None:
    (folder / "app").mkdir()
    (folder / "app" / "__init__.py").write_text("")
    (folder / "app" / "models.py").write_text(models(tables))
    (folder / "conftest.py").write_text(TIMING_CONFTEST)
    (folder / "pytest.ini").write_text(
        "[pytest]\npythonpath = .\ndb_metadata = app.models:Base\n"
        "addopts = -p no:randomly -p no:cacheprovider\n"
    )
    (folder / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/migrations\npath_separator = os\n"
    )
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True)
    (folder / "migrations" / "env.py").write_text(
        "from alembic import context\n"
        "from app.models import Base\n\n"
        'connection = context.config.attributes["connection"]\n'
        "context.configure(connection=connection, target_metadata=Base.metadata)\n"
        "with context.begin_transaction():\n"
        "    context.run_migrations()\n"
    )
    half = tables // 2
    (versions / "0001.py").write_text(revision(1, create_tables(range(half))))
    (versions / "0002.py").write_text(revision(2, create_tables(range(half, tables))))
    data = (
        'rows = sa.table("t0", sa.column("name", sa.String))\n'
        'op.bulk_insert(rows, [{"name": f"seed {i}"} for i in range(100)])\n'
        'op.execute("CREATE VIEW named AS SELECT id, name FROM t0")'
    )
    (versions / "0003.py").write_text(revision(3, data))
    tests = "\n".join(
        f"def test_{n}(db_session):\n"
        f"    db_session.add(T{n % tables}(name='x'))\n"
        "    db_session.commit()\n"
        for n in range(20)
    )
    (folder / "test_app.py").write_text(f"from app.models import *\n\n{tests}")


def run(folder: Path, url: str, schema: str, workers: int, reuse: bool) -> list[dict[str, float]]:
    timings = folder / "timings.jsonl"
    timings.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "--db-url", url, "--db-schema", schema]
    command += ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    command += ["--db-reuse"] if reuse else []
    result = subprocess.run(
        command, cwd=folder, env={**os.environ, "TIMINGS": str(timings)}, capture_output=True
    )
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout.decode()}{result.stderr.decode()}")
    return [json.loads(line) for line in timings.read_text().splitlines()]


CONFIGURATIONS = [
    (schema, workers, reuse)
    for workers in (1, 2)
    for schema in ("create", "alembic")
    for reuse in (False, True)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--tables", type=int, default=30, help="tables (default 30)")
    parser.add_argument("--rounds", type=int, default=7, help="runs per row (default 7)")
    args = parser.parse_args()
    from sqlalchemy import make_url

    def url_for(schema: str, workers: int, reuse: bool) -> str:
        name = f"bench_{schema}_{workers}_{'kept' if reuse else 'new'}"
        return make_url(args.url).set(database=name).render_as_string(hide_password=False)

    samples: dict[tuple[str, int, bool], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        write_project(folder, args.tables)
        for schema, workers, reuse in CONFIGURATIONS:
            if reuse:  # the first run keeps the database the timed runs reuse
                run(folder, url_for(schema, workers, reuse), schema, workers, reuse)
        # Round by round, in a rotated order: a machine that slows down for a while slows
        # every configuration alike.
        for round_ in range(args.rounds):
            shift = round_ % len(CONFIGURATIONS)
            for key in CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]:
                samples.setdefault(key, []).extend(run(folder, url_for(*key), *key))
        for schema, workers, reuse in CONFIGURATIONS:
            if reuse:  # drop the kept databases
                run(folder, url_for(schema, workers, reuse), schema, workers, reuse=False)
    print(f"{args.tables} tables, 20 tests, median of {args.rounds} runs (range), ms per process")
    header = ["set-up", "of which schema", "teardown"]
    print(f"{'schema':8} {'processes':>9} {'database':>8} " + " ".join(f"{h:>16}" for h in header))
    for key in CONFIGURATIONS:
        schema, workers, reuse = key
        parts = ("setup", "schema", "teardown")
        cells = [_cell([each[part] for each in samples[key]]) for part in parts]
        label = "kept" if reuse else "new"
        print(f"{schema:8} {workers:>9} {label:>8} " + " ".join(f"{c:>16}" for c in cells))


def _cell(values: list[float]) -> str:
    ms = sorted(value * 1000 for value in values)
    return f"{statistics.median(ms):.0f} ({ms[0]:.0f}-{ms[-1]:.0f})"


if __name__ == "__main__":
    main()
