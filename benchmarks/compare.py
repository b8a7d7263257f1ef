#!/usr/bin/env python3
"""Per-test cost of pytest-sessionmaker next to what users would otherwise pick.

    python benchmarks/compare.py                      # 500 tests, 5 rounds (about 8 minutes)
    python benchmarks/compare.py --tests 200 --rounds 2 --url postgresql+psycopg://u@host/db
    python benchmarks/compare.py --profile            # also profile our rollback mode

The same suite is generated for every strategy in a temporary directory: N tests, each adding one
row through the ORM to one of 32 generated tables, committing, and counting the table's rows
(expecting 1, so any strategy that leaks rows fails). The suites run one after the other, in a
rotated order each round, as ``python -m pytest -q -p no:cacheprovider`` with plugin autoloading
off and each strategy's plugin named with ``-p``, so no strategy pays for another's plugin. A
tiny timing plugin records every test's wall time from setup to teardown; the table reports the
median over an empty-test baseline, per round, then the median of the rounds.

Everything runs in a virtualenv of its own (``benchmarks/.venv``, made on first use with the
plugin's ``bench`` extra: pytest-sqla, pytest-postgresql, pytest-xdist, pyinstrument), so the
peers never enter the plugin's own environment. Only the standard library is needed to start:
the script re-runs itself with that virtualenv's interpreter.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO / "benchmarks" / ".venv"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TESTS_PER_MODULE = 100
REEXEC_MARK = "PYTEST_SESSIONMAKER_BENCH_CHILD"

# ---------------------------------------------------------------------------------------------
# The environment: a virtualenv with the plugin and its peers
# ---------------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def missing_modules(python: Path, modules: list[str]) -> list[str]:
    code = (
        "import importlib.util, sys\n"
        f"print(' '.join(m for m in {modules!r} if importlib.util.find_spec(m) is None))"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.split()


def prepare_venv(venv: Path) -> None:
    """Create ``venv`` and install the plugin with its ``bench`` extra (peers) into it.

    pytest-sqla is tried on its own last: if it cannot be installed the other strategies still
    run, and the table says why that row is missing.
    """
    python = venv_python(venv)
    if not python.exists():
        print(f"creating {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    required = ["pytest_sessionmaker", "pytest_postgresql", "xdist", "pyinstrument", "psycopg"]
    if not missing_modules(python, [*required, "pytest_sqla"]):
        return
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    print(f"installing the plugin and its peers into {venv} ...", flush=True)
    if subprocess.run([*pip, "-e", f"{REPO}[bench]"]).returncode == 0:
        return
    subprocess.run([*pip, "-e", str(REPO), "pytest-xdist>=3.5", "pyinstrument>=4.6"], check=True)
    log = venv / "pytest-sqla-install.log"
    with log.open("w") as out:
        subprocess.run([*pip, "pytest-sqla"], stdout=out, stderr=subprocess.STDOUT)


def reexec_in_venv(args: argparse.Namespace) -> None:
    """Run this script again with the benchmark environment's interpreter."""
    if os.environ.get(REEXEC_MARK) or args.python:
        return
    venv = Path(args.venv).resolve()
    prepare_venv(venv)
    python = venv_python(venv)
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    completed = subprocess.run([str(python), str(Path(__file__).resolve()), *sys.argv[1:]], env=env)
    sys.exit(completed.returncode)


# ---------------------------------------------------------------------------------------------
# The generated suite
# ---------------------------------------------------------------------------------------------


