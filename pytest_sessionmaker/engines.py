"""Engine creation, with the dialect fixes that make rolled-back tests possible."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import QueuePool

from pytest_sessionmaker.errors import DatabaseUnavailable, connect_error_message

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import URL, Engine
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

REFUSED_ENGINE_OPTIONS = {
    "isolation_level": "AUTOCOMMIT",
}


def refuse_unsafe_engine_options(options: Mapping[str, Any]) -> None:
    """AUTOCOMMIT makes every statement permanent at once, so nothing could be rolled back."""
    levels = [
        options.get("isolation_level"),
        dict(options.get("execution_options") or {}).get("isolation_level"),
    ]
    if any(str(level).upper() == "AUTOCOMMIT" for level in levels if level is not None):
        raise ValueError(
            "db_engine_options sets isolation_level='AUTOCOMMIT', which commits every statement "
            "at once so no test could be rolled back; remove it, or mark the tests that need "
            "real commits with @pytest.mark.db_commit."
        )


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def shared_memory_sqlite(url: URL) -> URL:
    """Turn ``sqlite://`` into one in-memory database shared by all connections of the process.

    A plain in-memory SQLite database lives and dies with one DBAPI connection, so a pooled engine
    would hand each connection its own empty database. A named shared-cache memory database is
    one database for every connection of this process while at least one connection is open.
    """
    name = f"file:pytest_sessionmaker_{os.getpid()}_{id(url):x}?mode=memory&cache=shared"
    return url.set(database=name).update_query_dict({"uri": "true"})


def create_test_engine(url: URL, options: Mapping[str, Any]) -> Engine:
    """The run's engine: pooled, with savepoints working and per-connection state reset."""
    refuse_unsafe_engine_options(options)
    engine_options = dict(options)
    if is_memory_sqlite(url):
        url = shared_memory_sqlite(url)
        engine_options.setdefault("poolclass", QueuePool)
    engine = engine_or_plain_error(url, **engine_options)
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        fix_pysqlite_transactions(engine)
    if engine.dialect.name in RESETTERS:
        event.listen(engine, "reset", RESETTERS[engine.dialect.name])
    return engine


def engine_or_plain_error(url: URL, **options: Any) -> Engine:
    """create_engine, with a missing driver reported in one sentence instead of a traceback."""
    try:
        return create_engine(url, **options)
    except ImportError as exc:
        raise DatabaseUnavailable(connect_error_message(url, exc)) from None
    except NoSuchModuleError:
        raise DatabaseUnavailable(
            f"SQLAlchemy has no dialect or driver {url.drivername!r} (the database URL names "
            "it); check the spelling or install the driver's SQLAlchemy dialect."
        ) from None


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
        connection.exec_driver_sql("BEGIN")


POSTGRESQL_RESET = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"
)


def _reset_postgresql(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, state: PoolResetState
) -> None:
    """Return connections to the pool without the last test's session state.

    This is DISCARD ALL without its DEALLOCATE ALL: temporary tables, SET values, cursors,
    LISTENs and advisory locks go. psycopg keeps a client-side cache of the statements it
    prepared automatically and does not always notice a DISCARD ALL, so the next use of a
    cached statement failed with "prepared statement does not exist"; those statements are
    left in place. Sent as one string in autocommit mode: one round trip.
    """
    dbapi_connection.rollback()
    if state.terminate_only:
        return
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.cursor().execute(POSTGRESQL_RESET)
    finally:
        dbapi_connection.autocommit = autocommit


def _reset_sqlite(
    dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, state: PoolResetState
) -> None:
    """SQLite's per-connection state worth resetting is its temporary tables."""
    dbapi_connection.rollback()
    if state.terminate_only:
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("SELECT name FROM sqlite_temp_master WHERE type = 'table'")
    for (name,) in cursor.fetchall():
        quoted = name.replace('"', '""')
        cursor.execute(f'DROP TABLE temp."{quoted}"')


RESETTERS = {"postgresql": _reset_postgresql, "sqlite": _reset_sqlite}
