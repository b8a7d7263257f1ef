"""Real database servers for the plugin's own tests, and a small user project to run them on."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from collections.abc import Iterator


EXAMPLES = Path(__file__).parent / "examples"
MODELS = (EXAMPLES / "models.py").read_text()
# Four tests that each commit one user and count one (so any leak fails the next), and one that
# uses no database.
COUNTING_TESTS = """
import pytest
from sqlalchemy import func, select
from models import User

@pytest.mark.parametrize("n", range(4))
def test_commit_and_count(db_session, n):
    db_session.add(User(name=f"user{n}"))
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(User)) == 1

def test_without_database():
    pass
"""


# Plugins of the suite's environment that inner runs do not load unless a test asks for one
# ("-p asyncio" unblocks it): pytest-randomly would reorder the inner tests, pytest-asyncio
# warns about its unset loop scope, and the others are only imported for nothing (hypothesis's
# plugin, Faker's, and anyio's cost an inner run about three seconds of CPU on the 2-CPU machine).
INNER_BLOCKED_PLUGINS = ("randomly", "asyncio", "faker", "hypothesispytest", "anyio")
SQLALCHEMY_DEPRECATIONS_FAIL = "-W error::sqlalchemy.exc.SADeprecationWarning"


def inner_addopts(*extra: str, load: tuple[str, ...] = ()) -> str:
    """PYTEST_ADDOPTS for inner runs: the blocked plugins except ``load``, then ``extra``."""
    blocked = [f"-p no:{name}" for name in INNER_BLOCKED_PLUGINS if name not in load]
    return " ".join([*blocked, *extra])


# The suite runs each behaviour on every backend where it can differ. Where it cannot (the test
# sets its own URL, checks a usage error before any connection, or exercises pytest-xdist's
# plumbing, which is the same for every backend), it runs once, on the backend named here.
def only_on(fixture: str, *backends: str) -> pytest.MarkDecorator:
    """Restrict a test of the ``backend``/``any_backend`` fixture to ``backends``."""
    return pytest.mark.parametrize(fixture, backends, indirect=True)


BACKEND_INDEPENDENT = only_on("backend", "sqlite")


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Backend:
    """One database backend: where the inner runs' URL points, and a way to look at it."""

    name: str
    url: str

    def server_databases(self) -> set[str]:
        parsed = make_url(self.url)
        if self.name == "sqlite":
            assert parsed.database
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

    def test_databases(self) -> set[str]:
        """The test databases (or SQLite files) derived from this backend's URL that exist."""
        stem = Path(str(make_url(self.url).database)).stem
        return {name for name in self.server_databases() if name.startswith(f"{stem}_test")}

    def templates(self) -> dict[str, str]:
        """The plugin's template databases (SQLite: files) made for this backend's URL, by name,
        with the base name their mark records; any database named like a template is listed
        ("" as its base when it carries no template mark)."""
        from pytest_sessionmaker.templates import (
            TEMPLATE_PREFIX,
            parse_mark,
            read_sqlite_record,
            sqlite_template_directory,
        )

        parsed = make_url(self.url)
        stem = Path(str(parsed.database)).stem
        found: dict[str, str] = {}
        if self.name == "sqlite":
            for path in sqlite_template_directory().glob(f"{TEMPLATE_PREFIX}*.db"):
                record = read_sqlite_record(path)
                found[path.stem] = str(record.get("base", "")) if record else ""
        elif self.name == "postgresql":
            engine = create_engine(parsed.set(database="postgres"), poolclass=NullPool)
            query = (
                "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') "
                "FROM pg_database WHERE starts_with(datname, :prefix)"
            )
            try:
                with engine.connect() as connection:
                    rows = connection.execute(text(query), {"prefix": TEMPLATE_PREFIX}).all()
            finally:
                engine.dispose()
            for name, mark in rows:
                record = parse_mark(str(mark))
                found[str(name)] = str(record.get("base", "")) if record else ""
        return {name: base for name, base in found.items() if base in (stem, "")}

    def drop_templates(self) -> None:
        """Drop the plugin's templates built for this backend's (unique) database name."""
        stem = Path(str(make_url(self.url).database)).stem
        for name, base in self.templates().items():
            if base != stem:
                continue
            if self.name == "postgresql":
                self.admin_execute(f"DROP DATABASE IF EXISTS {name}")
            elif self.name == "sqlite":
                from pytest_sessionmaker.templates import sqlite_template_directory

                (sqlite_template_directory() / f"{name}.db").unlink(missing_ok=True)

    def wait_until_unused(self) -> None:
        """Wait until no session is connected to the test databases any more.

        A killed run's server sessions end when the server notices its client is gone, soon but
        not at once; until then a new run rightly takes such a database for a live run's.
        """
        if self.name == "sqlite":
            return
        parsed = make_url(self.url)
        admin = parsed.set(database="postgres" if self.name == "postgresql" else "mysql")
        stem = Path(str(parsed.database)).stem
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname LIKE :pattern"
            if self.name == "postgresql"
            else "SELECT count(*) FROM information_schema.processlist WHERE db LIKE :pattern"
        )
        engine = create_engine(admin, poolclass=NullPool)
        give_up = time.monotonic() + 60  # a safety net against a hang, not a timing
        try:
            with engine.connect() as connection:
                while connection.execute(text(query), {"pattern": f"{stem}_test%"}).scalar():
                    assert time.monotonic() < give_up, "a killed run's sessions never ended"
                    connection.rollback()
                    time.sleep(0.02)
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

    def copy_tests(self, *names: str) -> None:
        """Copy inner test modules (paths under tests/examples/) into the project."""
        for name in names:
            self.pytester.copy_example(name)

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest(*args)

    def run_subprocess(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*args)