def models_source(tables: int) -> str:
    """``tables`` ORM models; each table references the previous one, as real schemas do."""
    lines = [
        "from datetime import datetime",
        "from typing import Optional",
        "",
        "from sqlalchemy import ForeignKey, Index, String, func",
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column",
        "",
        "",
        "class Base(DeclarativeBase):",
        "    pass",
        "",
    ]
    for k in range(tables):
        lines += [
            "",
            f"class Thing{k:02d}(Base):",
            f'    __tablename__ = "thing{k:02d}"',
            "    id: Mapped[int] = mapped_column(primary_key=True)",
            "    name: Mapped[str] = mapped_column(String(80), index=True)",
            "    amount: Mapped[int] = mapped_column(default=0)",
            "    note: Mapped[Optional[str]] = mapped_column(String(200))",
            "    created: Mapped[datetime] = mapped_column(server_default=func.now())",
        ]
        if k:
            lines.append(
                "    parent_id: Mapped[Optional[int]] = "
                f'mapped_column(ForeignKey("thing{k - 1:02d}.id"))'
            )
        lines.append("")
    lines += [
        "",
        "MODELS = [" + ", ".join(f"Thing{k:02d}" for k in range(tables)) + "]",
        "",
    ]
    return "\n".join(lines)


TIMER_PLUGIN = '''
"""Records each test's wall time, setup to teardown, into $BENCH_TIMES (JSON list, seconds)."""
import json
import os
import time

import pytest

durations = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    yield
    durations.append(time.perf_counter() - start)


def pytest_sessionfinish(session):
    path = os.environ.get("BENCH_TIMES")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if path and durations:
        with open(path + (f".{worker}" if worker else ""), "w") as out:
            json.dump(durations, out)
'''

TEST_BODY = """
def test_{index:04d}({fixture}):
    {fixture}.add(Thing{table:02d}(name="row {index}", amount={index}))
    {fixture}.commit()
    assert {fixture}.scalar(select(func.count()).select_from(Thing{table:02d})) == 1
"""

EMPTY_BODY = """
def test_{index:04d}():
    pass
"""

# Each strategy's conftest.py. The URL reaches them as $BENCH_URL (database included).

FLOOR_CONFTEST = '''
"""The floor: one raw psycopg connection for the run; per test SAVEPOINT first, ROLLBACK last.

The ORM session in the test needs SQLAlchemy around that connection; it is built once (StaticPool
over the same DBAPI connection), so per test only the two statements and the Session remain.
ROLLBACK ends the whole transaction (psycopg begins the next one with the next statement): one
transaction for the run, undone to a savepoint per test, would pile up aborted subtransactions,
and PostgreSQL's visibility checks slow down once a transaction has more than 64 of them.
"""
import os

import psycopg
import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from models import Base


@pytest.fixture(scope="session")
def floor_connection():
    url = make_url(os.environ["BENCH_URL"])
    raw = psycopg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password or None,
        dbname=url.database,
    )
    engine = create_engine(url, creator=lambda: raw, poolclass=StaticPool)
    with engine.begin() as connection:
        Base.metadata.create_all(connection)
    # SQLAlchemy's view: one transaction for the run; the server's: one per test.
    connection = engine.connect()
    connection.begin()
    yield raw, connection
    raw.rollback()
    connection.close()
    with engine.begin() as connection:
        Base.metadata.drop_all(connection)
    engine.dispose()
    raw.close()


@pytest.fixture
def floor_session(floor_connection):
    raw, connection = floor_connection
    raw.execute("SAVEPOINT floor")
    with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
        yield session
    raw.rollback()
'''

RECIPE_CONFTEST = '''
"""SQLAlchemy's "Joining a Session into an External Transaction" recipe, by hand, pooled engine."""
import os

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from models import Base


@pytest.fixture(scope="session")
def recipe_engine():
    engine = create_engine(os.environ["BENCH_URL"])
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def recipe_session(recipe_engine):
    connection = recipe_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    transaction.rollback()
    connection.close()
'''

TRUNCATE_CONFTEST = '''
"""Real commits, then one TRUNCATE of every table after each test (what pytest-django does)."""
import os

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from models import Base


@pytest.fixture(scope="session")
def truncate_engine():
    engine = create_engine(os.environ["BENCH_URL"])
    Base.metadata.create_all(engine)
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    yield engine, f"TRUNCATE {names} RESTART IDENTITY CASCADE"
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def truncate_session(truncate_engine):
    engine, truncate = truncate_engine
    with Session(engine) as session:
        yield session
    with engine.begin() as connection:
        connection.exec_driver_sql(truncate)
'''

