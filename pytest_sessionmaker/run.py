"""The run's database: engine, tables, breach guard and restorer, prepared once per process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import sessionmaker

from pytest_sessionmaker.commit import TableRestorer
from pytest_sessionmaker.engines import create_test_engine
from pytest_sessionmaker.errors import (
    DatabaseUnavailable,
    SchemaConflict,
    SessionmakerError,
    connect_error_message,
    hide_secrets,
)
from pytest_sessionmaker.isolation import BreachGuard, RolledBackTest, describe_breaches
from pytest_sessionmaker.schema import Schema, load_metadata

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.orm import Session

    from pytest_sessionmaker.config import Settings
    from pytest_sessionmaker.markers import CommitOptions
    from pytest_sessionmaker.rebind import SessionFactory

REFUSED_SESSION_OPTIONS = {
    "bind": "the plugin binds sessions to the test's connection",
    "binds": "the plugin binds sessions to the test's connection",
    "join_transaction_mode": "the plugin needs 'create_savepoint' so commits become savepoints",
}


def refuse_unsafe_session_options(options: Mapping[str, Any]) -> None:
    for key, reason in REFUSED_SESSION_OPTIONS.items():
        if key in options:
            raise ValueError(
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
        self.engine: Engine = create_test_engine(url, engine_options)
        self.guard = BreachGuard()
        self.guard.watch_engine(self.engine, "db_engine")
        # The same database through an engine without listeners (see RolledBackTest). A
        # rewritten in-memory SQLite URL names the same shared database.
        self.quiet_engine: Engine = create_test_engine(self.engine.url, engine_options)
        self.rolled_back = RolledBackTest(self.engine, self.quiet_engine, self.guard)
        self.sessionmaker: sessionmaker[Session] = sessionmaker(
            join_transaction_mode="create_savepoint", **session_options
        )
        self.schema: Schema | None = None
        self.restorer: TableRestorer | None = None
        self.reused_schema = False
        # What db_sessionmaker binds to: None for the test's connection, the engine in
        # db_commit tests.
        self.session_bind: Engine | None = None
        # db_session's session, closed by end_test / end_commit_test.
        self._sessions: list[Session] = []
        # The current test's connection, between begin_test / begin_commit_test and the end.
        self.test_connection: Connection | None = None
        # The application's session factories, bound to each test's connection.
        self.application_factories: tuple[SessionFactory, ...] = ()
        self._keeper: Any = None
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after the engine is disposed (e.g. to drop the test database)."""
        self._on_close.append(callback)

    def prepare(self) -> None:
        """Connect once, create the tables and the change log; raise DatabaseUnavailable."""
        try:
            with self.engine.connect():
                pass
        except Exception as exc:
            raise DatabaseUnavailable(connect_error_message(self.url, exc)) from None
        self._keeper = keep_memory_database_alive(self.engine)
        if not self.settings.metadata_paths:
            return
        self.schema = Schema(load_metadata(self.settings.metadata_paths))
        if self.settings.schema_mode == "create":
            self.reused_schema = self.schema.create(self.engine, reuse=self.settings.reuse_database)
        owns_tables = self.settings.schema_mode == "create" or self.owns_database
        if owns_tables and TableRestorer.supports(self.engine):
            self.restorer = TableRestorer(self.engine, self.schema.tables)
            self.restorer.install()
        self.guard.committed_between_tests = False

    def close(self) -> None:
        """Remove what the run created (unless the database is kept for reuse)."""
        keep = self.settings.reuse_database and self.owns_database
        try:
            self.rolled_back.release()
            if self.restorer is not None:
                self.restorer.uninstall()
            if self.schema is not None and not keep:
                self.schema.drop(self.engine)
        finally:
            if self._keeper is not None:
                self._keeper.close()
            self.quiet_engine.dispose()
            self.engine.dispose()
            for callback in self._on_close:
                callback()

    def _accept_commits_between_tests(self) -> None:
        """Rows committed between tests (seed fixtures) become part of the baseline."""
        if self.restorer is not None and self.guard.committed_between_tests:
            # The restorer works on connections of its own: the kept one goes back first, so a
            # pool of one connection does not wait for itself.
            self.rolled_back.release()
            self.restorer.checkpoint()
        self.guard.committed_between_tests = False

    def begin_test(self, *, direct: bool = False) -> Connection:
        """The test's connection in a transaction that end_test rolls back.

        ``direct``: the test gets the connection itself (db_connection); see RolledBackTest.
        """
        self._accept_commits_between_tests()
        self.session_bind = None
        self.test_connection = self.rolled_back.begin(direct=direct)
        return self.test_connection

    def begin_commit_test(self, options: CommitOptions) -> Connection:
        """A plain connection: commits are real; the written tables are restored afterwards."""
        if self.restorer is None and not options.allow_unrestored:
            raise SessionmakerError(
                "This db_commit test cannot be undone exactly: the plugin restores only tables "
                "it created or tables in a test database it created, and here it has neither "
                "(db_database = as_given with db_schema = none, or no db_metadata). Its commits "
                "would stay in the database. Use a database of the plugin's (db_database = "
                "derive), or mark the test @pytest.mark.db_commit(allow_unrestored=True) to "
                "accept that."
            )
        self._accept_commits_between_tests()
        self.rolled_back.release()
        self.session_bind = self.engine
        self.test_connection = self.engine.connect()
        return self.test_connection

    def test_session(self, connection: Connection) -> Session:
        """db_session's session: bound like db_sessionmaker's, closed when the test ends."""
        session = self.sessionmaker(bind=self.session_bind or connection)
        self._sessions.append(session)
        return session

    def _take_sessions(self) -> list[Session]:
        sessions, self._sessions = self._sessions, []
        return sessions

    def _restore(self, restorer: TableRestorer) -> list[str]:
        """Put back the tables written since the baseline; the restore's own commits are no
        seed data."""
        written = restorer.restore()
        self.guard.committed_between_tests = False
        return written

    def end_commit_test(self, connection: Connection) -> str | None:
        self.test_connection = None
        try:
            # Closed first: a session left in a transaction would hold locks the restore needs.
            for session in self._take_sessions():
                session.close()
            if connection.in_transaction():
                connection.rollback()
        finally:
            connection.close()
        if self.restorer is not None:
            self._restore(self.restorer)
        return None

    def end_test(self, connection: Connection) -> str | None:
        """Roll the test back; describe any breach (after repairing it where possible)."""
        self.test_connection = None
        breaches, unwatched_end = self.rolled_back.end(connection, self._take_sessions())
        if unwatched_end and not breaches and self.restorer is not None:
            # Committed or rolled back? Only rows left in the change log tell. (Without a
            # restorer the plugin cannot tell, and says nothing.)
            written = self._restore(self.restorer)
            if not written:
                return None
            breach = (
                "the test committed its own transaction (commit() on the connection behind "
                f"db_session), writing to {', '.join(written)}"
            )
            return hide_secrets(describe_breaches([breach], restored=True), self.url)
        if not breaches:
            return None
        restored = self.restorer is not None
        if self.restorer is not None:
            self._restore(self.restorer)
        return hide_secrets(describe_breaches(breaches, restored), self.url)


__all__ = ["DatabaseRun", "DatabaseUnavailable", "SchemaConflict"]
