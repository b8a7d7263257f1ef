"""Test databases the plugin creates, owns and drops: one per run, or per xdist worker.

The database named in the URL is never used for tables: for ``.../app`` the plugin works in
``app_test`` (``app_test_gw0``... under xdist), so a developer's data cannot be lost. Every test
database carries the plugin's mark from the moment its name exists (PostgreSQL: created under a
temporary name, commented, renamed; MariaDB: a comment in the CREATE DATABASE; SQLite: a file
written aside and renamed); a database of the same name without the mark is somebody else's and
is left alone. The mark also names the run that claimed it last.

While a run uses a database it holds a lock on its name: a session advisory lock taken in the
server's ``postgres`` database on PostgreSQL (the same database for every run, because advisory
locks belong to the database they are taken in), GET_LOCK on MySQL (server-wide), a lock file
beside a SQLite file. A concurrent run picks the next name, and a database left by a killed run
(its lock died with it) is recognised and replaced. A lock can also die while its run lives on
(a server restart, pg_terminate_backend, a timeout ending the idle lock connection): so a
database some session is still connected to is never replaced, and a run drops its database at
the end only after it holds the lock again and finds its own mark on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.dialects import support_for_url
from pytest_sessionmaker.dialects.base import OWNER_MARK
from pytest_sessionmaker.dialects.sqlite import is_memory_database
from pytest_sessionmaker.engines import engine_or_plain_error
from pytest_sessionmaker.errors import (
    DatabaseUnavailable,
    SessionmakerError,
    connect_error_message,
    shown_url,
)
from pytest_sessionmaker.errors import warn_plainly as warn
from pytest_sessionmaker.run import DatabaseRun
from pytest_sessionmaker.templates import (
    PostgreSQLTemplates,
    SQLiteTemplates,
    TemplateKey,
    TemplateMismatch,
    TemplateUnusable,
    TemplateUse,
    template_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pytest
    from sqlalchemy import URL, Connection

    from pytest_sessionmaker.config import Settings

# The table that marks a SQLite test database as the plugin's.
OWNER_TABLE = "pytest_sessionmaker_database"
ATTEMPTS = 10
OPT_OUT = "set db_database = as_given to use the URL's database exactly as given"
# GET_LOCK names are at most 64 characters.
LOCK_KEY_LENGTH = 64


def open_run(
    config: pytest.Config,
    url: URL,
    engine_options: Mapping[str, Any],
    session_options: Mapping[str, Any],
) -> DatabaseRun:
    """The run's database, in a test database of its own unless told to use the URL's."""
    settings = config.stash[SETTINGS_KEY]
    memory = url.get_backend_name() == "sqlite" and is_memory_database(url)
    if url.get_backend_name() == "sqlite" and not memory and not url.query.get("uri"):
        refuse_missing_directory(Path(str(url.database)))
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
    started = time.perf_counter()
    template = None
    if templates_pay(config, url):
        template = template_for(settings, url, engine_options, session_options)
    database = claim_test_database(
        url, worker, reuse=keep and not settings.recreate_database, template=template
    )
    creation = time.perf_counter() - started
    run: DatabaseRun | None = None
    try:
        for attempt in ("copy", "new template", "no template"):
            run = DatabaseRun(
                settings, database.url, engine_options, session_options, owns_database=True
            )
            run.template = database.template_use
            run.recreate_database = database.recreate
            try:
                run.prepare()
            except TemplateMismatch:
                # A damaged template (a table dropped from it, say): never a wrong schema.
                run.abandon()
                run = None
                started = time.perf_counter()
                if attempt == "copy":
                    database.recreate_from_new_template()
                else:
                    database.recreate_without_template()
                creation += time.perf_counter() - started
                continue
            break
        assert run is not None
        run.costs.creation = creation
        run.costs.template_problem = database.template_problem
        run.on_close(lambda: database.release(drop=not keep))
    except BaseException:
        if run is not None:
            run.abandon()
        database.release(drop=True)
        raise
    return run


def templates_pay(config: pytest.Config, url: URL) -> bool:
    """Whether building a template database pays: on a server that outlives the run (or for
    several xdist workers), where the next run or worker copies it; never for a database that
    is kept (--db-reuse) or on MySQL/MariaDB, which has no templates.

    On the throwaway server (no URL given) a single process would build a template and copy it
    once, before the server and the template are thrown away: more work than building the
    database directly.
    """
    settings = config.stash[SETTINGS_KEY]
    if settings.reuse_database or url.get_backend_name() not in ("postgresql", "sqlite"):
        return False
    if url.get_backend_name() == "sqlite" and url.query.get("uri"):
        return False
    if settings.url is None:
        return getattr(config, "workerinput", None) is not None
    return True


def template_for(
    settings: Settings,
    url: URL,
    engine_options: Mapping[str, Any],
    session_options: Mapping[str, Any],
) -> tuple[TemplateKey, Callable[[URL], str]] | None:
    """The run's template key and how to build its template, or None without a schema."""
    base = Path(str(url.database)).stem if url.get_backend_name() == "sqlite" else None
    key = template_key(settings, url, engine_options, base or url.database or "postgres")
    if key is None:
        return None

    def build(template_url: URL) -> str:
        builder = DatabaseRun(
            settings, template_url, engine_options, session_options, owns_database=True
        )
        try:
            builder.prepare()
            return builder.make_template()
        finally:
            builder.abandon()

    return key, build


