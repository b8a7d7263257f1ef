"""The interface every dialect module implements, and what a backend without one gets."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from sqlalchemy import URL, event, text

from pytest_sessionmaker.errors import ConfigurationError, DatabaseUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from sqlalchemy import Connection, Engine, Table
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

CHANGE_LOG = "pytest_sessionmaker_changes"
# The change log's entry for "this test's own transaction was committed" (see begin_test).
TRANSACTION_MARK = ""
# Connection.info key: the connection ran a statement that can leave session state behind.
STATE_FLAG = "pytest_sessionmaker_state_left"
# Execution option on a statement the plugin sends itself: query recorders leave it out.
OWN_STATEMENT = "pytest_sessionmaker_own"

Counters = dict[str, tuple[int | None, bool]]


class TestEnding(NamedTuple):
    """What the end of a rolled-back test found on its connection."""

    # Tables written by transactions that committed (the change log after the rollback).
    escaped: tuple[str, ...] = ()
    # The test's own transaction was committed: the begin mark survived the rollback, or the
    # test's connection wrote rows that did.
    transaction_committed: bool = False
    # Other connections committed rows (False where the backend cannot tell connections apart).
    other_connections: bool = False
    # Session state the rollback does not undo, in a few words each.
    state_left: tuple[str, ...] = ()
    # The DBAPI connection holds such state: it must not serve another test.
    discard: bool = False
    # The test switched the DBAPI connection to autocommit behind SQLAlchemy's back.
    autocommit: bool = False
    # The test ended the plugin's transaction itself (commit or rollback through SQLAlchemy).
    ended_by_test: bool = False


class DialectSupport:
    """Backend-specific operations. One instance per run, made by ``support_for``."""

    name: ClassVar[str] = "generic"
    # Whether the plugin can log writes with triggers (needed for db_commit and escape checks).
    has_change_log: ClassVar[bool] = False
    # Whether each rolled-back test writes a mark into the change log when it begins, so that a
    # commit of the test's own transaction is found even when it wrote no table (DDL alone, or
    # an implicit commit on MySQL). Costs a statement per test: only where that is cheap or
    # needed.
    marks_transactions: ClassVar[bool] = False
    # pool "connect" event: statements that make a DBAPI connection usable for the plugin.
    driver_autocommit_options: ClassVar[tuple[str, ...]] = ("autocommit",)

    def __init__(self, driver: str) -> None:
        self.driver = driver

    # -- engines ---------------------------------------------------------------------------

    def refuse_engine_options(self, options: Mapping[str, Any]) -> None:
        """Refuse options that commit every statement at once, so nothing could be undone."""
        levels = [
            options.get("isolation_level"),
            dict(options.get("execution_options") or {}).get("isolation_level"),
        ]
        if any(str(level).upper() == "AUTOCOMMIT" for level in levels if level is not None):
            raise ConfigurationError(
                "db_engine_options sets isolation_level='AUTOCOMMIT', which commits every "
                "statement at once so no test could be rolled back; remove it, or mark the "
                "tests that need real commits with @pytest.mark.db_commit."
            )
        connect_args = dict(options.get("connect_args") or {})
        for key in self.driver_autocommit_options:
            if connect_args.get(key) is True:
                raise ConfigurationError(
                    f"db_engine_options sets connect_args={{{key!r}: True}}, which makes the "
                    "driver commit every statement at once so no test could be rolled back; "
                    "remove it, or mark the tests that need real commits with "
                    "@pytest.mark.db_commit."
                )

    def engine_url(self, url: URL) -> URL:
        """The URL the run's engine connects to (SQLite rewrites an in-memory one)."""
        return url

    def engine_defaults(self, url: URL) -> dict[str, Any]:
        """create_engine keywords the plugin needs for this backend (the user's win)."""
        return {}

    def prepare_engine(self, engine: Engine) -> None:
        """Install what rolled-back tests need on the run's engine (pool events only, where
        possible: a connection event listener costs every statement)."""
        event.listen(engine, "checkout", _discard_dirty_connection)

    def reset_connection(self, dbapi_connection: DBAPIConnection) -> None:
        """Clear session state when a connection goes back to the pool (after its rollback)."""

    def left_autocommit(self, dbapi_connection: DBAPIConnection) -> bool:
        """Whether the test switched the DBAPI connection to autocommit behind SQLAlchemy."""
        return bool(getattr(dbapi_connection, "autocommit", False))

    # -- one rolled-back test -----------------------------------------------------------------

    def begin_test(self, connection: Connection, *, change_log: bool) -> None:
        """Begin the test's transaction (already begun at the SQLAlchemy level)."""
        if change_log and self.marks_transactions:
            connection.exec_driver_sql(
                f"INSERT {self.ignore_keyword()} INTO {CHANGE_LOG} VALUES "
                f"('{TRANSACTION_MARK}', {self.connection_id_sql()})"
            )

    def end_test(self, connection: Connection, *, change_log: bool) -> TestEnding:
        """Roll the test's transaction back and say what the rollback could not undo.

        The default: a ROLLBACK, then one query of the change log.
        """
        dirty = bool(connection.info.pop(STATE_FLAG, False))
        connection.rollback()
        found: list[tuple[str, bool | None]] = []
        if change_log:
            found = self.read_change_log(connection)
            connection.rollback()
        return ending(found, ("session state",) if dirty else ())

    def read_change_log(self, connection: Connection) -> list[tuple[str, bool | None]]:
        """The logged tables, each with whether ``connection`` wrote it (None: unknown)."""
        rows = connection.exec_driver_sql(
            f"SELECT DISTINCT table_name, connection_id = {self.connection_id_sql()} "
            f"FROM {CHANGE_LOG}"
        ).all()
        return [(name, bool(own)) for name, own in rows]

    def connection_id_sql(self) -> str:
        raise NotImplementedError

    def ignore_keyword(self) -> str:
        return "IGNORE"

    # -- the change log -------------------------------------------------------------------

    def change_log_table_ddl(self, create: str = "CREATE TABLE") -> str:
        # The key includes the writing connection: two connections never wait for each other
        # on the log, whatever tables they write (a unique key on the table name alone would
        # make a second writer wait for the first one's transaction to end).
        return (
            f"{create} IF NOT EXISTS {CHANGE_LOG} (table_name VARCHAR(255) NOT NULL, "
            "connection_id BIGINT NOT NULL, PRIMARY KEY (table_name, connection_id))"
        )

    def install_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        raise NotImplementedError

    def uninstall_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        raise NotImplementedError

    # -- identity counters ----------------------------------------------------------------

    def read_counters(self, connection: Connection, tables: Sequence[Table]) -> Counters:
        return {}

    def reset_counters(
        self, connection: Connection, counters: Counters, tables: Mapping[str, Table]
    ) -> None:
        return None

    @contextlib.contextmanager
    def foreign_keys_relaxed(self, connection: Connection) -> Iterator[None]:
        """Let restore statements run in an order foreign keys would otherwise forbid."""
        yield

    def empty_tables(self, connection: Connection, tables: Sequence[Table]) -> None:
        """Delete every row and restart identity counters (a reused database starts empty)."""
        for table in reversed(tables):
            connection.execute(table.delete())

    # -- test databases -------------------------------------------------------------------

    def can_create_databases(self) -> bool:
        return False

    def admin_url(self, url: URL) -> URL:
        """A URL for administrative statements (CREATE/DROP DATABASE) on the server."""
        return URL.create(
            url.drivername, url.username, url.password, url.host, url.port, None, url.query
        )

    def database_exists(self, admin: Connection, name: str) -> bool:
        raise NotImplementedError

    def create_database(self, admin: Connection, name: str) -> None:
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        admin.exec_driver_sql(f"CREATE DATABASE {quoted}")

    def drop_database(self, admin: Connection, name: str) -> None:
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")

    def try_lock(self, admin: Connection, key: str) -> bool:
        raise NotImplementedError

    def unlock(self, admin: Connection, key: str) -> None:
        raise NotImplementedError

    def holds_lock(self, admin: Connection, key: str) -> bool:
        """Whether ``admin`` still holds the lock taken with try_lock (it may have died)."""
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------

    @staticmethod
    def scalar(connection: Connection, sql: str, **params: object) -> Any:
        return connection.execute(text(sql), params).scalar()


