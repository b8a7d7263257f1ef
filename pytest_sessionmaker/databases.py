"""Test databases the plugin creates, owns and drops: one per run, or per xdist worker.

The database named in the URL is never used for tables: for ``.../app`` the plugin works in
``app_test`` (``app_test_gw0``... under xdist), so a developer's data cannot be lost. Every test
database is marked as the plugin's by a small table created right after it; a database of the
same name without that mark is somebody else's and is left alone. While a run uses a database it
holds a lock on its name (an advisory lock on PostgreSQL, GET_LOCK on MySQL, a lock file beside a
SQLite file), so a concurrent run picks the next name, and a database left by a killed run (its
lock died with it) is recognised and replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.dialects import support_for_url
from pytest_sessionmaker.dialects.sqlite import is_memory_database
from pytest_sessionmaker.engines import engine_or_plain_error
from pytest_sessionmaker.errors import DatabaseUnavailable, connect_error_message, shown_url
from pytest_sessionmaker.run import DatabaseRun

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pytest
    from sqlalchemy import URL, Connection

OWNER_TABLE = "pytest_sessionmaker_database"
ATTEMPTS = 10
OPT_OUT = "set db_database = as_given to use the URL's database exactly as given"


def open_run(
    config: pytest.Config,
    url: URL,
    engine_options: Mapping[str, Any],
    session_options: Mapping[str, Any],
) -> DatabaseRun:
    """The run's database, in a test database of its own unless told to use the URL's."""
    settings = config.stash[SETTINGS_KEY]
    memory = url.get_backend_name() == "sqlite" and is_memory_database(url)
    if settings.database_mode == "as_given" or memory:
        given = DatabaseRun(settings, url, engine_options, session_options, owns_database=False)
        try:
            given.prepare()
        except BaseException:
            given.abandon()
            raise
        return given
    worker = getattr(config, "workerinput", {}).get("workerid")
    keep = settings.reuse_database
    database = claim_test_database(url, worker, reuse=keep and not settings.recreate_database)
    run: DatabaseRun | None = None
    try:
        run = DatabaseRun(
            settings, database.url, engine_options, session_options, owns_database=True
        )
        run.on_close(lambda: database.release(drop=not keep))
        run.recreate_database = database.recreate
        run.prepare()
    except BaseException:
        if run is not None:
            run.abandon()
        database.release(drop=True)
        raise
    return run


def test_database_names(base: str, worker: str | None) -> list[str]:
    stem = f"{base}_test" + (f"_{worker}" if worker else "")
    return [stem] + [f"{stem}_{n}" for n in range(2, ATTEMPTS + 1)]


class ServerTestDatabase:
    """A test database on a PostgreSQL or MySQL/MariaDB server."""

    def __init__(self, url: URL, worker: str | None) -> None:
        self.server_url = url
        self.support = support_for_url(url)
        self.base = url.database or url.username or "postgres"
        self.worker = worker
        self.url = url
        self.name = ""
        self._lock: Connection | None = None

    def _connect_admin(self) -> Connection:
        candidates = [self.support.admin_url(self.server_url)]
        if self.support.name == "postgresql":
            candidates.append(self.server_url.set(database="postgres"))
        failure: BaseException | None = None
        for candidate in candidates:
            engine = engine_or_plain_error(
                candidate, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
            try:
                return engine.connect()
            except Exception as exc:
                failure = exc
        assert failure is not None
        raise DatabaseUnavailable(connect_error_message(self.server_url, failure)) from failure

    @staticmethod
    def _lock_key(name: str) -> str:
        return f"pytest_sessionmaker:{name}"

    def _is_ours(self, name: str) -> bool:
        engine = engine_or_plain_error(self.server_url.set(database=name), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                from sqlalchemy import inspect

                return inspect(connection).has_table(OWNER_TABLE)
        finally:
            engine.dispose()

    def _create(self, admin: Connection, name: str) -> None:
        try:
            self.support.create_database(admin, name)
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise DatabaseUnavailable(
                f"Cannot create the test database {name!r} on {shown_url(self.server_url)}: "
                f"{reason}. Grant the user the right to create databases, or {OPT_OUT}."
            ) from exc
        engine = engine_or_plain_error(self.server_url.set(database=name), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(
                    f"CREATE TABLE {OWNER_TABLE} (created_by VARCHAR(40) PRIMARY KEY)"
                )
                connection.exec_driver_sql(
                    f"INSERT INTO {OWNER_TABLE} VALUES ('pytest-sessionmaker')"
                )
        finally:
            engine.dispose()

    def claim(self, reuse: bool) -> None:
        admin = self._connect_admin()
        try:
            for name in test_database_names(self.base, self.worker):
                if not self.support.try_lock(admin, self._lock_key(name)):
                    continue  # a live run is using it
                if self.support.database_exists(admin, name):
                    if not self._is_ours(name):
                        self.support.unlock(admin, self._lock_key(name))
                        raise DatabaseUnavailable(
                            f"A database named {name!r} already exists on "
                            f"{shown_url(self.server_url)} and was not created by "
                            "pytest-sessionmaker, so it will not be touched. Rename or drop it "
                            f"yourself, or {OPT_OUT}."
                        )
                    if not reuse:
                        self.support.drop_database(admin, name)
                        self._create(admin, name)
                else:
                    self._create(admin, name)
                self.name = name
                self.url = self.server_url.set(database=name)
                self._lock = admin
                return
        except BaseException:
            admin.close()
            raise
        admin.close()
        raise DatabaseUnavailable(
            f"All {ATTEMPTS} test database names for {self.base!r} are in use by other runs."
        )

    def recreate(self) -> None:
        """Drop the claimed database and create it again, keeping the lock on its name."""
        assert self._lock is not None
        self.support.drop_database(self._lock, self.name)
        self._create(self._lock, self.name)

    def release(self, drop: bool) -> None:
        if self._lock is None:
            return
        try:
            if drop:
                self.support.drop_database(self._lock, self.name)
        finally:
            self._lock.close()
            self._lock = None


class SQLiteTestDatabase:
    """A SQLite file beside the URL's (``app.db`` -> ``app_test_gw0.db``), deleted afterwards."""

    def __init__(self, url: URL, worker: str | None) -> None:
        assert url.database
        self.server_url = url
        self.original = Path(url.database)
        self.worker = worker
        self.url = url
        self._lock: Any = None

    def claim(self, reuse: bool) -> None:
        from filelock import FileLock, Timeout

        for name in test_database_names(self.original.stem, self.worker):
            path = self.original.with_name(name + self.original.suffix)
            lock = FileLock(str(path) + ".lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            if path.exists() and not self._is_ours(path):
                lock.release()
                raise DatabaseUnavailable(
                    f"The file {path} already exists and was not created by "
                    f"pytest-sessionmaker, so it will not be touched. Move it away, or {OPT_OUT}."
                )
            if path.exists() and not reuse:
                self._delete(path)
            if not path.exists():
                self._create(path)
            self.path = path
            self.url = self.server_url.set(database=str(path))
            self._lock = lock
            return
        raise DatabaseUnavailable(
            f"All {ATTEMPTS} test database files for {self.original} are in use by other runs."
        )

    @staticmethod
    def _is_ours(path: Path) -> bool:
        import sqlite3

        connection = sqlite3.connect(path)
        try:
            return (
                connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OWNER_TABLE,)
                ).fetchone()
                is not None
            )
        finally:
            connection.close()

    @staticmethod
    def _create(path: Path) -> None:
        import sqlite3

        connection = sqlite3.connect(path)
        try:
            connection.execute(f"CREATE TABLE {OWNER_TABLE} (created_by VARCHAR(40) PRIMARY KEY)")
            connection.execute(f"INSERT INTO {OWNER_TABLE} VALUES ('pytest-sessionmaker')")
            connection.commit()
        finally:
            connection.close()

    @staticmethod
    def _delete(path: Path) -> None:
        for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)

    def recreate(self) -> None:
        """Delete the claimed file and create it again, keeping the lock beside it."""
        self._delete(self.path)
        self._create(self.path)

    def release(self, drop: bool) -> None:
        if self._lock is None:
            return
        try:
            if drop:
                self._delete(self.path)
        finally:
            self._lock.release()
            Path(self._lock.lock_file).unlink(missing_ok=True)
            self._lock = None


def claim_test_database(
    url: URL, worker: str | None, *, reuse: bool
) -> ServerTestDatabase | SQLiteTestDatabase:
    database: ServerTestDatabase | SQLiteTestDatabase
    if url.get_backend_name() == "sqlite":
        database = SQLiteTestDatabase(url, worker)
    elif support_for_url(url).can_create_databases():
        database = ServerTestDatabase(url, worker)
    else:
        raise DatabaseUnavailable(
            f"pytest-sessionmaker cannot create test databases on {url.get_backend_name()}; "
            f"{OPT_OUT}."
        )
    database.claim(reuse)
    return database