TEMPLATE_CONFTEST = '''
"""pytest-postgresql: a database per test, created from a template holding the schema."""
import os

import pytest
from pytest_postgresql import factories
from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from models import Base

URL = make_url(os.environ["BENCH_URL"])


def load_schema(host, port, user, dbname, password, **_):
    engine = create_engine(
        URL.set(host=host, port=int(port), username=user, password=password, database=dbname),
        poolclass=NullPool,
    )
    Base.metadata.create_all(engine)
    engine.dispose()


postgresql_noproc = factories.postgresql_noproc(
    host=URL.host, port=URL.port or 5432, user=URL.username, password=URL.password,
    dbname=URL.database, load=[load_schema],
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def template_session(postgresql):
    # The ORM over the fixture's own connection: no second connection per test.
    engine = create_engine(URL, creator=lambda: postgresql, poolclass=StaticPool)
    with Session(engine) as session:
        yield session
    engine.dispose()
'''

SQLA_CONFTEST = '''
"""pytest-sqla, configured through its ini keys (see pytest.ini); nothing to add here."""
'''

OURS_CONFTEST = '''
"""pytest-sessionmaker, configured through its ini keys (see pytest.ini); nothing to add here."""
'''


@dataclass
class Strategy:
    key: str
    label: str
    fixture: str | None
    conftest: str
    plugins: list[str] = field(default_factory=list)
    ini: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    module_header: str = ""
    slow: bool = False
    needs_module: str | None = None


def strategies() -> list[Strategy]:
    ours_ini = {"db_metadata": "models:Base"}
    return [
        Strategy("baseline", "empty test (baseline)", None, ""),
        Strategy("floor", "floor: raw SAVEPOINT ... ROLLBACK", "floor_session", FLOOR_CONFTEST),
        Strategy("recipe", "hand-written SQLAlchemy recipe", "recipe_session", RECIPE_CONFTEST),
        Strategy(
            "sqla",
            "pytest-sqla (defaults)",
            "sqla_session",
            SQLA_CONFTEST,
            plugins=["pytest_sqla.plugin"],
            ini={"sqla_metadata": "models:Base"},
            needs_module="pytest_sqla",
        ),
        Strategy(
            "template",
            "pytest-postgresql, db per test",
            "template_session",
            TEMPLATE_CONFTEST,
            plugins=["pytest_postgresql.plugin"],
            slow=True,
        ),
        Strategy(
            "truncate",
            "real commits + TRUNCATE all",
            "truncate_session",
            TRUNCATE_CONFTEST,
            slow=True,
        ),
        Strategy(
            "ours",
            "pytest-sessionmaker, rollback",
            "db_session",
            OURS_CONFTEST,
            plugins=["pytest_sessionmaker.plugin"],
            ini=ours_ini,
        ),
        Strategy(
            "ours_commit",
            "pytest-sessionmaker, db_commit",
            "db_session",
            OURS_CONFTEST,
            plugins=["pytest_sessionmaker.plugin"],
            ini=ours_ini,
            module_header="pytestmark = pytest.mark.db_commit\n",
        ),
    ]


def write_suite(directory: Path, strategy: Strategy, tests: int, tables: int) -> None:
    directory.mkdir(parents=True)
    (directory / "models.py").write_text(models_source(tables))
    (directory / "benchtimer.py").write_text(TIMER_PLUGIN)
    (directory / "conftest.py").write_text(strategy.conftest)
    ini = "[pytest]\n" + "".join(f"{key} = {value}\n" for key, value in strategy.ini.items())
    (directory / "pytest.ini").write_text(ini)
    for first in range(0, tests, TESTS_PER_MODULE):
        indexes = range(first, min(first + TESTS_PER_MODULE, tests))
        if strategy.fixture is None:
            body = "".join(EMPTY_BODY.format(index=i) for i in indexes)
            header = ""
        else:
            body = "".join(
                TEST_BODY.format(index=i, table=i % tables, fixture=strategy.fixture)
                for i in indexes
            )
            header = (
                "import pytest\n"
                "from sqlalchemy import func, select\n\n"
                "from models import *  # noqa: F403\n\n" + strategy.module_header
            )
        name = f"test_bench_{first // TESTS_PER_MODULE:02d}.py"
        (directory / name).write_text(header + body)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    durations: list[float]
    ok: bool
    problem: str = ""


