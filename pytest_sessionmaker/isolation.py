"""One test's transaction: begin it, watch for commits that escape it, roll it back."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import event

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Connection, Engine, RootTransaction
    from sqlalchemy.orm import Session

COMMIT_MARKER_HINT = (
    "If the test needs real commits, mark it with @pytest.mark.db_commit; otherwise commit "
    "through db_session / db_sessionmaker, whose commits the plugin turns into savepoints."
)


class BreachGuard:
    """Notices commits that would make a rolled-back test's work permanent.

    The listener is registered once per engine for the whole run (adding and removing event
    listeners per test costs more than the check itself); between tests it does nothing.
    """

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.breaches: list[str] = []
        # Commits between tests (a session fixture seeding data) set this, so the restorer
        # takes them into its baseline instead of undoing them.
        self.committed_between_tests = False
        self._engines: list[Engine] = []

    def watch_engine(self, engine: Engine, name: str) -> None:
        def on_commit(connection: Connection) -> None:
            if self.connection is None:
                self.committed_between_tests = True
                return
            if connection is self.connection:
                self.breaches.append("db_connection.commit() committed the test's own transaction")
            else:
                self.breaches.append(
                    f"a second connection of {name} committed "
                    "(engine.connect() + commit(), engine.begin() or a Session bound to the engine)"
                )

        event.listen(engine, "commit", on_commit)
        self._engines.append(engine)

    def start(self, connection: Connection) -> None:
        self.connection = connection
        self.breaches = []

    def stop(self) -> list[str]:
        breaches, self.connection, self.breaches = self.breaches, None, []
        return breaches


class RolledBackTest:
    """The connection of the rolled-back tests: one transaction per test, rolled back after it.

    The connection is checked out once and kept while tests end clean: their ROLLBACK already
    undoes what they did on it (rows, DDL, and on PostgreSQL and SQLite also SET values and
    temporary tables), so a pool check-in, its reset statements and a new checkout per test would
    be round trips for nothing. A test that leaves more behind gives the connection back to its
    pool, whose reset clears the session state, and the next test checks out another one: when
    something committed, when the test ended the transaction itself, changed the connection's
    execution options, or closed or invalidated it.

    Two engines of the same URL and options serve it. Tests that get the connection itself
    (``direct``: they request db_connection) use ``watched``, the engine whose commit listener
    reports a ``commit()`` on it; they also get a SAVEPOINT inside the transaction, so a Session
    the user binds to it with the default join mode ("conservative_savepoint") only releases and
    rolls back savepoints instead of rolling back the test's transaction. The other tests reach
    the connection only through the plugin's sessions, which turn commits into savepoint
    releases; they use ``quiet``, an engine without event listeners. Any connection event
    listener makes SQLAlchemy dispatch events around every statement of every connection of
    its engine, which cost these tests more than anything else the plugin does per test.
    """

    def __init__(self, watched: Engine, quiet: Engine, guard: BreachGuard) -> None:
        self.watched = watched
        self.quiet = quiet
        self.guard = guard
        self._held: Connection | None = None
        self._transaction: RootTransaction | None = None

    def begin(self, *, direct: bool) -> Connection:
        engine = self.watched if direct else self.quiet
        connection = self._held
        if connection is not None and (
            connection.engine is not engine or connection.closed or connection.invalidated
        ):
            self.release()
            connection = None
        if connection is None:
            connection = self._held = engine.connect()
        self._transaction = connection.begin()
        if direct:
            connection.begin_nested()
        self.guard.start(connection)
        return connection

    def end(self, connection: Connection, sessions: Iterable[Session] = ()) -> Ending:
        """Roll everything back and close ``sessions``; say what the test did besides.

        The sessions are closed after the ROLLBACK: closed before it, each would first roll
        back its own savepoint, a round trip that the ROLLBACK makes redundant.
        """
        breaches = self.guard.stop()
        transaction, self._transaction = self._transaction, None
        ended_by_test = connection.closed or connection.get_transaction() is not transaction
        keep = False
        try:
            if not connection.closed and connection.in_transaction():
                connection.rollback()
            keep = not breaches and not ended_by_test and self._reusable(connection)
        finally:
            try:
                for session in sessions:
                    session.close()
            finally:
                if not keep:
                    self.release()
        return Ending(breaches, ended_by_test and connection.engine is self.quiet)

    def _reusable(self, connection: Connection) -> bool:
        return (
            connection is self._held
            and not connection.invalidated
            and connection.get_execution_options() == connection.engine.get_execution_options()
        )

    def release(self) -> None:
        """Give the kept connection back to its pool (its reset runs there)."""
        connection, self._held = self._held, None
        if connection is not None:
            connection.close()


class Ending(NamedTuple):
    """How a rolled-back test ended."""

    breaches: list[str]
    # The test committed or rolled back the quiet connection's transaction itself: no event
    # says which, so the caller looks for committed rows.
    unwatched_end: bool


def describe_breaches(breaches: list[str], restored: bool) -> str:
    what = "; ".join(dict.fromkeys(breaches))
    after = (
        "The plugin restored the tables it owns, so the next test starts clean."
        if restored
        else "Committed rows may remain in the database."
    )
    return (
        f"This test committed outside its rolled-back transaction: {what}. {after} "
        + COMMIT_MARKER_HINT
    )