def test_database_names(base: str, worker: str | None) -> list[str]:
    stem = f"{base}_test" + (f"_{worker}" if worker else "")
    return [stem] + [f"{stem}_{n}" for n in range(2, ATTEMPTS + 1)]


def lock_key(name: str) -> str:
    """The lock's name for a test database name (hashed when it would be too long)."""
    key = f"pytest_sessionmaker:{name}"
    if len(key) > LOCK_KEY_LENGTH:
        key = f"pytest_sessionmaker:{hashlib.sha256(name.encode()).hexdigest()[:40]}"
    return key


def new_mark() -> str:
    """The mark of one claim: the plugin's, and which run's (to tell a takeover apart)."""
    return f"{OWNER_MARK}, claimed by run {uuid.uuid4().hex}"


def reason_of(exc: BaseException) -> str:
    """The server's own words, first line only."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


class ServerTestDatabase:
    """A test database on a PostgreSQL or MySQL/MariaDB server."""

    def __init__(self, url: URL, worker: str | None) -> None:
        self.server_url = url
        self.support = support_for_url(url)
        self.base = url.database or url.username or "postgres"
        self.worker = worker
        self.url = url
        self.name = ""
        self.mark = new_mark()
        self._lock: Connection | None = None
        self.templates: PostgreSQLTemplates | None = None
        self.template_problem: str | None = None

    def use_templates(self, key: TemplateKey, build: Callable[[URL], str]) -> None:
        from pytest_sessionmaker.dialects.postgresql import PostgreSQLSupport

        if isinstance(self.support, PostgreSQLSupport):
            self.templates = PostgreSQLTemplates(self.support, self.server_url, key, build)

    @property
    def template_use(self) -> TemplateUse | None:
        return self.templates.use if self.templates is not None else None

    def _connect_lock(self) -> Connection:
        """The connection that holds the lock and runs CREATE and DROP DATABASE."""
        lock_url = self.support.lock_url(self.server_url)
        engine = engine_or_plain_error(lock_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            connection = engine.connect()
        except Exception as exc:
            raise DatabaseUnavailable(self._lock_connect_message(lock_url, exc)) from exc
        try:
            self.support.prepare_lock_connection(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _lock_connect_message(self, lock_url: URL, exc: BaseException) -> str:
        database = lock_url.database
        if (
            database
            and database != self.server_url.database
            and f'database "{database}"' in reason_of(exc)
        ):
            return (
                f"Cannot connect to the database {database!r} on "
                f"{shown_url(self.server_url)}: {reason_of(exc)}. pytest-sessionmaker "
                f"creates and drops its test databases from there, and every run takes its "
                f"lock on their names there; let this user connect to {database!r}, or "
                f"{OPT_OUT}."
            )
        return connect_error_message(self.server_url, exc)

    def _create(self, admin: Connection, name: str) -> None:
        if self.templates is not None:
            try:
                self.templates.create_copy(admin, name, self.mark)
                return
            except TemplateUnusable as exc:
                self.template_problem = str(exc)
                self.templates = None
        try:
            self.support.create_marked_database(admin, name, self.mark)
        except DBAPIError as exc:
            raise DatabaseUnavailable(
                f"Cannot create the test database {name!r} on {shown_url(self.server_url)}: "
                f"{reason_of(exc)}. Grant the user the right to create databases, or {OPT_OUT}."
            ) from exc

    def claim(self, reuse: bool) -> None:
        lock = self._connect_lock()
        try:
            for name in test_database_names(self.base, self.worker):
                key = lock_key(name)
                if not self.support.try_lock(lock, key):
                    continue  # a live run is using it
                try:
                    taken = self._take(lock, name, reuse)
                except BaseException:
                    with contextlib.suppress(DBAPIError):
                        self.support.unlock(lock, key)
                    raise
                if taken:
                    self.name = name
                    self.url = self.server_url.set(database=name)
                    self._lock = lock
                    return
                self.support.unlock(lock, key)
        except BaseException:
            lock.close()
            raise
        lock.close()
        raise DatabaseUnavailable(
            f"All {ATTEMPTS} test database names for {self.base!r} are in use by other runs "
            "(or have sessions connected to them)."
        )

    def _take(self, lock: Connection, name: str, reuse: bool) -> bool:
        """Make ``name`` this run's, under its lock; False when a live session still uses it."""
        mark = self.support.database_mark(lock, name)
        if mark is None:
            self._create(lock, name)
            return True
        if not mark.startswith(OWNER_MARK):
            raise DatabaseUnavailable(
                f"A database named {name!r} already exists on {shown_url(self.server_url)} and "
                "was not created by pytest-sessionmaker, so it will not be touched. Rename or "
                f"drop it yourself, or {OPT_OUT}."
            )
        if self.support.others_connected(lock, name):
            # Not a leftover: a run whose lock connection died (a server restart,
            # pg_terminate_backend, an idle timeout) still works in it, or somebody looks at it.
            return False
        try:
            if reuse:
                self.support.set_mark(lock, name, self.mark)
            else:
                self.support.drop_database(lock, name)
        except DBAPIError as exc:
            raise DatabaseUnavailable(
                f"The test database {name!r} on {shown_url(self.server_url)} was left by an "
                f"earlier run, and this user may not {'reuse' if reuse else 'replace'} it "
                f"({reason_of(exc)}). Drop it as its owner or a superuser, or run the tests "
                "as the user who created it."
            ) from exc
        if not reuse:
            self._create(lock, name)
        return True

    def recreate(self) -> None:
        """Drop the claimed database and create it again, keeping the lock on its name."""
        assert self._lock is not None
        self.support.drop_database(self._lock, self.name)
        self._create(self._lock, self.name)

    def recreate_from_new_template(self) -> None:
        """The copy did not match its template: drop both, build the template again."""
        assert self._lock is not None
        assert self.templates is not None
        self.support.drop_own_database(self._lock, self.name)
        self.templates.discard(self._lock)
        self.templates.use = TemplateUse(self.templates.key)
        self._create(self._lock, self.name)

    def recreate_without_template(self) -> None:
        self.templates = None
        self.recreate()

    def release(self, drop: bool) -> None:
        if self._lock is None:
            return
        try:
            if drop:
                self._drop_if_still_ours()
        finally:
            lock, self._lock = self._lock, None
            with contextlib.suppress(DBAPIError):
                lock.close()

    def _drop_if_still_ours(self) -> None:
        """Drop the run's database, after making sure the name is still this run's: the lock
        connection may have died during the run, and another run taken the name meanwhile."""
        assert self._lock is not None
        name, key = self.name, lock_key(self.name)
        try:
            held = self.support.holds_lock(self._lock, key)
            lost = "the lock was released"
        except DBAPIError as exc:
            held, lost = False, reason_of(exc)
        if not held:
            with contextlib.suppress(DBAPIError):
                self._lock.close()
            what = (
                f"The connection holding the lock on the test database {name!r} ended during "
                f"the run ({lost})"
            )
            try:
                self._lock = self._connect_lock()
            except SessionmakerError as exc:
                warn(f"{what}, and connecting again failed ({exc}); the database is left.")
                return
            if not self.support.try_lock(self._lock, key):
                warn(f"{what}, and another run holds its name now; the database is left to it.")
                return
        mark = self.support.database_mark(self._lock, name)
        if mark is None:
            return
        if mark != self.mark:
            warn(
                f"The test database {name!r} was taken over by another run while this one ran "
                "(the lock on its name was lost), so this run does not drop it."
            )
            return
        try:
            self.support.drop_own_database(self._lock, name)
        except DBAPIError as exc:
            warn(
                f"The test database {name!r} could not be dropped ({reason_of(exc)}); the next "
                "run replaces it."
            )