def clean_env(directory: Path, url: str | None, extra: dict[str, str]) -> dict[str, str]:
    """The environment of one run: no inherited pytest settings, only the given URL."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "PYTHONPATH")) and key != REEXEC_MARK
    }
    env.update(
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=str(directory), PYTHONDONTWRITEBYTECODE="1"
    )
    if url is not None:
        env.update(BENCH_URL=url, PYTEST_DB_URL=url, PYTEST_SQLA_URL=url)
    env.update(extra)
    return env


def run_pytest(
    directory: Path,
    plugins: list[str],
    url: str | None,
    extra_args: tuple[str, ...] = (),
    timeout: int = 600,
    extra_env: dict[str, str] | None = None,
) -> Run:
    times = directory / "times.json"
    for stale in directory.glob("times.json*"):
        stale.unlink()
    # -x: a strategy that fails does so at once (a failing session fixture would otherwise
    # format its traceback again for every test), and the table says why.
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    command += ["-p", "benchtimer"]
    for plugin in plugins:
        command += ["-p", plugin]
    command += [*extra_args, str(directory)]
    env = clean_env(directory, url, {"BENCH_TIMES": str(times), **(extra_env or {})})
    start = time.perf_counter()
    try:
        result = subprocess.run(
            command, cwd=directory, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Run(time.perf_counter() - start, [], False, f"timed out after {timeout} s")
    wall = time.perf_counter() - start
    durations: list[float] = []
    for path in directory.glob("times.json*"):
        durations += json.loads(path.read_text())
    if result.returncode != 0:
        return Run(wall, durations, False, first_problem(result.stdout + result.stderr))
    return Run(wall, durations, True)


def first_problem(output: str) -> str:
    """The most telling line of a failed pytest run, for the table's note column."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for prefix in ("E   ", "E ", "ERROR", "INTERNALERROR", "Failed:"):
        for line in lines:
            if line.startswith(prefix) and len(line) > len(prefix) + 3:
                return line[:160]
    return (lines[-1] if lines else "no output")[:160]


# ---------------------------------------------------------------------------------------------
# Databases on the server
# ---------------------------------------------------------------------------------------------


