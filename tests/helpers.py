"""Real database servers for the plugin's own tests, and a small user project to run them on."""

from __future__ import annotations

import socket
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

EXAMPLES = Path(__file__).parent / "examples"
MODELS = (EXAMPLES / "models.py").read_text()


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