class GenericSupport(DialectSupport):
    """A backend without a module of its own: rolled-back tests only, said plainly."""

    def __init__(self, driver: str, backend: str) -> None:
        super().__init__(driver)
        self.backend = backend

    def unsupported(self, what: str) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"pytest-sessionmaker cannot {what} on {self.backend}; set db_database = as_given "
            "to use the URL's database as given (rolled-back tests work on any backend)."
        )

    def database_exists(self, admin: Connection, name: str) -> bool:
        raise self.unsupported("create test databases")

    def try_lock(self, admin: Connection, key: str) -> bool:
        raise self.unsupported("create test databases")


def ending(found: Iterable[tuple[str, bool | None]], state_left: tuple[str, ...]) -> TestEnding:
    """A TestEnding from the change log's rows (table, written by the test's connection?)."""
    found = list(found)
    return TestEnding(
        escaped=tuple(sorted({name for name, _ in found if name != TRANSACTION_MARK})),
        transaction_committed=any(name == TRANSACTION_MARK or own for name, own in found),
        other_connections=any(own is False for _, own in found),
        state_left=state_left,
        discard=bool(state_left),
    )


def _discard_dirty_connection(
    dbapi_connection: DBAPIConnection,
    record: ConnectionPoolEntry,
    proxy: PoolProxiedConnection,
) -> None:
    """A pooled connection that may hold session state is replaced, not handed out.

    Raising DisconnectionError in a checkout listener is SQLAlchemy's documented way to make the
    pool discard a connection and open another.
    """
    if record.info.pop(STATE_FLAG, False):
        from sqlalchemy.exc import DisconnectionError

        raise DisconnectionError("pytest-sessionmaker: the connection holds session state")