class Server:
    """Creates and drops the per-strategy databases (each strategy gets its own)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import make_url

        self.url = make_url(url)
        if self.url.get_backend_name() != "postgresql":
            sys.exit("The benchmark compares PostgreSQL strategies; give a postgresql URL.")

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def _admin(self):  # psycopg is imported lazily, so no annotation
        import psycopg

        return psycopg.connect(
            host=self.url.host,
            port=self.url.port or 5432,
            user=self.url.username,
            password=self.url.password or None,
            dbname=self.url.database or "postgres",
            autocommit=True,
        )

    def reset(self, names: list[str], create: list[str]) -> None:
        with self._admin() as admin:
            for name in names:
                quoted = '"' + name.replace('"', '""') + '"'
                exists = admin.execute(
                    "SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if exists is None:
                    continue
                if exists[0]:
                    admin.execute(f"ALTER DATABASE {quoted} WITH is_template false")
                admin.execute(f"DROP DATABASE {quoted} WITH (FORCE)")
            for name in create:
                admin.execute(f'CREATE DATABASE "{name}"')

    def describe(self) -> str:
        with self._admin() as admin:
            row = admin.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0]}" if row else "PostgreSQL"


def database_names(key: str) -> list[str]:
    """What a strategy leaves behind if interrupted (ours derives ``<name>_test``)."""
    base = f"bench_{key}"
    return [base, f"{base}_tmpl", f"{base}_test", f"{base}_test_gw0", f"{base}_test_gw1"]


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


@dataclass
class Outcome:
    strategy: Strategy
    tests: int
    medians: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    problem: str = ""


def compare(args: argparse.Namespace, server: Server, workdir: Path) -> list[Outcome]:
    chosen = [s for s in strategies() if s.key in args.only or s.key == "baseline"]
    outcomes: dict[str, Outcome] = {}
    for strategy in chosen:
        tests = min(args.tests, args.slow_tests) if strategy.slow else args.tests
        outcome = Outcome(strategy, tests)
        outcomes[strategy.key] = outcome
        if strategy.needs_module and not module_available(strategy.needs_module):
            outcome.problem = not_installed(strategy.needs_module)
            continue
        write_suite(workdir / strategy.key, strategy, tests, args.tables)
    active = [s for s in chosen if not outcomes[s.key].problem]
    for round_number in range(args.rounds):
        shift = round_number % len(active)
        for strategy in active[shift:] + active[:shift]:
            outcome = outcomes[strategy.key]
            if outcome.problem:
                continue
            print(f"round {round_number + 1}/{args.rounds}: {strategy.label} ...", flush=True)
            run = run_pytest(
                workdir / strategy.key,
                strategy.plugins,
                server.url_for(f"bench_{strategy.key}"),
            )
            if not run.ok:
                outcome.problem = f"failed: {run.problem}"
                continue
            outcome.medians.append(statistics.median(run.durations))
            outcome.walls.append(run.wall)
    return list(outcomes.values())


def module_available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def not_installed(module: str) -> str:
    log = Path(sys.prefix) / f"{module.replace('_', '-')}-install.log"
    reason = ""
    if log.exists():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        reason = f": {lines[-1][:120]}" if lines else ""
    return f"not installable in the benchmark environment{reason}"


def table(outcomes: list[Outcome]) -> list[list[str]]:
    baseline = next(o for o in outcomes if o.strategy.key == "baseline")
    floor = next((o for o in outcomes if o.strategy.key == "floor"), None)

    def overheads(outcome: Outcome) -> list[float]:
        # Pair each round with the baseline of the same round.
        return [m - b for m, b in zip(outcome.medians, baseline.medians, strict=False)]

    floor_overheads = overheads(floor) if floor and floor.medians else []
    rows = [["strategy", "tests", "per test ms", "overhead ms", "range ms", "x floor", "note"]]
    for outcome in outcomes:
        label = outcome.strategy.label
        if outcome.problem or not outcome.medians:
            rows.append(
                [label, str(outcome.tests), "-", "-", "-", "-", outcome.problem or "no runs"]
            )
            continue
        per_test = statistics.median(outcome.medians)
        if outcome is baseline:
            rows.append([label, str(outcome.tests), ms(per_test), "0", "", "", ""])
            continue
        values = overheads(outcome)
        overhead = statistics.median(values)
        # The ratio pairs each round with the floor's run of the same round: the machine's
        # speed drifts between rounds more than it does within one.
        ratios = [v / f for v, f in zip(values, floor_overheads, strict=False) if f > 0]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        spread = f"{ms(min(values))}-{ms(max(values))}"
        rows.append([label, str(outcome.tests), ms(per_test), ms(overhead), spread, ratio, ""])
    return rows


def render_rst(rows: list[list[str]]) -> str:
    """A reStructuredText simple table (also readable as plain text)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rule = "  ".join("=" * w for w in widths)
    lines = [
        rule,
        "  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True)).rstrip(),
        rule,
    ]
    for row in rows[1:]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) if i < len(row) - 1 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row[1:], widths[1:], strict=True), start=1)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.append(rule)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Extras: start-up overhead, xdist throughput, profile
# ---------------------------------------------------------------------------------------------


