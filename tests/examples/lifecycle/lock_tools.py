"""What the inner tests do to a run's test database from outside the plugin, as another session
on the server would: end the run's lock connection, hold the lock, change the mark, leave a
transaction open."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import URL, Connection, create_engine, text
from sqlalchemy.pool import NullPool

# Kept open until the inner process ends, like a leaked connection of an application.
LEFTOVERS: list[object] = []


def lock_key(name: str) -> str:
    return f"pytest_sessionmaker:{name}"


def server_connection(url: URL) -> Connection:
    """An autocommit connection to the server, outside the test database."""
    url = url.set(database="postgres" if url.get_backend_name() == "postgresql" else "mysql")
    return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT").connect()


def lock_holder(connection: Connection, name: str) -> int | None:
    """The session holding the plugin's lock on the name, if any."""
    if connection.dialect.name == "postgresql":
        return connection.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objid = (hashtext(:k)::bigint & 4294967295)"
            ),
            {"k": lock_key(name)},
        ).scalar()
    return connection.execute(text("SELECT IS_USED_LOCK(:k)"), {"k": lock_key(name)}).scalar()


def kill_lock_connection(url: URL) -> None:
    """End the session holding the run's lock, as pg_terminate_backend or KILL by an
    administrator (or a server restart, or an idle timeout) would; return once it is gone."""
    name = str(url.database)
    with server_connection(url) as connection:
        holder = lock_holder(connection, name)
        assert holder is not None, f"no session holds the lock on {name}"
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder})
        else:
            connection.exec_driver_sql(f"KILL CONNECTION {int(holder)}")
        give_up = time.monotonic() + 60  # a safety net against a hang, not a timing
        while lock_holder(connection, name) is not None:
            assert time.monotonic() < give_up, "the lock connection did not end"
            time.sleep(0.02)


def hold_lock(url: URL) -> None:
    """Take the lock on the run's name, as another run would, until this process ends."""
    connection = server_connection(url)
    key = lock_key(str(url.database))
    if connection.dialect.name == "postgresql":
        taken = connection.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), {"k": key})
    else:
        taken = connection.execute(text("SELECT GET_LOCK(:k, 0)"), {"k": key})
    assert taken.scalar()
    LEFTOVERS.append(connection)


def mark_as_another_runs(url: URL) -> None:
    """Put another run's mark on the database, as a run that took it over would."""
    mark = "'pytest-sessionmaker test database, claimed by run another'"
    quoted = f'"{url.database}"' if url.get_backend_name() == "postgresql" else url.database
    with server_connection(url) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"COMMENT ON DATABASE {quoted} IS {mark}")
        else:
            connection.exec_driver_sql(f"ALTER DATABASE {quoted} COMMENT = {mark}")


def leave_transaction_open(url: URL) -> None:
    """A connection of the test's own, in a transaction that has read the users table (so it
    holds a lock the table's DDL must wait for), left open until the process ends."""
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(str(url.database), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("SELECT count(*) FROM users").fetchall()
        LEFTOVERS.append(connection)
        return
    engine = create_engine(url, poolclass=NullPool)
    connection = engine.connect()
    connection.begin()
    connection.execute(text("SELECT count(*) FROM users")).all()
    LEFTOVERS.append(connection)
