"""One async test's database work: :class:`AsyncTestTransaction`, the async counterpart of
:class:`~pytest_sessionmaker.transaction.TestTransaction`.

It begins and ends in the test's own event loop (async_fixtures.py runs it there). The dialect
layer is the sync one, reused through ``AsyncConnection.run_sync``: the sync functions then run
in SQLAlchemy's greenlet, where the async driver's calls work as sync ones. So a test's
beginning, its ending and the search for escaped commits are the same code, the same statements
and the same messages for sync and async tests.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pytest_sessionmaker.dialects import TestEnding
from pytest_sessionmaker.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    SessionmakerError,
    scrub,
)
from pytest_sessionmaker.transaction import describe_breach, describe_ending

if TYPE_CHECKING:
    from sqlalchemy import Connection, orm
    from sqlalchemy.ext.asyncio import (
        AsyncConnection,
        AsyncEngine,
        AsyncSession,
        AsyncTransaction,
        async_sessionmaker,
    )

    from pytest_sessionmaker.async_connections import AsyncConnectionKeeper
    from pytest_sessionmaker.run import DatabaseRun


class AsyncTestTransaction:
    """One async test's connection, transaction and sessions.

    Rolled-back mode: a connection of db_async_engine in a transaction that ``end`` rolls back;
    sessions join it with ``join_transaction_mode="create_savepoint"``. Commit mode
    (``db_commit``): sessions are bound to db_async_engine and commit for real; the test's
    sync TestTransaction restores the tables afterwards, as for a sync test.
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(
        self,
        run: DatabaseRun,
        engine: AsyncEngine,
        *,
        commit_mode: bool,
        keeper: AsyncConnectionKeeper | None = None,
    ) -> None:
        self.run = run
        # Rolled-back tests only: a commit test's connection may hold what its commits left.
        self.keeper = None if commit_mode else keeper
        self.engine = engine
        self.commit_mode = commit_mode
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None
        self._guarded = False
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        self._sessions: list[AsyncSession] = []
        # Sync sessions on the same connection, for a test that shares it (shared.py).
        self._sync_sessionmaker: orm.sessionmaker[orm.Session] | None = None
        self._sync_sessions: list[orm.Session] = []
        self._ended = False
        # The loop the connection belongs to (set by begin).
        self.loop: asyncio.AbstractEventLoop | None = None

    async def begin(self) -> None:
        """Open the test's connection in the running loop and begin its transaction."""
        self.loop = asyncio.get_running_loop()
        self._connection = self.keeper.take() if self.keeper is not None else None
        if self._connection is None:
            try:
                self._connection = await self.engine.connect()
            except Exception as exc:
                from pytest_sessionmaker.errors import connect_error_message

                raise DatabaseUnavailable(connect_error_message(self.engine.url, exc)) from exc
        if self.commit_mode:
            return
        try:
            self._transaction = await self._connection.begin()
            if self.run.support.sends_at_begin(change_log=self.run.has_change_log):
                await self._connection.run_sync(self._begin_on)
        except BaseException:
            await self._connection.invalidate()
            await self._connection.close()
            raise

    def _begin_on(self, connection: Connection) -> None:
        self.run.support.begin_test(connection, change_log=self.run.has_change_log)

    # -- what the fixtures hand out ---------------------------------------------------------

    @property
    def bind(self) -> AsyncConnection | AsyncEngine:
        """What sessions bind to: the test's connection, or in a db_commit test the engine."""
        return self.engine if self.commit_mode else self.connection

    @property
    def connection(self) -> AsyncConnection:
        assert self._connection is not None, "begin() first"
        return self._connection

    async def direct_connection(self) -> AsyncConnection:
        """The connection itself, for ``db_async_connection``; guarded by a SAVEPOINT in a
        rolled-back test, as db_connection is (transaction.py says why)."""
        connection = self.connection
        if not self.commit_mode and not self._guarded:
            self._guarded = True
            if not connection.in_nested_transaction():
                await connection.begin_nested()
        return connection

    def session_options(self, async_options: dict[str, Any]) -> dict[str, Any]:
        """db_session_options, then db_async_session_options; a sync ``class_`` (a Session
        subclass) becomes the AsyncSession's ``sync_session_class``."""
        from sqlalchemy.ext.asyncio import AsyncSession

        from pytest_sessionmaker.run import REFUSED_SESSION_OPTIONS

        for key, reason in REFUSED_SESSION_OPTIONS.items():
            if key in async_options:
                raise ConfigurationError(
                    f"db_async_session_options may not set {key!r}: {reason}. Remove it; for "
                    "real commits mark the test with @pytest.mark.db_commit."
                )
        options = self.run.session_options_for_async()
        session_class = options.pop("class_", None)
        if session_class is not None and not issubclass(session_class, AsyncSession):
            options["sync_session_class"] = session_class
        elif session_class is not None:
            options["class_"] = session_class
        options.update(async_options)
        if self.commit_mode:
            options.pop("join_transaction_mode", None)
        return options

    def sessionmaker(self, async_options: dict[str, Any]) -> async_sessionmaker[AsyncSession]:
        """This test's own async_sessionmaker (made on first use)."""
        if self._sessionmaker is None:
            from sqlalchemy.ext.asyncio import async_sessionmaker

            self._sessionmaker = async_sessionmaker(
                bind=self.bind, **self.session_options(async_options)
            )
        return self._sessionmaker

    def session(self, async_options: dict[str, Any]) -> AsyncSession:
        """``db_async_session``: a session of the test's sessionmaker, closed at the end."""
        session = self.sessionmaker(async_options)()
        self._sessions.append(session)
        return session

    @property
    def sync_sessionmaker(self) -> orm.sessionmaker[orm.Session]:
        """db_sessionmaker of a test that shares this transaction: bound to the async
        connection's sync_connection (shared.py)."""
        if self._sync_sessionmaker is None:
            from sqlalchemy import orm

            self._sync_sessionmaker = orm.sessionmaker(
                bind=self.connection.sync_connection, **self.run.session_options_for_async()
            )
        return self._sync_sessionmaker

    def sync_session(self) -> orm.Session:
        session = self.sync_sessionmaker()
        self._sync_sessions.append(session)
        return session

    # -- the end ------------------------------------------------------------------------------

    async def end(self) -> str | None:
        """Roll back, look for escaped commits, close; a problem to report, or None."""
        if self._ended or self._connection is None:
            return None
        self._ended = True
        connection = self._connection
        if self.commit_mode:
            # The sync TestTransaction restores what the test committed, after this.
            try:
                await self._close_sessions()
            finally:
                await connection.close()
            return None
        ending = TestEnding()
        try:
            if connection.closed or connection.invalidated:
                ending = self.run.read_change_log()
            else:
                ending = await connection.run_sync(self._end_on)
        finally:
            try:
                await self._close_sessions()
            finally:
                await self._hand_back(connection, ending)
        what = describe_ending(ending, [])
        if what is None:
            return None
        failure: str | None = None
        try:
            self.run.restore(
                every_table=ending.transaction_committed and not self.run.support.logs_truncate
            )
        except SessionmakerError as exc:
            failure = str(exc)
        message = describe_breach(what, restored=self.run.has_change_log and failure is None)
        return scrub(f"{message} {failure}" if failure else message)

    async def _hand_back(self, connection: AsyncConnection, ending: TestEnding) -> None:
        """Keep the connection for the next test of the loop when nothing of this one is left
        on it (transaction.py's rule), else close it."""
        usable = not (connection.closed or connection.invalidated)
        clean = usable and not (
            ending.escaped or ending.transaction_committed or ending.discard or ending.ended_by_test
        )
        if clean and self.keeper is not None:
            self.keeper.keep(connection)
            return
        if usable and ending.discard:
            await connection.invalidate()
        await connection.close()

    def _end_on(self, connection: Connection) -> TestEnding:
        """In SQLAlchemy's greenlet: the sync end of a test (transaction.py's _end_on)."""
        dbapi_connection = connection.connection.dbapi_connection
        autocommit = dbapi_connection is not None and self.run.support.left_autocommit(
            dbapi_connection
        )
        assert self._transaction is not None
        ended_by_test = connection.get_transaction() is not self._transaction.sync_transaction
        ending = self.run.support.end_test(connection, change_log=self.run.has_change_log)
        if autocommit:
            ending = ending._replace(autocommit=True, discard=True)
        if ended_by_test:
            ending = ending._replace(ended_by_test=True)
        # After the ROLLBACK, as transaction.py closes its sessions.
        sync_sessions, self._sync_sessions = self._sync_sessions, []
        for session in sync_sessions:
            session.close()
        return ending

    async def _close_sessions(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            await session.close()