def startup_overhead(args: argparse.Namespace, server: Server, workdir: Path) -> list[str]:
    """1000 tests that use no database: plain pytest, with the plugin, and with a URL set."""
    plain = Strategy("startup", "", None, "")
    directory = workdir / "startup"
    write_suite(directory, plain, 1000, args.tables)
    url = server.url_for("bench_startup")
    variants = {
        "plain pytest": ([], {}),
        "+ plugin, nothing configured": (["pytest_sessionmaker.plugin"], {}),
        "+ plugin, db_url configured": (["pytest_sessionmaker.plugin"], {"url": True}),
        # Installing the plugin installs pytest-postgresql, whose own plugin then loads too.
        "+ plugin + pytest-postgresql's": (
            ["pytest_postgresql.plugin", "pytest_sessionmaker.plugin"],
            {},
        ),
    }
    if args.callgrind:
        return callgrind_startup(directory, url, variants)
    walls: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.startup_reps):
        for name, (plugins, options) in variants.items():
            # The URL reaches the plugin through $PYTEST_DB_URL; without it nothing is set.
            run = run_pytest(directory, plugins, url if options else None)
            if not run.ok:
                return [f"start-up overhead: failed ({run.problem})"]
            walls[name].append(run.wall)
    base = statistics.median(walls["plain pytest"])
    lines = [f"Start-up, 1000 tests using no database (median of {args.startup_reps} runs):"]
    for name, values in walls.items():
        median = statistics.median(values)
        extra = "" if name == "plain pytest" else f"  (+{ms(median - base)} ms)"
        lines.append(f"  {name:32s} {median:.3f} s{extra}")
    return lines


HEAD_TO_HEAD_TIMER = '''
"""Records each test's wall time into $H2H_TIMES, by strategy (test_<strategy>_<n>)."""
import json
import os
import time

import pytest

durations = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.perf_counter()
    yield
    durations.setdefault(item.name.split("_")[1], []).append(time.perf_counter() - start)


def pytest_sessionfinish(session):
    with open(os.environ["H2H_TIMES"], "w") as out:
        json.dump(durations, out)
'''

HEAD_TO_HEAD = {"floor": "floor_session", "recipe": "recipe_session", "ours": "db_session"}
H2H_DATABASES = [f"h2h_{key}" for key in HEAD_TO_HEAD]


def head_to_head(args: argparse.Namespace, server: Server, workdir: Path) -> list[str]:
    """The floor, the recipe and our rollback mode interleaved test by test in one process.

    Separate processes meet the machine at different moments, and a shared machine's speed
    drifts by more than these three differ. Interleaved, every strategy meets the same moments.
    """
    directory = workdir / "head_to_head"
    directory.mkdir()
    (directory / "models.py").write_text(models_source(args.tables))
    (directory / "h2htimer.py").write_text(HEAD_TO_HEAD_TIMER)
    (directory / "benchtimer.py").write_text(TIMER_PLUGIN)  # run_pytest loads it
    (directory / "conftest.py").write_text(
        FLOOR_CONFTEST.replace('"BENCH_URL"', '"BENCH_URL_FLOOR"')
        + RECIPE_CONFTEST.replace('"BENCH_URL"', '"BENCH_URL_RECIPE"')
    )
    (directory / "pytest.ini").write_text("[pytest]\ndb_metadata = models:Base\n")
    keys = ["empty", *HEAD_TO_HEAD]
    tests = []
    for index in range(args.tests):
        shift = index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            fixture = HEAD_TO_HEAD.get(key)
            body = (
                TEST_BODY.format(index=index, table=index % args.tables, fixture=fixture)
                if fixture
                else EMPTY_BODY.format(index=index)
            )
            tests.append(body.replace("def test_", f"def test_{key}_"))
    header = "from sqlalchemy import func, select\n\nfrom models import *  # noqa: F403\n"
    (directory / "test_head_to_head.py").write_text(header + "".join(tests))
    times = directory / "h2h.json"
    env = {
        "BENCH_URL_FLOOR": server.url_for("bench_h2h_floor"),
        "BENCH_URL_RECIPE": server.url_for("bench_h2h_recipe"),
        "H2H_TIMES": str(times),
    }
    medians: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(args.rounds):
        run = run_pytest(
            directory,
            ["h2htimer", "pytest_sessionmaker.plugin"],
            server.url_for("bench_h2h_ours"),
            extra_env=env,
        )
        if not run.ok:
            return [f"head to head: failed ({run.problem})"]
        for key, values in json.loads(times.read_text()).items():
            medians[key].append(statistics.median(values))
    empty = statistics.median(medians["empty"])
    overhead = {key: statistics.median(medians[key]) - empty for key in HEAD_TO_HEAD}
    lines = [
        f"Head to head, interleaved in one process ({args.tests} tests each, median of "
        f"{args.rounds} runs; overhead over an empty test):"
    ]
    for key, fixture in HEAD_TO_HEAD.items():
        lines.append(
            f"  {key:7s} ({fixture:14s}) {ms(overhead[key])} ms  "
            f"x floor {overhead[key] / overhead['floor']:.2f}  "
            f"x recipe {overhead[key] / overhead['recipe']:.2f}"
        )
    return lines


