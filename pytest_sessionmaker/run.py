"""The run's database: engine, tables, change log and baseline, prepared once per process.

Everything here lives for the whole run (or xdist worker). What belongs to one test lives on
that test's :class:`~pytest_sessionmaker.transaction.TestTransaction`; the run only lends it a
connection, keeps that connection between tests that leave nothing on it, and restores the
baseline after a test that committed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from pytest_sessionmaker.dialects import TestEnding, support_for_url
from pytest_sessionmaker.dialects.base import ending
from pytest_sessionmaker.engines import create_test_engine
from pytest_sessionmaker.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    SessionmakerError,
    connect_error_message,
)
from pytest_sessionmaker.reflection import refuse_empty_test_database
from pytest_sessionmaker.report import OneTimeCosts
from pytest_sessionmaker.restore import RestoreFailed, SchemaChanged, TableRestorer
from pytest_sessionmaker.schema import Schema, load_metadata
from pytest_sessionmaker.teardown import remove_run_objects
from pytest_sessionmaker.transaction import TestTransaction

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from pytest_sessionmaker.application import ApplicationSessions
    from pytest_sessionmaker.async_transaction import AsyncTestTransaction
    from pytest_sessionmaker.config import Settings
    from pytest_sessionmaker.markers import CommitOptions
    from pytest_sessionmaker.rebind import SessionFactory, bound_to
    from pytest_sessionmaker.templates import TemplateUse

REFUSED_SESSION_OPTIONS = {
    "bind": "the plugin binds sessions to the test's connection",
    "binds": "the plugin binds sessions to the test's connection",
    "join_transaction_mode": "the plugin needs 'create_savepoint' so commits become savepoints",
}


def refuse_unsafe_session_options(options: Mapping[str, Any]) -> None:
    for key, reason in REFUSED_SESSION_OPTIONS.items():
        if key in options:
            raise ConfigurationError(
                f"db_session_options may not set {key!r}: {reason}. Remove it; for real commits "
                "mark the test with @pytest.mark.db_commit."
            )


def keep_memory_database_alive(engine: Engine) -> Any:
    """A shared in-memory SQLite database lives while one connection to it is open.

    The connection is opened outside the pool so that it takes no pool slot.
    """
    if engine.dialect.name != "sqlite" or "mode=memory" not in str(engine.url.database):
        return None
    import sqlite3

    return sqlite3.connect(str(engine.url.database), uri=True)


class DatabaseRun:
    """Everything about the database that lives for the whole run (or xdist worker)."""

    def __init__(
        self,
        settings: Settings,
        url: URL,
        engine_options: Mapping[str, Any],
        session_options: Mapping[str, Any],
        *,
        owns_database: bool,
    ) -> None:
        refuse_unsafe_session_options(session_options)
        self.settings = settings
        self.url = url
        self.owns_database = owns_database
        self.support = support_for_url(url)
        # A copy: a test that mutates the fixture's dict cannot change later tests' sessions.
        self._session_options = dict(session_options)
        self.engine: Engine = create_test_engine(url, engine_options, self.support)
        self.schema: Schema | None = None
        self.restorer: TableRestorer | None = None
        self.reused_schema = False
        # The application's session factories, bound to each test's connection.
        self.application_factories: tuple[SessionFactory, ...] = ()
        # The application's factories and engines, guarded for the run (application.py).
        self.application: ApplicationSessions | None = None
        # The test now using the database in this process, if any.
        self.active: TestTransaction | AsyncTestTransaction | None = None
        # The URL as the user gave it (an async driver it names serves db_async_engine).
        self.given_url: URL = url
        self._async_engine: AsyncEngine | None = None
        # The application's async_sessionmaker / async_scoped_session objects (async_rebind.py).
        self.async_application_factories: tuple[Any, ...] = ()
        self._async_between_tests: bound_to | None = None
        # The connection kept between tests that leave nothing on it (see take_connection).
        self._idle: Connection | None = None
        self._commit_watch: CommitWatch | None = None
        # A restore failed: the next one restores every table, before the next test begins.
        self._restore_pending = False
        self._keeper: Any = None
        self._on_close: list[Callable[[], None]] = []
        # Drops and creates the test database again (set when the run owns it).
        self.recreate_database: Callable[[], None] | None = None
        # The template the database was copied from (tables and change log included).
        self.template: TemplateUse | None = None
        self.costs = OneTimeCosts()

    @property
    def has_change_log(self) -> bool:
        return self.restorer is not None

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the engine is disposed (e.g. to drop the test database)."""
        self._on_close.append(callback)

    # -- the run's life ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Connect once, create the tables and the change log; raise DatabaseUnavailable."""
        try:
            connection = self.engine.connect()
        except Exception as exc:
            raise DatabaseUnavailable(connect_error_message(self.url, exc)) from exc
        with connection:
            self.support.check_server(connection)
        self._keeper = keep_memory_database_alive(self.engine)
        self.costs.template = self.template
        if self.template is not None and self.template.copied:
            self._prepare_from_template(self.template)
            return
        started = time.perf_counter()
        if self.settings.schema_mode == "alembic":
            self._prepare_migrated_tables()
        elif self.settings.schema_mode == "none" and self.owns_database:
            with self.engine.connect() as connection:
                refuse_empty_test_database(connection, self.url)
        if self.settings.schema_mode != "alembic" and self.settings.metadata_paths:
            self.schema = Schema(load_metadata(self.settings.metadata_paths))
            if self.settings.schema_mode == "create":
                self.reused_schema = self.schema.create(
                    self.engine, reuse=self.settings.reuse_database
                )
            self.costs.schema = time.perf_counter() - started
            started = time.perf_counter()
            owns_tables = self.settings.schema_mode == "create" or self.owns_database
            if owns_tables and self.support.has_change_log:
                self.restorer = TableRestorer(
                    self.engine,
                    self.support,
                    self.schema.tables,
                    every_sequence=self.owns_database,
                )
                self.restorer.install()
            self.costs.change_log = time.perf_counter() - started
        if self.restorer is None:
            # Without a change log, only commits made through db_engine's connections are
            # seen: a listener is the one way left, and its cost is that mode's price.
            self._commit_watch = CommitWatch(self)

    def _prepare_migrated_tables(self) -> None:
        """db_schema = alembic: migrate, then log every table the migrations made; the rows
        a data migration inserted are the baseline."""
        from pytest_sessionmaker.migrations import migrate

        started = time.perf_counter()
        tables = migrate(self)
        self.costs.schema = time.perf_counter() - started
        started = time.perf_counter()
        if self.support.has_change_log:
            self.restorer = TableRestorer(
                self.engine, self.support, tables, every_sequence=self.owns_database
            )
            self.restorer.install(existing_rows=True)
        self.costs.change_log = time.perf_counter() - started

    def _prepare_from_template(self, template: TemplateUse) -> None:
        """The database is a copy of a template that holds the tables and the change log:
        check that it holds what the template held when it was built (raise TemplateMismatch
        otherwise), then take the baseline as a fresh database's."""
        from pytest_sessionmaker.templates import TemplateMismatch, database_fingerprint

        started = time.perf_counter()
        if database_fingerprint(self) != template.fingerprint:
            raise TemplateMismatch(f"the copy of {template.key.name} differs from the template")
        if self.settings.schema_mode == "alembic":
            from pytest_sessionmaker.reflection import reflect_tables

            with self.engine.connect() as connection:
                tables = reflect_tables(connection).tables
        else:
            self.schema = Schema(load_metadata(self.settings.metadata_paths))
            self.schema.created = list(self.schema.tables)
            tables = self.schema.tables
        self.restorer = TableRestorer(
            self.engine, self.support, tables, every_sequence=self.owns_database
        )
        self.restorer.adopt(existing_rows=self.settings.schema_mode == "alembic")
        self.costs.schema = time.perf_counter() - started

    def make_template(self) -> str:
        """This run built a template: leave in it only what its copies need (no baseline
        snapshots), and return its fingerprint."""
        from pytest_sessionmaker.restore import drop_leftover_snapshots
        from pytest_sessionmaker.templates import database_fingerprint

        if self.restorer is None:
            from pytest_sessionmaker.templates import TemplateUnusable

            raise TemplateUnusable("the database has no change log to copy")
        with self.engine.begin() as connection:
            drop_leftover_snapshots(connection)
        return database_fingerprint(self)

    def abandon(self) -> None:
        """After a failed prepare: close the connections it opened (a failing migration, say),
        which would otherwise stay open until garbage collection; remove nothing."""
        if self._keeper is not None:
            self._keeper.close()
        self.engine.dispose()

    def close(self) -> None:
        """Remove what the run created (unless the database is kept for reuse)."""
        keep = self.settings.reuse_database and self.owns_database
        try:
            self._release_idle()
            # A database the run drops whole needs nothing removed first; its drop also ends
            # the sessions tests left in it, which the DDL would wait for.
            if keep or not self.owns_database:
                remove_run_objects(self, drop_tables=not keep)
        finally:
            if self._keeper is not None:
                self._keeper.close()
            if self._async_between_tests is not None:
                self._async_between_tests.__exit__(None, None, None)
                self._async_between_tests = None
            if self._async_engine is not None:
                # No pool (async_engines.py): nothing is open; only its dialect state goes.
                self._async_engine.sync_engine.dispose()
            self.engine.dispose()
            for callback in self._on_close:
                callback()

    # -- tests ------------------------------------------------------------------------------

    def begin_test(self, commit: CommitOptions | None) -> TestTransaction:
        """The test's transaction (or, for db_commit, its plain connection)."""
        self.ensure_baseline()
        if self.active is not None:
            raise SessionmakerError(
                "Two tests use the database at once in one process; pytest-sessionmaker "
                "supports one test at a time per process (use pytest-xdist for parallel runs)."
            )
        if commit is not None:
            if self.restorer is None and not commit.allow_unrestored:
                raise ConfigurationError(
                    "This db_commit test cannot be undone exactly: the plugin restores only "
                    "tables it created or tables in a test database it created, and here it has "
                    "neither (db_database = as_given with db_schema = none, or no db_metadata). "
                    "Its commits would stay in the database. Use a database of the plugin's "
                    "(db_database = derive), or mark the test "
                    "@pytest.mark.db_commit(allow_unrestored=True) to accept that."
                )
            if self.restorer is not None:
                # Rolled-back tests advance counters too (sequences are not transactional):
                # put them back so the first id a commit test inserts does not depend on order.
                self._release_idle()
                self.restorer.reset_moved_counters()
        self.active = TestTransaction(self, commit)
        return self.active

    def async_engine(self) -> AsyncEngine:
        """db_async_engine, made when an async fixture is first used (async_engines.py)."""
        if self._async_engine is None:
            from pytest_sessionmaker.async_engines import create_test_async_engine

            self._async_engine = create_test_async_engine(self, self.given_url)
        return self._async_engine

    def bind_async_factories(self, factories: Sequence[Any]) -> None:
        """The application's async factories: bound to db_async_engine between tests."""
        from pytest_sessionmaker.rebind import bound_to

        self.async_application_factories = tuple(factories)
        binding = bound_to(
            factories,
            self.async_engine(),  # type: ignore[arg-type]  # async factories configure alike
            savepoints=False,
            clear=False,
        )
        self._async_between_tests = binding.__enter__()

    def enter_async_test(self, transaction: AsyncTestTransaction) -> None:
        """An async test begins its rolled-back transaction (async_fixtures.py)."""
        self.ensure_baseline()
        if self.active is not None:
            raise SessionmakerError(
                "Two tests use the database at once in one process; pytest-sessionmaker "
                "supports one test at a time per process (use pytest-xdist for parallel runs)."
            )
        self.active = transaction

    def transaction_ended(self, transaction: TestTransaction | AsyncTestTransaction) -> None:
        if self.active is transaction:
            self.active = None

    def session_options(self, transaction: TestTransaction) -> dict[str, Any]:
        """Keywords for the test's sessionmaker and sessions (a fresh dict each time)."""
        return {"join_transaction_mode": "create_savepoint", **self._session_options}

    def session_options_for_async(self) -> dict[str, Any]:
        """The same keywords, for an async test's sessions (a fresh dict each time)."""
        return {"join_transaction_mode": "create_savepoint", **self._session_options}

    def take_connection(self) -> Connection:
        """The kept connection, or a new one.

        Checking a connection in and out of the pool per test costs a reset and round trips
        for nothing when the test's ROLLBACK already undid everything it did, so the run keeps
        one between such tests. The TestTransaction decides at its end whether its connection
        may be kept (give_back) or must go (discard).
        """
        connection, self._idle = self._idle, None
        if connection is not None and not (connection.closed or connection.invalidated):
            return connection
        try:
            return self.engine.connect()
        except Exception as exc:
            raise DatabaseUnavailable(connect_error_message(self.url, exc)) from exc

    def give_back(self, connection: Connection) -> None:
        self._idle = connection

    def discard(self, connection: Connection, *, invalidate: bool) -> None:
        """Hand the connection back to its pool (whose reset clears session state), or close
        the DBAPI connection for good when its state cannot be reset."""
        if invalidate and not connection.closed and not connection.invalidated:
            connection.invalidate()
        connection.close()

    def _release_idle(self) -> None:
        connection, self._idle = self._idle, None
        if connection is not None:
            connection.close()

    # -- what tests left behind ---------------------------------------------------------------

    def read_change_log(self) -> TestEnding:
        """What the change log holds, read on a connection of its own."""
        if self.restorer is None:
            return TestEnding()
        with self.engine.connect() as connection:
            # Read from another connection: nothing in the log was written by this one.
            found = self.support.read_change_log(connection)
            return ending([(name, None if own is None else False) for name, own in found], ())

    def watched_commits(self, transaction: TestTransaction) -> list[str]:
        """Commits seen by the listener of a run without change log."""
        if self._commit_watch is None:
            return []
        return self._commit_watch.take(transaction)

    def restore(self, *, every_table: bool = False) -> list[str]:
        """Put the baseline back after a test that committed; return the tables written.

        A restore that fails leaves the database as the test left it, never as a new
        baseline: the run retries before the next test (ensure_baseline) and stops if that
        fails too.
        """
        if self.restorer is None:
            return []
        # The restorer works on connections of its own: the kept one goes back first, so a
        # pool of one connection does not wait for itself.
        self._release_idle()
        try:
            try:
                written = self.restorer.restore(every_table=every_table or self._restore_pending)
            except SchemaChanged:
                written = self._rebuild_schema()
        except RestoreFailed as exc:
            self._restore_pending = True
            raise DatabaseUnavailable(
                f"The plugin could not put the tables back to their baseline ({exc}); it will "
                "try once more before the next test and stop the run if that fails too."
            ) from exc
        self._restore_pending = False
        return written

    def _rebuild_schema(self) -> list[str]:
        """DDL changed the schema: make the tables anew from the metadata and copy the
        baseline rows back. In a database of its own the plugin also drops the tables the test
        created; elsewhere it leaves them (they may not be the test's)."""
        if self.restorer is None or self.schema is None:
            raise RestoreFailed(
                "DDL changed the schema, and without db_metadata it cannot be rebuilt"
            )
        from sqlalchemy import inspect

        self.restorer.uninstall_triggers()
        try:
            with self.engine.begin() as connection:
                ours = {table.name for table in self.schema.tables}
                doomed = [table.name for table in reversed(self.schema.tables)]
                if self.owns_database:
                    extra = set(inspect(connection).get_table_names()) - ours
                    doomed += sorted(
                        name for name in extra if not name.startswith("pytest_sessionmaker")
                    )
                self.support.drop_tables(connection, doomed)
            for metadata in self.schema.metadata:
                metadata.create_all(self.engine)
        except DBAPIError as exc:
            raise RestoreFailed(f"rebuilding the schema failed: {exc.orig or exc}") from exc
        self.restorer.install_triggers()
        self.restorer.copy_back_everything()
        return [table.fullname for table in self.schema.tables]

    def ensure_baseline(self) -> None:
        """Before a test: retry a restore that failed after the previous one, or stop the run
        (pytest.exit) rather than let a test start from a state that is not the baseline."""
        if not self._restore_pending or self.restorer is None:
            return
        try:
            self.restore(every_table=True)
        except DatabaseUnavailable as exc:
            import pytest

            pytest.exit(
                "pytest-sessionmaker stops the run: the tables could not be put back to their "
                f"baseline after a test, so later tests would not start from it ({exc.__cause__}).",
                returncode=pytest.ExitCode.TESTS_FAILED,
            )

    def accept_baseline(self, owner: object | None = None) -> None:
        """What wider-scoped fixtures committed (seed data) becomes the state tests start from.

        Called after a session-, package-, module- or class-scoped fixture is set up or torn
        down, never while a test's transaction is open. With an ``owner`` (a module-, class- or
        package-scoped fixture), its commits are a level of their own, undone by
        ``end_scope(owner)`` when that fixture is torn down.
        """
        if self.restorer is None or self.active is not None:
            return
        self.ensure_baseline()
        self._release_idle()
        self.restorer.checkpoint(owner)

    def end_scope(self, owner: object) -> None:
        """A narrower-scoped fixture was torn down: undo the seed data it committed, or, if it
        committed none, take what its teardown committed into the baseline."""
        if self.restorer is None or self.active is not None:
            return
        self._release_idle()
        if self.restorer.owns_level(owner):
            self.restorer.pop(owner)
        else:
            self.accept_baseline()


class CommitWatch:
    """For runs without a change log: a ``commit`` listener on db_engine.

    It sees commits of SQLAlchemy connections of db_engine only (not a COMMIT statement, the
    DBAPI connection's commit(), or other engines), which is what can be seen without triggers.
    """

    def __init__(self, run: DatabaseRun) -> None:
        self.run = run
        self.seen: list[str] = []
        event.listen(run.engine, "commit", self._on_commit)

    def _on_commit(self, connection: Connection) -> None:
        active = self.run.active
        if active is None or active.commit_mode:
            return
        if connection is active.connection:
            self.seen.append("commit() on the test's own connection")
        else:
            self.seen.append("a commit on another connection of db_engine")

    def take(self, transaction: TestTransaction) -> list[str]:
        seen, self.seen = self.seen, []
        return seen