def derived_test_url(url: str) -> str:
    """The test database the plugin derives from ``url`` (app -> app_test), as a URL string."""
    parsed = make_url(url)
    database = str(parsed.database)
    if parsed.get_backend_name() == "sqlite":
        database = database.removesuffix(".db") + "_test.db"
    else:
        database += "_test"
    return parsed.set(database=database).render_as_string(hide_password=False)


# -- an application with its own database (test_rebind and the tests of issue 14) --------------
#
# The inner projects have an application module whose engine points at a SQLite file of its own,
# app.db, holding one row. A write that escaped the test would land there, so every test that
# expects isolation checks the file is byte for byte what it was.

APP = """
from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import scoped_session, sessionmaker

from models import Base, User

engine = create_engine(f"sqlite:///{Path(__file__).with_name('app.db')}")
SessionLocal = sessionmaker(engine, expire_on_commit=False, info={"owner": "app"})
ScopedSession = scoped_session(sessionmaker(binds={Base: engine}, autoflush=False))

ORIGINAL = {
    "SessionLocal": dict(SessionLocal.kw),
    "ScopedSession": dict(ScopedSession.session_factory.kw),
}


def register(name):
    with SessionLocal() as session:
        session.add(User(name=name))
        session.commit()


def register_scoped(name):
    ScopedSession.add(User(name=name))
    ScopedSession.commit()


def names():
    with SessionLocal() as session:
        return session.scalars(select(User.name).order_by(User.id)).all()
"""

# Written by the inner run after its last test: is every factory configured as the app made it?
FACTORY_CHECK = """
from pathlib import Path


def pytest_sessionfinish(session):
    import app

    state = {
        "SessionLocal": app.SessionLocal.kw,
        "ScopedSession": app.ScopedSession.session_factory.kw,
    }
    lines = [
        f"{name} {'restored' if kw == app.ORIGINAL[name] else f'changed: {kw!r}'}"
        for name, kw in state.items()
    ]
    held = app.ScopedSession.registry.has()
    lines.append(f"scoped registry {'holds a session' if held else 'empty'}")
    Path(__file__).with_name("factory_state.txt").write_text("\\n".join(lines))
"""

FACTORIES_RESTORED = "SessionLocal restored\nScopedSession restored\nscoped registry empty"


class AppDatabase:
    """The application's own SQLite file, which the tests must never write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50) UNIQUE)")
        connection.execute("INSERT INTO users (name) VALUES ('existing')")
        connection.commit()
        connection.close()
        self.digest = self.current_digest()

    def current_digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def names(self) -> list[str]:
        connection = sqlite3.connect(self.path)
        try:
            return [name for (name,) in connection.execute("SELECT name FROM users ORDER BY id")]
        finally:
            connection.close()

    def assert_untouched(self) -> None:
        assert self.names() == ["existing"]
        assert self.current_digest() == self.digest


def write_app(pytester: pytest.Pytester) -> AppDatabase:
    pytester.makepyfile(app=APP, conftest=FACTORY_CHECK)
    return AppDatabase(pytester.path / "app.db")


def factory_state(project: Project) -> str:
    return (project.pytester.path / "factory_state.txt").read_text()
