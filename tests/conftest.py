"""Real database servers for the plugin's own tests, and a small user project to run them on."""

from __future__ import annotations

import os
import socket
import textwrap
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import sqlalchemy.dialects.mysql
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

import pytest_sessionmaker.databases
import pytest_sessionmaker.server

if TYPE_CHECKING:
    from collections.abc import Iterator

# In-process pytester runs restore sys.modules afterwards; a dialect first imported inside an
# inner run would be imported again by the next one and re-register SQLAlchemy's global
# functions (a warning, an error under filterwarnings). Importing them here keeps them loaded.
PRELOADED = (sqlalchemy.dialects, pytest_sessionmaker.databases, pytest_sessionmaker.server)

MODELS = """
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Post(Base):
    __tablename__ = "posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(100))
"""


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgresql_server(pytestconfig: pytest.Config) -> str:
    """A PostgreSQL server URL: $TEST_POSTGRESQL_URL, the local server, or one we start.

    On a machine with no server running, the plugin's own throwaway server is used, so the
    suite needs nothing but the PostgreSQL binaries.
    """
    configured = os.environ.get("TEST_POSTGRESQL_URL")
    if configured:
        return configured
    if _reachable("127.0.0.1", 5432):
        return "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    from pytest_sessionmaker.server import throwaway_postgresql_url

    return throwaway_postgresql_url(pytestconfig).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    configured = os.environ.get("TEST_MARIADB_URL")
    if configured:
        return configured
    if not _reachable("127.0.0.1", 3306):
        pytest.skip(
            "no MariaDB/MySQL server on 127.0.0.1:3306; start one (root, empty password) or "
            "set TEST_MARIADB_URL=mysql+pymysql://user:pw@host/db to run the MariaDB tests"
        )
    return "mysql+pymysql://root@127.0.0.1:3306/test"


@dataclass
class Backend:
    """One database backend: where the inner runs' URL points, and a way to look at it."""

    name: str
    url: str

    def server_databases(self) -> set[str]:
        parsed = make_url(self.url)
        if self.name == "sqlite":
            assert parsed.database
            from pathlib import Path

            folder = Path(parsed.database).parent
            return {path.name for path in folder.glob("*.db")}
        admin = parsed.set(database="postgres" if self.name == "postgresql" else "mysql")
        engine = create_engine(admin, poolclass=NullPool)
        query = (
            "SELECT datname FROM pg_database"
            if self.name == "postgresql"
            else "SELECT schema_name FROM information_schema.schemata"
        )
        try:
            with engine.connect() as connection:
                return set(connection.execute(text(query)).scalars())
        finally:
            engine.dispose()

    def admin_execute(self, statement: str) -> None:
        """Run one statement on the server outside any database of the test (autocommit)."""
        parsed = make_url(self.url)
        admin = parsed.set(database="postgres" if self.name == "postgresql" else "mysql")
        engine = create_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(statement)
        finally:
            engine.dispose()

    @contextmanager
    def existing_database(self) -> Iterator[str]:
        """The URL's database, made to exist for the test as a user's own database would."""
        name = make_url(self.url).database
        if self.name == "sqlite":
            import sqlite3

            sqlite3.connect(str(name)).close()
        else:
            self.admin_execute(f"CREATE DATABASE {name}")
        try:
            yield self.url
        finally:
            if self.name != "sqlite":
                self.admin_execute(f"DROP DATABASE {name}")


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
        return Backend(name, f"sqlite:///{folder / (database + '.db')}")
    server = request.getfixturevalue(f"{name}_server")
    return Backend(name, make_url(server).set(database=database).render_as_string(False))


@dataclass
class Project:
    """A user's project: models, ini file and test files, run with pytester."""

    pytester: pytest.Pytester
    backend: Backend

    def write_ini(self, **extra: str) -> None:
        options = {"db_url": self.backend.url, "db_metadata": "models:Base", **extra}
        lines = "\n".join(f"{key} = {value}" for key, value in options.items())
        self.pytester.makeini(f"[pytest]\n{lines}\n")

    def write_tests(self, source: str, name: str = "test_app") -> None:
        self.pytester.makepyfile(**{name: textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(*args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*args)


@pytest.fixture
def project(pytester: pytest.Pytester, backend: Backend) -> Iterator[Project]:
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    project = Project(pytester, backend)
    project.write_ini()
    yield project


@pytest.fixture
def any_project(pytester: pytest.Pytester, any_backend: Backend) -> Iterator[Project]:
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    project = Project(pytester, any_backend)
    project.write_ini()
    yield project
