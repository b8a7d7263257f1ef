"""One test's database work, owned by one object: :class:`TestTransaction`.

It holds the test's connection and transaction, the sessionmaker and sessions handed to the test,
the application's factories bound for the test, and what happened; it is made when the test first
needs the database and ended once, after every function-scoped fixture of the test. Nothing of a
test outlives it: the next test gets a new one (and a new sessionmaker), so a test that
reconfigures what it was given cannot reach the next test.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from pytest_sessionmaker.dialects import TestEnding
from pytest_sessionmaker.errors import SessionmakerError, scrub

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Connection, Engine, RootTransaction

    from pytest_sessionmaker.application import TestBinding
    from pytest_sessionmaker.markers import CommitOptions
    from pytest_sessionmaker.queries import ConnectionRecording
    from pytest_sessionmaker.run import DatabaseRun
    from pytest_sessionmaker.threads import SharedConnection

COMMIT_MARKER_HINT = (
    "If the test needs real commits, mark it with @pytest.mark.db_commit; otherwise commit "
    "through db_session / db_sessionmaker, whose commits the plugin turns into savepoints."
)


class TestTransaction:
    """One test's connection, transaction, sessions and bound application factories.

    Rolled-back mode: the connection is in a transaction that ``end`` rolls back; sessions are
    bound to the connection with ``join_transaction_mode="create_savepoint"``, so their commits
    release savepoints. Commit mode (``db_commit``): sessions are bound to the engine and commit
    for real; ``end`` restores the tables afterwards.
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, run: DatabaseRun, commit: CommitOptions | None) -> None:
        self.run = run
        self.commit_mode = commit is not None
        self.connection: Connection = run.take_connection()
        self._transaction: RootTransaction | None = None
        self._guarded = False
        self._sessionmaker: sessionmaker[Session] | None = None
        self._sessions: list[Session] = []
        self._bound: TestBinding | None = None
        self._ended = False
        # The rollback is scheduled by the first of the plugin's fixtures set up in the test.
        self.rollback_scheduled = False
        # A fixture with teardown code was set up before that: look at the change log again
        # once every fixture is torn down (after_fixtures).
        self.look_after_fixtures = False
        # The thread the test runs in, and the lock that serialises the connection once
        # another thread uses it (threads.py).
        self.thread = threading.get_ident()
        self._shared: SharedConnection | None = None
        self._application_problems: list[str] = []
        # db_commit: the sessions' engine, sharing the run's pool. A query recorder can listen
        # to it without making the run's engine dispatch events for every later test.
        self._commit_engine = run.engine.execution_options() if commit is not None else None
        # The test's query recorders' listeners (queries.py), made when one is first used.
        self.recording: ConnectionRecording | None = None
        if not self.commit_mode:
            self._begin()
        if run.application is not None:
            self._bound = run.application.join_test(self)

    def _begin(self) -> None:
        try:
            self._transaction = self.connection.begin()
            self.run.support.begin_test(self.connection, change_log=self.run.has_change_log)
        except BaseException:
            self.run.discard(self.connection, invalidate=True)
            raise

    # -- what the fixtures hand out ---------------------------------------------------------

    @property
    def bind(self) -> Connection | Engine:
        """What sessions bind to: the test's connection, or in a db_commit test an engine of the
        run's pool."""
        return self._commit_engine if self._commit_engine is not None else self.connection

    def direct_connection(self) -> Connection:
        """The connection itself, for ``db_connection``.

        In a rolled-back test it gets a SAVEPOINT the first time: a Session the user binds to
        it with SQLAlchemy's default join mode ("conservative_savepoint") then releases and
        rolls back savepoints instead of ending the test's transaction.
        """
        if not self.commit_mode and not self._guarded:
            self._guarded = True
            if not self.connection.in_nested_transaction():
                with self._unrecorded():
                    self.connection.begin_nested()
        return self.connection

    def _unrecorded(self) -> contextlib.AbstractContextManager[None]:
        """Around the plugin's own statements sent while the test may be recording."""
        if self.recording is None:
            return contextlib.nullcontext()
        return self.recording.paused()

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        """This test's own sessionmaker (made on first use): reconfiguring it changes nothing
        for later tests."""
        if self._sessionmaker is None:
            self._sessionmaker = sessionmaker(bind=self.bind, **self.run.session_options(self))
        return self._sessionmaker

    def session(self) -> Session:
        """``db_session``: a session like db_sessionmaker's, closed when the test ends."""
        if self._sessionmaker is not None:
            session = self._sessionmaker()
        else:
            options = self.run.session_options(self)
            session_class: type[Session] = options.pop("class_", Session)
            session = session_class(bind=self.bind, **options)
        self._sessions.append(session)
        return session

    def session_dependency(self) -> Iterator[Session]:
        """``db_session_dependency``: one session per call, for FastAPI's
        ``app.dependency_overrides[get_db]``; closed after the request, and at the latest when
        the test ends."""
        if threading.get_ident() != self.thread:
            self.share_with_threads()
        session = self.sessionmaker()
        self._sessions.append(session)
        with session:
            yield session

    # -- other threads ----------------------------------------------------------------------

    def share_with_threads(self) -> None:
        """Another thread uses the test's connection: serialise its statements from now on."""
        if self._shared is None and not self._ended:
            from pytest_sessionmaker.threads import SharedConnection

            self._shared = SharedConnection(self.connection)

    @contextlib.contextmanager
    def _threads_kept_out(self) -> Iterator[None]:
        """Hold the connection while the test ends; then stop sharing it."""
        if self._shared is None:
            yield
            return
        shared = self._shared
        try:
            with shared.exclusive():
                yield
        finally:
            shared.stop()

    def _leave_application(self) -> None:
        """Close the sessions the application's factories made (in any thread), put the
        factories back as they were between tests; note a factory changed by the test."""
        bound, self._bound = self._bound, None
        if bound is not None:
            self._application_problems = bound.leave()

    # -- the end -----------------------------------------------------------------------------

    def end(self) -> str | None:
        """End the test's database work, once; return a problem to report, or None.

        After a rolled-back test the dialect's end_test rolls back and reads the change log in
        as few round trips as the protocol allows; any table in it was written by a transaction
        that committed: an escape, which is restored and reported.
        """
        if self._ended:
            return None
        self._ended = True
        if self.recording is not None:
            self.recording.close()
        problems: list[str] = []
        with self._threads_kept_out():
            try:
                if self.commit_mode:
                    # First: an open session of the application would hold locks the restore
                    # needs.
                    self._leave_application()
                    problems.extend(self._end_commit_test())
                else:
                    problems.extend(self._end_rolled_back_test())
            finally:
                self._leave_application()
        problems[:0] = self._application_problems
        return scrub(" ".join(problems)) if problems else None

    def after_fixtures(self) -> str | None:
        """After the test's last fixture is torn down: what fixtures torn down after the
        rollback committed is this test's escape too. Ends the run's hold on the test."""
        try:
            if self.commit_mode:
                # Whatever they wrote is restored like the test's own commits.
                failure = self._restore() if self.look_after_fixtures else None
                return scrub(failure) if failure else None
            if not self.look_after_fixtures:
                return None
            ending = self.run.read_change_log()
            what = describe_ending(ending, [])
            if what is None:
                return None
            failure = self._restore()
            message = describe_breach(
                f"a fixture of the test, in its teardown: {what}",
                restored=self.run.has_change_log and failure is None,
            )
            return scrub(f"{message} {failure}" if failure else message)
        finally:
            self.run.transaction_ended(self)

    def _close_sessions(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def _end_commit_test(self) -> list[str]:
        connection = self.connection
        ending = TestEnding()
        try:
            # Closed first: a session left in a transaction would hold locks the restore needs.
            self._close_sessions()
            if not (connection.closed or connection.invalidated):
                # What the test committed is the restorer's; here only the session state.
                ending = self.run.support.end_test(connection, change_log=False)
        finally:
            self._hand_back(connection, ending)
        failure = self._restore()
        return [failure] if failure else []

    def _restore(self, *, every_table: bool = False) -> str | None:
        """Put the baseline back; the failure to do so, in a sentence, or None."""
        try:
            self.run.restore(every_table=every_table)
        except SessionmakerError as exc:
            return str(exc)
        return None

    def _end_rolled_back_test(self) -> list[str]:
        connection = self.connection
        ending = TestEnding()
        try:
            if connection.closed or connection.invalidated:
                # Its pool rolled a closed connection back; what escaped is in the change log.
                ending = self.run.read_change_log()
            else:
                ending = self._end_on(connection)
        finally:
            try:
                # After the ROLLBACK: closed before it, each session would first roll back its
                # own savepoint, a round trip the ROLLBACK makes redundant. The same holds for
                # the sessions the application's factories made.
                self._close_sessions()
                self._leave_application()
            finally:
                self._hand_back(connection, ending)
        what = describe_ending(ending, self.run.watched_commits(self))
        if what is None:
            return []
        # A commit of the test's own transaction may have included a TRUNCATE the change log
        # cannot see (MySQL): then every table is checked, not only the logged ones.
        failure = self._restore(
            every_table=ending.transaction_committed and not self.run.support.logs_truncate
        )
        return [describe_breach(what, restored=self.run.has_change_log and failure is None)] + (
            [failure] if failure else []
        )

    def _end_on(self, connection: Connection) -> TestEnding:
        dbapi_connection = connection.connection.dbapi_connection
        autocommit = dbapi_connection is not None and self.run.support.left_autocommit(
            dbapi_connection
        )
        # The test committed or rolled back the plugin's transaction through SQLAlchemy (seen
        # for free: the transaction object changed). Session state it set may have been
        # committed with it, so the connection goes back to its pool, whose reset clears it.
        ended_by_test = connection.get_transaction() is not self._transaction
        ending = self.run.support.end_test(connection, change_log=self.run.has_change_log)
        if autocommit:
            ending = ending._replace(autocommit=True, discard=True)
        if ended_by_test:
            ending = ending._replace(ended_by_test=True)
        return ending

    def _hand_back(self, connection: Connection, ending: TestEnding) -> None:
        """Keep the connection for the next test when nothing of this one is left on it."""
        usable = not (connection.closed or connection.invalidated)
        clean = (
            usable
            # A connection that had listeners for other threads dispatches events for good.
            and self._shared is None
            and not (
                ending.escaped
                or ending.transaction_committed
                or ending.discard
                or ending.ended_by_test
            )
            and connection.get_execution_options() == self.run.engine.get_execution_options()
            # A recorded connection keeps dispatching events after its listeners are removed
            # (SQLAlchemy leaves the flag set); kept, it would cost every later test's
            # statements. The pool hands out a new Connection object, which does not.
            and not (self.recording is not None and self.recording.listened)
        )
        if clean:
            self.run.give_back(connection)
        else:
            self.run.discard(connection, invalidate=usable and ending.discard)


def describe_ending(ending: TestEnding, watched: list[str]) -> str | None:
    """What the test made permanent, in a phrase; None when nothing escaped."""
    parts: list[str] = list(dict.fromkeys(watched))
    if ending.autocommit:
        parts.append(
            "it switched the DBAPI connection to autocommit, so its statements committed at once"
        )
    tables = ", ".join(ending.escaped)
    # Rows committed while the test ended the plugin's transaction through SQLAlchemy: its own
    # commit, even where the backend cannot tell connections apart (SQLite).
    own = ending.transaction_committed or (
        ending.ended_by_test and bool(ending.escaped) and not ending.other_connections
    )
    if own:
        parts.append(
            "the test's own transaction was committed (a COMMIT statement, commit() on the "
            "SQLAlchemy or DBAPI connection behind db_session or db_connection, or on "
            "MySQL/MariaDB a statement that commits implicitly, such as CREATE TABLE or "
            "TRUNCATE)" + (f", writing to {tables}" if tables else "")
        )
    if ending.other_connections:
        parts.append(
            f"another connection committed rows to {tables} (a second engine, "
            "db_engine.connect() or begin(), or an engine of the application)"
        )
    if ending.escaped and not (own or ending.other_connections):
        parts.append(
            f"rows written to {tables} were committed outside the test's transaction (by a "
            "COMMIT of the test's own transaction, or through another connection: a second "
            "engine, db_engine.connect() or begin(), or an engine of the application)"
        )
    return "; ".join(parts) if parts else None


def describe_breach(what: str, restored: bool) -> str:
    after = (
        "The plugin restored the tables it owns, so the next test starts clean."
        if restored
        else "Committed rows may remain in the database."
    )
    return f"This test committed outside its rolled-back transaction: {what}. {after} " + (
        COMMIT_MARKER_HINT
    )