class SQLiteTestDatabase:
    """A SQLite file beside the URL's (``app.db`` -> ``app_test_gw0.db``), deleted afterwards.

    The lock file's lock is the operating system's, held by this process: it cannot end while
    the run lives, so there is nothing to check again before deleting.
    """

    def __init__(self, url: URL, worker: str | None) -> None:
        assert url.database
        self.server_url = url
        self.original = Path(url.database)
        self.worker = worker
        self.url = url
        self._lock: Any = None
        self.templates: SQLiteTemplates | None = None
        self.template_problem: str | None = None

    def use_templates(self, key: TemplateKey, build: Callable[[URL], str]) -> None:
        self.templates = SQLiteTemplates(self.server_url, key, build)

    @property
    def template_use(self) -> TemplateUse | None:
        return self.templates.use if self.templates is not None else None

    def claim(self, reuse: bool) -> None:
        from filelock import FileLock, Timeout

        for name in test_database_names(self.original.stem, self.worker):
            path = self.original.with_name(name + self.original.suffix)
            lock = FileLock(str(path) + ".lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                self._take(path, reuse)
            except BaseException:
                lock.release()
                raise
            self.path = path
            self.url = self.server_url.set(database=str(path))
            self._lock = lock
            return
        raise DatabaseUnavailable(
            f"All {ATTEMPTS} test database files for {self.original} are in use by other runs."
        )

    def _take(self, path: Path, reuse: bool) -> None:
        if path.exists() and not self._is_ours(path):
            raise DatabaseUnavailable(
                f"The file {path} already exists and was not created by "
                f"pytest-sessionmaker, so it will not be touched. Move it away, or {OPT_OUT}."
            )
        if path.exists() and not reuse:
            self.delete_file(path)
        if not path.exists():
            self._create(path)

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
        except sqlite3.DatabaseError:  # not a database at all: somebody's file
            return False
        finally:
            connection.close()

    def _create(self, path: Path) -> None:
        """Write the marked file aside (a copy of the template, if there is one), then rename
        it: the name only ever holds a marked database. The aside name is derived from the
        final one and used only under its lock, so a leftover of an interrupted creation is
        simply replaced."""
        template = self.templates
        if template is not None:
            try:
                self._write_aside_and_rename(path, template)
                return
            except TemplateUnusable as exc:
                self.template_problem = str(exc)
                self.templates = None
        self._write_aside_and_rename(path, None)

    @staticmethod
    def _write_aside_and_rename(path: Path, template: SQLiteTemplates | None) -> None:
        aside = path.with_name(path.name + ".creating")
        SQLiteTestDatabase.delete_file(aside)
        if template is None:
            SQLiteTestDatabase.write_marked_file(aside)
        else:
            template.create_copy(aside)
        os.replace(aside, path)

    @staticmethod
    def write_marked_file(path: Path) -> None:
        """A new SQLite database holding the plugin's mark."""
        import sqlite3

        connection = sqlite3.connect(path)
        try:
            connection.execute(f"CREATE TABLE {OWNER_TABLE} (created_by VARCHAR(40) PRIMARY KEY)")
            connection.execute(f"INSERT INTO {OWNER_TABLE} VALUES ('pytest-sessionmaker')")
            connection.commit()
        finally:
            connection.close()

    @staticmethod
    def delete_file(path: Path) -> None:
        for leftover in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)

    def recreate(self) -> None:
        """Delete the claimed file and create it again, keeping the lock beside it."""
        self.delete_file(self.path)
        self._create(self.path)

    def recreate_from_new_template(self) -> None:
        """The copy did not match its template: drop both, build the template again."""
        assert self.templates is not None
        self.templates.discard()
        self.templates.use = TemplateUse(self.templates.key)
        self.recreate()

    def recreate_without_template(self) -> None:
        self.templates = None
        self.recreate()

    def release(self, drop: bool) -> None:
        if self._lock is None:
            return
        try:
            if drop:
                self.delete_file(self.path)
        finally:
            self._lock.release()
            Path(self._lock.lock_file).unlink(missing_ok=True)
            self._lock = None


def refuse_missing_directory(database: Path) -> None:
    """A SQLite file in a directory that does not exist: say so (the lock file would create
    the directory, and sqlite3 would fail with "unable to open database file")."""
    directory = database.parent
    if not directory.is_dir():
        raise DatabaseUnavailable(
            f"The directory {directory} of the SQLite database {database} does not exist; "
            "create it, or correct the path in the URL (--db-url, $PYTEST_DB_URL or the db_url "
            "ini key)."
        )


def claim_test_database(
    url: URL,
    worker: str | None,
    *,
    reuse: bool,
    template: tuple[TemplateKey, Callable[[URL], str]] | None = None,
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
    if template is not None:
        database.use_templates(*template)
    database.claim(reuse)
    return database
