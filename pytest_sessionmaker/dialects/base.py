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
# The change log's entry for "the schema changed" (where DDL can be logged: see watch_ddl).
SCHEMA_MARK = "<schema>"
# Connection.info key: the connection ran a statement that can leave session state behind.
STATE_FLAG = "pytest_sessionmaker_state_left"
# Execution option on a statement the plugin sends itself: query recorders leave it out.
OWN_STATEMENT = "pytest_sessionmaker_own"

Counters = dict[str, tuple[int | None, bool]]

# What every test database of the plugin's is marked with (the mark goes on to say which claim
# of which run holds it); a database without it is somebody else's.
OWNER_MARK = "pytest-sessionmaker test database"
# How long the plugin's teardown DDL, and the drop of its own database, wait for a lock held
# by another session before giving up with a warning. Such a lock is a leftover: by teardown the
# plugin's own connections are closed, so nothing that waits would ever get it.
TEARDOWN_LOCK_TIMEOUT = 2


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
    # Whether the change log sees TRUNCATE. Where it does not, a commit of unknown extent (the
    # test's own transaction) is repaired by restoring every table.
    logs_truncate: ClassVar[bool] = True
    # connect_args keys with which a driver commits every statement at once.
    driver_autocommit_options: ClassVar[tuple[str, ...]] = ("autocommit",)
    # A query naming the database a connection is connected to (see opened_database).
    current_database_sql: ClassVar[str | None] = None

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

    def prepare_async_engine(self, engine: Engine) -> None:
        """Install what rolled-back tests need on db_async_engine's sync engine.

        That engine has no pool (async_engines.py), so no pool event is needed; a connection
        kept for the next test of the same loop is judged by end_test, as the sync side's is.
        """

    def reset_connection(self, dbapi_connection: DBAPIConnection) -> None:
        """Clear session state when a connection goes back to the pool (after its rollback)."""

    def left_autocommit(self, dbapi_connection: DBAPIConnection) -> bool:
        """Whether the test switched the DBAPI connection to autocommit behind SQLAlchemy."""
        return bool(getattr(dbapi_connection, "autocommit", False))

    # -- one rolled-back test -----------------------------------------------------------------

    def sends_at_begin(self, *, change_log: bool) -> bool:
        """Whether begin_test sends anything (an async test then skips a greenlet switch)."""
        return change_log and self.marks_transactions

    def begin_test(self, connection: Connection, *, change_log: bool) -> None:
        """Begin the test's transaction (already begun at the SQLAlchemy level)."""
        if self.sends_at_begin(change_log=change_log):
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

    # -- the schema -----------------------------------------------------------------------

    def watch_ddl(self, connection: Connection) -> bool:
        """Log DDL into the change log (as SCHEMA_MARK) where the backend can; say whether it
        does. Where it cannot, schema_fingerprint is compared after each commit test."""
        return False

    def unwatch_ddl(self, connection: Connection) -> None:
        return None

    def schema_fingerprint(self, connection: Connection) -> str:
        """A digest of the tables, columns and indexes outside the plugin's own."""
        raise NotImplementedError

    def plugin_objects_fingerprint(self, connection: Connection) -> str:
        """A digest of the plugin's own objects (change log, its triggers and functions)."""
        raise NotImplementedError

    def ddl_watched(self, connection: Connection) -> bool:
        """Whether the database holds watch_ddl's event triggers (a copy of a template)."""
        return False

    def drop_tables(self, connection: Connection, names: Sequence[str]) -> None:
        """Drop tables by name, whatever references them (a schema rebuild)."""
        preparer = connection.dialect.identifier_preparer
        for name in names:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {preparer.quote(name)}")

    # -- identity counters ----------------------------------------------------------------

    def read_counters(
        self, connection: Connection, tables: Sequence[Table], *, every_sequence: bool = False
    ) -> Counters:
        """Identity and sequence counters of ``tables`` (with ``every_sequence``, also the
        database's sequences that belong to no table)."""
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
    # A test database is created, marked, locked and dropped through these. The lock lives on
    # one connection (the "lock connection", opened to ``lock_url``) for the whole run, and
    # every destructive statement runs on that connection, so it runs only while the lock
    # is held (a session lock ends with its connection, never before).

    def can_create_databases(self) -> bool:
        return False

    def opened_database(self, dbapi_connection: DBAPIConnection) -> str | None:
        """The database a newly opened DBAPI connection (of any engine) is connected to, named
        as url_database names it; None when that cannot be told (another backend, say).

        migrations.py asks while Alembic's env.py runs, to refuse any other database.
        """
        if self.current_database_sql is None:
            return None
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(self.current_database_sql)
                row = cursor.fetchone()
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception:  # another backend or driver: it is not the test database
            return None
        return None if row is None else str(row[0])

    def url_database(self, url: URL) -> str:
        """The database of a URL, named as opened_database names it."""
        return url.database or ""

    def admin_url(self, url: URL) -> URL:
        """A URL for administrative statements (CREATE/DROP DATABASE) on the server."""
        return URL.create(
            url.drivername, url.username, url.password, url.host, url.port, None, url.query
        )

    def lock_url(self, url: URL) -> URL:
        """Where the lock connection goes: the same place for every run on the server, so
        that two runs always see each other's locks."""
        return self.admin_url(url)

    def check_server(self, connection: Connection) -> None:
        """Refuse, in one sentence, a server version the plugin does not support."""

    def prepare_lock_connection(self, admin: Connection) -> None:
        """Keep the lock connection alive for a long run (no idle timeout ends it)."""

    def database_mark(self, admin: Connection, name: str) -> str | None:
        """The mark of the database ``name``: None when there is no such database, "" when it
        exists without a mark of the plugin's."""
        raise NotImplementedError

    def database_exists(self, admin: Connection, name: str) -> bool:
        return self.database_mark(admin, name) is not None

    def create_marked_database(
        self, admin: Connection, name: str, mark: str, template: str | None = None
    ) -> None:
        """Create ``name`` so that it never exists without ``mark`` (a kill at any moment
        leaves either no database of that name or a marked one); with ``template``, as a copy
        of that database."""
        raise NotImplementedError

    def set_mark(self, admin: Connection, name: str, mark: str) -> None:
        raise NotImplementedError

    def others_connected(self, admin: Connection, name: str) -> bool:
        """Whether another session is connected to the database (a live run whose lock
        connection died still has its own connections there)."""
        raise NotImplementedError

    def drop_database(self, admin: Connection, name: str) -> None:
        """Drop a database nobody uses (fails, rather than waits or disconnects, otherwise)."""
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}")

    def drop_own_database(self, admin: Connection, name: str) -> None:
        """Drop this run's own database, ending whatever sessions its tests left in it."""
        self.drop_database(admin, name)

    def try_lock(self, admin: Connection, key: str) -> bool:
        raise NotImplementedError

    def unlock(self, admin: Connection, key: str) -> None:
        raise NotImplementedError

    def holds_lock(self, admin: Connection, key: str) -> bool:
        """Whether ``admin`` still holds the lock taken with try_lock (it may have died)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def lock_waits_limited(self, connection: Connection) -> Iterator[None]:
        """Within the block, a statement waiting for a lock gives up after
        TEARDOWN_LOCK_TIMEOUT seconds instead of waiting for ever (teardown DDL behind a
        transaction a test left open in another connection)."""
        yield

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

    def database_mark(self, admin: Connection, name: str) -> str | None:
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
