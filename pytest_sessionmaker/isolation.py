"""One test's transaction: begin it, watch for commits that escape it, roll it back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import event

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

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

    The connection is checked out of the pool once and kept while tests end clean: their ROLLBACK
    already undoes what they did on it (rows, DDL, and on PostgreSQL and SQLite also SET values and
    temporary tables), so a pool check-in, its reset statements and a new checkout per test would
    be round trips for nothing. A test that leaves more behind gives the connection back to the
    pool, whose reset clears the session state, and the next test checks out another one: when
    something committed (a breach), when the test changed the connection's execution options, or
    when it closed or invalidated the connection.

    With ``savepoint`` a SAVEPOINT is opened inside the transaction, for tests that get the
    connection itself: a Session the user binds to it with the default join mode
    ("conservative_savepoint") then only releases and rolls back savepoints, like the plugin's
    own "create_savepoint" sessions, instead of rolling back the test's transaction.
    """

    def __init__(self, engine: Engine, guard: BreachGuard) -> None:
        self.engine = engine
        self.guard = guard
        self._held: Connection | None = None

    def begin(self, *, savepoint: bool) -> Connection:
        connection = self._held
        if connection is None or connection.closed or connection.invalidated:
            connection = self._held = self.engine.connect()
        connection.begin()
        if savepoint:
            connection.begin_nested()
        self.guard.start(connection)
        return connection

    def end(self, connection: Connection) -> list[str]:
        """Roll everything back and return the breaches seen during the test."""
        breaches = self.guard.stop()
        keep = False
        try:
            if not connection.closed and connection.in_transaction():
                connection.rollback()
            keep = not breaches and self._reusable(connection)
        finally:
            if not keep:
                self.release()
        return breaches

    def _reusable(self, connection: Connection) -> bool:
        return (
            connection is self._held
            and not connection.closed
            and not connection.invalidated
            and connection.get_execution_options() == self.engine.get_execution_options()
        )

    def release(self) -> None:
        """Give the kept connection back to the pool (its reset runs there)."""
        connection, self._held = self._held, None
        if connection is not None:
            connection.close()


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
