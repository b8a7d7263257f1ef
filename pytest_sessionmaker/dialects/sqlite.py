"""SQLite: SQLAlchemy's savepoint recipe for pysqlite, and a shared in-memory database."""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event, text
from sqlalchemy.pool import QueuePool

from pytest_sessionmaker.dialects.base import (
    CHANGE_LOG,
    OWN_STATEMENT,
    STATE_FLAG,
    TEARDOWN_LOCK_TIMEOUT,
    Counters,
    DialectSupport,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy import URL, Connection, Engine, Table
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

# Statements whose effect outlives a ROLLBACK: PRAGMAs that set something (most settings are per
# connection; reading ones, such as SQLAlchemy's reflection, are harmless) and attached databases.
# Looked for in every statement of the run's engine, which on SQLite costs next to nothing: the
# pysqlite recipe's "begin" listener makes SQLAlchemy dispatch events anyway.
STATE_STATEMENT = re.compile(r"\s*(PRAGMA\s+[\w.]+\s*=|ATTACH\b|DETACH\b)", re.IGNORECASE)


def is_memory_database(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


class SQLiteSupport(DialectSupport):
    name: ClassVar[str] = "sqlite"
    has_change_log: ClassVar[bool] = True
    # No mark: it would take SQLite's write lock for the whole of every test, so a second
    # connection could not write even in a test that does not write itself.
    marks_transactions: ClassVar[bool] = False
    driver_autocommit_options: ClassVar[tuple[str, ...]] = ("autocommit",)
    # The main database's file: '' for an in-memory database.
    current_database_sql: ClassVar[str | None] = (
        "SELECT file FROM pragma_database_list WHERE name = 'main'"
    )

    def engine_url(self, url: URL) -> URL:
        """Turn ``sqlite://`` into one in-memory database shared by the process's connections.

        A plain in-memory SQLite database lives and dies with one DBAPI connection, so a pooled
        engine would hand each connection its own empty database. A named shared-cache memory
        database is one database for every connection of this process while one is open.
        """
        if not is_memory_database(url):
            return url
        name = f"file:pytest_sessionmaker_{os.getpid()}_{id(url):x}?mode=memory&cache=shared"
        return url.set(database=name).update_query_dict({"uri": "true"})

    def engine_defaults(self, url: URL) -> dict[str, Any]:
        return {"poolclass": QueuePool} if "mode=memory" in str(url.database) else {}

    def prepare_engine(self, engine: Engine) -> None:
        super().prepare_engine(engine)
        event.listen(engine, "reset", self._on_reset)
        event.listen(engine, "before_cursor_execute", _flag_state_statements)
        if engine.dialect.driver == "pysqlite":
            fix_pysqlite_transactions(engine)

    def prepare_async_engine(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", _flag_state_statements)
        # aiosqlite wraps pysqlite, and its transaction handling with it.
        if engine.dialect.driver == "aiosqlite":
            fix_pysqlite_transactions(engine)

    def _on_reset(
        self, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, state: PoolResetState
    ) -> None:
        dbapi_connection.rollback()
        if not state.terminate_only:
            self.reset_connection(dbapi_connection)

    def reset_connection(self, dbapi_connection: DBAPIConnection) -> None:
        """SQLite's per-connection state worth resetting is its temporary tables."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT name FROM sqlite_temp_master WHERE type = 'table'")
            for (name,) in cursor.fetchall():
                quoted = name.replace('"', '""')
                cursor.execute(f'DROP TABLE temp."{quoted}"')
        finally:
            cursor.close()

    def opened_database(self, dbapi_connection: DBAPIConnection) -> str | None:
        found = super().opened_database(dbapi_connection)
        return os.path.realpath(found) if found else found

    def url_database(self, url: URL) -> str:
        if is_memory_database(url) or "mode=memory" in str(url.database):
            return ""
        return os.path.realpath(str(url.database))

    def left_autocommit(self, dbapi_connection: DBAPIConnection) -> bool:
        # The recipe needs pysqlite's own transaction handling off (isolation_level None).
        return getattr(dbapi_connection, "isolation_level", None) is not None

    def connection_id_sql(self) -> str:
        # One writer at a time: the log's rows need no writer to tell them apart.
        return "0"

    def ignore_keyword(self) -> str:
        return "OR IGNORE"

    def read_change_log(self, connection: Connection) -> list[tuple[str, bool | None]]:
        # Connections are not told apart on SQLite: who wrote is unknown.
        rows = connection.exec_driver_sql(f"SELECT DISTINCT table_name FROM {CHANGE_LOG}")
        return [(name, None) for name in rows.scalars()]

    def install_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        connection.exec_driver_sql(self.change_log_table_ddl())
        preparer = connection.dialect.identifier_preparer
        for position, table in enumerate(tables):
            for operation in ("INSERT", "UPDATE", "DELETE"):
                name = preparer.quote(f"pytest_sessionmaker_log_{position}_{operation.lower()}")
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
                connection.exec_driver_sql(
                    f"CREATE TRIGGER {name} AFTER {operation} ON {preparer.format_table(table)} "
                    f"BEGIN INSERT OR IGNORE INTO {CHANGE_LOG} VALUES "
                    f"({_literal(table.fullname)}, 0); END"
                )

    def uninstall_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        for name in connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE :pattern"),
            {"pattern": "pytest_sessionmaker_log_%"},
        ).scalars():
            quoted = connection.dialect.identifier_preparer.quote(name)
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {quoted}")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {CHANGE_LOG}")

    def schema_fingerprint(self, connection: Connection) -> str:
        """sqlite_master holds every object's SQL: cheap and exact."""
        return _sqlite_master_fingerprint(
            connection,
            "name NOT LIKE :ours ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )

    def plugin_objects_fingerprint(self, connection: Connection) -> str:
        return _sqlite_master_fingerprint(connection, "name LIKE :ours ESCAPE '\\'")

    def read_counters(
        self, connection: Connection, tables: Sequence[Table], *, every_sequence: bool = False
    ) -> Counters:
        """AUTOINCREMENT tables keep their counter in sqlite_sequence (once one exists)."""
        names = {table.fullname for table in tables}
        if not connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
        ).first():
            return {}
        rows = connection.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all()
        return {name: (seq, True) for name, seq in rows if name in names}

    def reset_counters(
        self, connection: Connection, counters: Counters, tables: Mapping[str, Table]
    ) -> None:
        for name, (value, _) in counters.items():
            if value is None:
                # A counter that did not exist at baseline: no row, as before the first insert
                # (a row with a NULL seq would count the same but is not the same database).
                connection.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
            else:
                connection.exec_driver_sql(
                    "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (value, name)
                )

    @contextlib.contextmanager
    def foreign_keys_relaxed(self, connection: Connection) -> Iterator[None]:
        connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        # This one ends with the transaction: no state is left.
        connection.info.pop(STATE_FLAG, None)
        yield

    def empty_tables(self, connection: Connection, tables: Sequence[Table]) -> None:
        super().empty_tables(connection, tables)
        if connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
        ).first():
            connection.exec_driver_sql("DELETE FROM sqlite_sequence")

    @contextlib.contextmanager
    def lock_waits_limited(self, connection: Connection) -> Iterator[None]:
        # Per connection; the PRAGMA is seen by _flag_state_statements, so the connection is
        # replaced rather than reused.
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {TEARDOWN_LOCK_TIMEOUT * 1000}")
        yield


def fix_pysqlite_transactions(engine: Engine) -> None:
    """SQLAlchemy's documented recipe: let SQLAlchemy, not pysqlite, emit BEGIN.

    pysqlite's own transaction handling defers BEGIN and commits before some statements, which
    breaks SAVEPOINT: a row committed through a savepoint session would really be committed.
    """

    @event.listens_for(engine, "connect")
    def _disable_pysqlite_begin(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _emit_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN", execution_options={OWN_STATEMENT: True})


def _flag_state_statements(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if STATE_STATEMENT.match(statement):
        connection.info[STATE_FLAG] = True


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sqlite_master_fingerprint(connection: Connection, condition: str) -> str:
    """The type, name and SQL of the objects in sqlite_master that meet ``condition`` (which
    may use :ours, the plugin's name prefix), in name order."""
    rows = connection.execute(
        text(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master "
            f"WHERE {condition} ORDER BY name"
        ),
        {"ours": "pytest\\_sessionmaker%"},
    ).all()
    return "|".join(":".join(row) for row in rows)
