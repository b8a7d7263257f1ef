"""Fixtures of the plugin's own suite: real database servers and a user's project on them."""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from typing import TYPE_CHECKING

import pytest
import sqlalchemy.dialects.mysql
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite
from hypothesis import HealthCheck, settings
from sqlalchemy import make_url

import pytest_sessionmaker.databases
import pytest_sessionmaker.server
from helpers import MODELS, Backend, Project, reachable

if TYPE_CHECKING:
    from collections.abc import Iterator

# The fuzz tests' profiles: "quick" for every run (a fixed seed: the same sequences each time,
# so a red run is reproducible), "long" on demand (--hypothesis-profile=long or
# HYPOTHESIS_PROFILE=long).
_FUZZ_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
settings.register_profile(
    "quick",
    max_examples=3,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_FUZZ_HEALTH,
)
settings.register_profile(
    "long", max_examples=300, deadline=None, suppress_health_check=_FUZZ_HEALTH
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

# Inner projects' test modules, copied by pytester.copy_example; never collected themselves.
collect_ignore = ["examples"]

# In-process pytester runs restore sys.modules afterwards; a dialect first imported inside an
# inner run would be imported again by the next one and re-register SQLAlchemy's global
# functions (a warning, an error under filterwarnings). Importing them here keeps them loaded.
PRELOADED = (
    sqlalchemy.dialects,
    pytest_sessionmaker.databases,
    pytest_sessionmaker.server,
)
# Alembic too, where installed: the minimum-versions job (.ci/min-versions) installs only the
# runtime floors, and the migration tests it does not run are the only ones that need it.
# The async side too (SQLAlchemy's asyncio extension and the async drivers inner runs load).
_OPTIONAL = (
    "alembic.autogenerate",
    "alembic.command",
    "alembic.migration",
    "sqlalchemy.ext.asyncio",
    "aiosqlite",
    "asyncpg",
    "aiomysql",
    "pytest_asyncio",
)
for _name in _OPTIONAL:
    with contextlib.suppress(ImportError):
        importlib.import_module(_name)


@pytest.fixture(scope="session")
def postgresql_server(pytestconfig: pytest.Config) -> str:
    """A PostgreSQL server URL: $TEST_POSTGRESQL_URL, else the plugin's own throwaway server.

    The suite creates and drops two databases for most of its PostgreSQL tests (a template and
    its copy) and each is about 300 files: on a server whose files are on a disk (the machine's
    on 5432, with fsync on) that was most of the suite's time. The throwaway server keeps its
    files in memory when the machine has room (server_location.py), needs nothing but the
    PostgreSQL binaries, and is the server users get with no URL configured.
    TEST_POSTGRESQL_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres runs the suite on
    the machine's server.
    """
    configured = os.environ.get("TEST_POSTGRESQL_URL")
    if configured:
        return configured
    from pytest_sessionmaker.server import throwaway_postgresql_url

    return throwaway_postgresql_url(pytestconfig).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    configured = os.environ.get("TEST_MARIADB_URL")
    if configured:
        return configured
    if not reachable("127.0.0.1", 3306):
        pytest.skip(
            "no MariaDB/MySQL server on 127.0.0.1:3306; start one (root, empty password) or "
            "set TEST_MARIADB_URL=mysql+pymysql://user:pw@host/db to run the MariaDB tests"
        )
    return "mysql+pymysql://root@127.0.0.1:3306/test"


def _unique_name() -> str:
    return f"app_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """SQLite and PostgreSQL: every isolation behaviour must hold on both."""
    return _backend(request, request.param, tmp_path_factory)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Backend:
    """All three backends, for behaviour the issues require on MariaDB too."""
    return _backend(request, request.param, tmp_path_factory)


def _backend(request: pytest.FixtureRequest, name: str, factory: pytest.TempPathFactory) -> Backend:
    database = _unique_name()
    if name == "sqlite":
        folder = factory.mktemp("sqlite")
        backend = Backend(name, f"sqlite:///{folder / (database + '.db')}")
        request.addfinalizer(backend.drop_templates)
        return backend
    server = request.getfixturevalue(f"{name}_server")
    backend = Backend(name, make_url(server).set(database=database).render_as_string(False))
    # The test's database name is unique, so the templates built for it serve no other test.
    request.addfinalizer(backend.drop_templates)
    return backend


@pytest.fixture
def project(pytester: pytest.Pytester, backend: Backend) -> Iterator[Project]:
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    project = Project(pytester, backend)
    project.write_ini()
    yield project


@pytest.fixture
def postgresql_project(
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Project]:
    """A project on PostgreSQL alone, for what only PostgreSQL has (its two async drivers)."""
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    project = Project(pytester, _backend(request, "postgresql", tmp_path_factory))
    project.write_ini()
    yield project


@pytest.fixture
def any_project(pytester: pytest.Pytester, any_backend: Backend) -> Iterator[Project]:
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    project = Project(pytester, any_backend)
    project.write_ini()
    yield project


@pytest.fixture
def fuzz_project(pytester: pytest.Pytester, any_backend: Backend) -> Iterator[Project]:
    """The fuzz test's inner project: seed fixture, checks, an application session factory."""
    pytester.makepyfile(models=MODELS)
    pytester.copy_example("fuzz")
    pytester.syspathinsert()
    project = Project(pytester, any_backend)
    project.write_ini(db_sessionmakers="app:SessionLocal")
    yield project


@pytest.fixture
def catalog_project(pytester: pytest.Pytester, any_backend: Backend) -> Iterator[Project]:
    pytester.copy_example("restore/catalog.py")
    pytester.copy_example("restore/dump.py")
    pytester.copy_example("restore/conftest.py")
    pytester.syspathinsert()
    project = Project(pytester, any_backend)
    project.write_ini(db_metadata="catalog:Base")
    yield project


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from fuzz_counts import SEQUENCES

    for backend, count in sorted(SEQUENCES.items()):
        terminalreporter.write_line(f"fuzz: {count} generated test sequences on {backend}")
