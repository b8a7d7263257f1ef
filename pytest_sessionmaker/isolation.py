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
    """A connection in a transaction that is rolled back when the test ends.

    Besides the outer transaction a SAVEPOINT is opened: a Session the user binds to this
    connection with the default join mode ("conservative_savepoint") then behaves like
    "create_savepoint" instead of rolling back the outer transaction, so it is guarded too.
    """

    def __init__(self, engine: Engine, guard: BreachGuard) -> None:
        self.engine = engine
        self.guard = guard

    def begin(self) -> Connection:
        connection = self.engine.connect()
        connection.begin()
        connection.begin_nested()
        self.guard.start(connection)
        return connection

    def end(self, connection: Connection) -> list[str]:
        """Roll everything back and return the breaches seen during the test."""
        breaches = self.guard.stop()
        try:
            if connection.in_transaction():
                connection.rollback()
        finally:
            connection.close()
        return breaches


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