def callgrind_startup(
    directory: Path, url: str, variants: dict[str, tuple[list[str], dict[str, bool]]]
) -> list[str]:
    """The start-up variants once each under valgrind's callgrind: instructions, not seconds.

    A shared machine's speed drifts by more than the plugin's start-up costs; the count of
    instructions executed does not, so it shows a difference of a few milliseconds.
    """
    if shutil.which("valgrind") is None:
        return ["start-up (callgrind): valgrind is not installed"]
    counts: dict[str, int] = {}
    wall = 0.0
    for name, (plugins, options) in variants.items():
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
        command += [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        for plugin in plugins:
            command += ["-p", plugin]
        env = clean_env(directory, url if options else None, {})
        result = subprocess.run(
            [*command, str(directory)], cwd=directory, env=env, capture_output=True, text=True
        )
        found = [line for line in result.stderr.splitlines() if "Collected :" in line]
        if result.returncode != 0 or not found:
            return [f"start-up (callgrind): {name} failed"]
        counts[name] = int(found[-1].split(":")[-1])
        if not plugins:
            start = time.perf_counter()
            run_pytest(directory, [], None)
            wall = time.perf_counter() - start
    base = counts["plain pytest"]
    lines = [
        "Start-up, 1000 tests using no database, in instructions (callgrind); ms estimated "
        f"from plain pytest's {wall:.3f} s wall time:"
    ]
    for name, count in counts.items():
        extra = count / base - 1
        estimate = "" if count == base else f"  (+{extra:.2%}, about +{extra * wall * 1000:.0f} ms)"
        lines.append(f"  {name:32s} {count / 1e9:.3f} G{estimate}")
    return lines


def xdist_throughput(
    args: argparse.Namespace, server: Server, workdir: Path, ours: Strategy
) -> list[str]:
    """Wall time of our rollback suite with -n 0 and with -n 2 (includes worker start-up)."""
    directory = workdir / "xdist"
    write_suite(directory, ours, args.tests, args.tables)
    plugins = [*ours.plugins, "xdist.plugin"]
    url = server.url_for("bench_xdist")
    walls: dict[str, list[float]] = {"-n 0": [], "-n 2": []}
    for _ in range(args.rounds):
        for option in walls:
            run = run_pytest(directory, plugins, url, tuple(option.split()))
            if not run.ok:
                return [f"xdist throughput: failed ({run.problem})"]
            walls[option].append(run.wall)
    serial, parallel = statistics.median(walls["-n 0"]), statistics.median(walls["-n 2"])
    return [
        f"xdist, {ours.label}, {args.tests} tests (median wall of {args.rounds} runs, "
        "start-up included):",
        f"  -n 0 {serial:.2f} s, -n 2 {parallel:.2f} s: throughput ratio {serial / parallel:.2f}x",
    ]


def profile_ours(
    args: argparse.Namespace, server: Server, workdir: Path, ours: Strategy
) -> list[str]:
    """pyinstrument over our rollback suite; the text report is kept next to the script."""
    directory = workdir / "profile"
    write_suite(directory, ours, args.tests, args.tables)
    output = REPO / "benchmarks" / "profile-ours.txt"
    plugins = []
    for plugin in ["benchtimer", *ours.plugins]:
        plugins += ["-p", plugin]
    command = [
        sys.executable,
        "-m",
        "pyinstrument",
        "--renderer",
        "text",
        "--show-all",
        "--outfile",
        str(output),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *plugins,
        str(directory),
    ]
    env = clean_env(directory, server.url_for("bench_profile"), {})
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        return [f"profile: failed ({first_problem(result.stdout + result.stderr)})"]
    return [f"profile of our rollback mode written to {output.relative_to(REPO)}"]


def machine() -> str:
    import sqlalchemy

    cores = os.cpu_count()
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            kib = int(info.readline().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{cores} CPUs{memory}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}"
    )


