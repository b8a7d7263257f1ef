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

from sqlalchemy import URL, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.engines import engine_or_plain_error, is_memory_sqlite
from pytest_sessionmaker.errors import DatabaseUnavailable, connect_error_message, hide_secrets
from pytest_sessionmaker.run import DatabaseRun

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pytest
    from sqlalchemy import Connection

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
    if settings.database_mode == "as_given" or is_memory_sqlite(url):
        run = DatabaseRun(settings, url, engine_options, session_options, owns_database=False)
        run.prepare()
        return run
    worker = getattr(config, "workerinput", {}).get("workerid")
    keep = settings.reuse_database
    database = claim_test_database(url, worker, reuse=keep and not settings.recreate_database)
    try:
        run = DatabaseRun(
            settings, database.url, engine_options, session_options, owns_database=True
        )
        run.on_close(lambda: database.release(drop=not keep))
        run.prepare()
    except BaseException:
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
        self.dialect = url.get_backend_name()
        self.base = url.database or url.username or "postgres"
        self.worker = worker
        self.url = url
        self._lock: Connection | None = None

    def _admin_engine_url(self) -> URL:
        if self.dialect == "postgresql":
            return self.server_url.set(database=self.server_url.database or "postgres")
        # URL.set() ignores None, so build the URL without a database from its parts.
        url = self.server_url
        return URL.create(
            url.drivername, url.username, url.password, url.host, url.port, None, url.query
        )

    def _connect_admin(self) -> Connection:
        candidates = [self._admin_engine_url()]
        if self.dialect == "postgresql":
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
        raise DatabaseUnavailable(connect_error_message(self.server_url, failure)) from None

    def _try_lock(self, admin: Connection, name: str) -> bool:
        key = f"pytest_sessionmaker:{name}"
        if self.dialect == "postgresql":
            query = "SELECT pg_try_advisory_lock(hashtext(:key))"
        else:
            query = "SELECT GET_LOCK(:key, 0)"
        return bool(admin.execute(text(query), {"key": key[:64]}).scalar())

    def _unlock(self, admin: Connection, name: str) -> None:
        key = f"pytest_sessionmaker:{name}"
        if self.dialect == "postgresql":
            admin.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key[:64]})
        else:
            admin.execute(text("SELECT RELEASE_LOCK(:key)"), {"key": key[:64]})

    def _exists(self, admin: Connection, name: str) -> bool:
        if self.dialect == "postgresql":
            query = "SELECT 1 FROM pg_database WHERE datname = :name"
        else:
            query = "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
        return admin.execute(text(query), {"name": name}).first() is not None

    def _is_ours(self, name: str) -> bool:
        engine = engine_or_plain_error(self.server_url.set(database=name), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                from sqlalchemy import inspect

                return inspect(connection).has_table(OWNER_TABLE)
        finally:
            engine.dispose()

    def _quote(self, admin: Connection, name: str) -> str:
        return admin.dialect.identifier_preparer.quote_identifier(name)

    def _create(self, admin: Connection, name: str) -> None:
        try:
            admin.exec_driver_sql(f"CREATE DATABASE {self._quote(admin, name)}")
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise DatabaseUnavailable(
                hide_secrets(
                    f"Cannot create the test database {name!r} on "
                    f"{self.server_url.render_as_string(hide_password=True)}: {reason}. Grant "
                    f"the user the right to create databases, or {OPT_OUT}.",
                    self.server_url,
                )
            ) from None
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

    def _drop(self, admin: Connection, name: str) -> None:
        force = " WITH (FORCE)" if self.dialect == "postgresql" else ""
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {self._quote(admin, name)}{force}")

    def claim(self, reuse: bool) -> None:
        admin = self._connect_admin()
        try:
            for name in test_database_names(self.base, self.worker):
                if not self._try_lock(admin, name):
                    continue  # a live run is using it
                if self._exists(admin, name):
                    if not self._is_ours(name):
                        self._unlock(admin, name)
                        raise DatabaseUnavailable(
                            f"A database named {name!r} already exists on "
                            f"{self.server_url.render_as_string(hide_password=True)} and was "
                            "not created by pytest-sessionmaker, so it will not be touched. "
                            f"Rename or drop it yourself, or {OPT_OUT}."
                        )
                    if not reuse:
                        self._drop(admin, name)
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

    def release(self, drop: bool) -> None:
        if self._lock is None:
            return
        try:
            if drop:
                self._drop(self._lock, self.name)
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
    backend = url.get_backend_name()
    database: ServerTestDatabase | SQLiteTestDatabase
    if backend == "sqlite":
        database = SQLiteTestDatabase(url, worker)
    elif backend in ("postgresql", "mysql", "mariadb"):
        database = ServerTestDatabase(url, worker)
    else:
        raise DatabaseUnavailable(
            f"pytest-sessionmaker cannot create test databases on {backend}; {OPT_OUT}."
        )
    database.claim(reuse)
    return database