def our_rollback_mode() -> Strategy:
    return next(s for s in strategies() if s.key == "ours")


def parse_args() -> argparse.Namespace:
    keys = [s.key for s in strategies() if s.key != "baseline"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=500, help="tests per suite (default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per strategy (default 5)")
    parser.add_argument("--tables", type=int, default=32, help="tables in the schema (default 32)")
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"PostgreSQL server (default {DEFAULT_URL})"
    )
    parser.add_argument(
        "--slow-tests",
        type=int,
        default=100,
        help="tests for the strategies that cost 0.1 s or more per test (database per test, "
        "truncate all): their median settles with fewer tests, and 500 of them would take most "
        "of the time budget (default 100)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=keys, default=keys, help="strategies to run (default all)"
    )
    parser.add_argument(
        "--startup-reps", type=int, default=15, help="runs per variant for start-up (default 15)"
    )
    parser.add_argument("--skip-extras", action="store_true", help="no start-up or xdist runs")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="measure start-up in instructions under valgrind (slow, but immune to a busy "
        "machine) instead of wall time",
    )
    parser.add_argument("--profile", action="store_true", help="also profile our rollback mode")
    parser.add_argument(
        "--venv", default=str(DEFAULT_VENV), help=f"benchmark virtualenv (default {DEFAULT_VENV})"
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="use the current interpreter as it is instead of the benchmark virtualenv",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated suites")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    reexec_in_venv(args)
    # An installed wheel comes with its bytecode compiled; this checkout may not have it (the
    # runs set PYTHONDONTWRITEBYTECODE), and every run would compile the plugin again.
    compileall.compile_dir(str(REPO / "pytest_sessionmaker"), quiet=1)
    server = Server(args.url)
    keys = ["baseline", *args.only, "startup", "xdist", "profile", *H2H_DATABASES]
    names = [name for key in keys for name in database_names(key)]
    create = [key for key in [*args.only, *H2H_DATABASES] if key != "template"]
    server.reset(names, create=[f"bench_{key}" for key in create])
    workdir = Path(tempfile.mkdtemp(prefix="pytest-sessionmaker-bench-"))
    started = time.perf_counter()
    try:
        outcomes = compare(args, server, workdir)
        extras: list[str] = []
        ours = our_rollback_mode()
        if not args.skip_extras:
            extras += head_to_head(args, server, workdir)
            extras += startup_overhead(args, server, workdir)
            extras += xdist_throughput(args, server, workdir, ours)
        if args.profile:
            extras += profile_ours(args, server, workdir, ours)
    finally:
        server.reset(names, create=[])
        if args.keep:
            print(f"suites kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"Machine: {machine()}, {server.describe()}")
    print(
        f"Median per-test wall time (setup + call + teardown) over {args.rounds} rounds; "
        f"overhead = per test - empty test; schema of {args.tables} tables."
    )
    print(render_rst(table(outcomes)))
    for line in extras:
        print(line)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
