"""What the generated tests check after every generated test, written without the plugin's code.

dump() reads every row of the inner project's tables and their identity counters with plain SQL;
leftover_state() looks on the test's connection for session state a ROLLBACK keeps.
"""

from sqlalchemy import text

TABLES = ("users", "posts")


def counters(connection):
    backend = connection.dialect.name
    if backend == "postgresql":
        rows = connection.execute(
            text(
                "SELECT sequencename, last_value FROM pg_sequences "
                "WHERE schemaname = current_schema() ORDER BY sequencename"
            )
        )
        return [tuple(row) for row in rows]
    if backend == "mysql":
        rows = connection.execute(
            text(
                "SELECT table_name, auto_increment FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name IN ('users', 'posts') "
                "ORDER BY table_name"
            )
        )
        return [tuple(row) for row in rows]
    exists = connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
    ).first()
    if not exists:
        return []
    return [tuple(row) for row in connection.execute(text("SELECT * FROM sqlite_sequence"))]


def dump(connection):
    """Every row of every table, and the counters, in a comparable form."""
    rows = {
        table: sorted(tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}")))
        for table in TABLES
    }
    return {"rows": rows, "counters": counters(connection)}


def leftover_state(connection):
    """Session state the previous test left on this connection (empty when none)."""
    backend = connection.dialect.name
    found = []
    if backend == "postgresql":
        prepared = connection.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE from_sql")
        ).scalar()
        locks = connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
        ).scalar()
        setting = connection.execute(text("SHOW statement_timeout")).scalar()
        found += [f"prepared: {prepared}"] if prepared else []
        found += [f"advisory locks: {locks}"] if locks else []
        found += [f"statement_timeout: {setting}"] if setting != "0" else []
    elif backend == "mysql":
        variable = connection.execute(text("SELECT @fuzz_variable")).scalar()
        mode = connection.execute(text("SELECT @@SESSION.sql_mode")).scalar()
        found += [f"@fuzz_variable: {variable}"] if variable is not None else []
        found += [f"sql_mode: {mode}"] if "ANSI_QUOTES" in mode else []
        lock = connection.execute(text(f"SELECT IS_USED_LOCK({MYSQL_LOCK_NAME})")).scalar()
        found += [f"GET_LOCK held by {lock}"] if lock is not None else []
    else:
        like = connection.execute(text("SELECT 'A' LIKE 'a'")).scalar()
        found += ["case_sensitive_like"] if like == 0 else []
    return found


# GET_LOCK names are server-wide: one per test database, so that runs beside this one (xdist
# workers, other checkouts) neither see nor block its lock.
MYSQL_LOCK_NAME = "CONCAT('fuzz_lock_', DATABASE())"

STATE_STATEMENTS = {
    "postgresql": {
        "prepare": "PREPARE fuzz_prepared AS SELECT 1",
        "advisory_lock": "SELECT pg_advisory_lock(777)",
        "sql_mode": "SET SESSION statement_timeout = 12345",
    },
    "mysql": {
        "variable": "SET @fuzz_variable = 1",
        "sql_mode": "SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ANSI_QUOTES')",
        "get_lock": f"SELECT GET_LOCK({MYSQL_LOCK_NAME}, 0)",
    },
    "sqlite": {"pragma": "PRAGMA case_sensitive_like = ON"},
}


def leave_state(connection, kind):
    """Leave session state of ``kind`` behind, where the backend has such state."""
    statement = STATE_STATEMENTS[connection.dialect.name].get(kind)
    if statement is not None:
        connection.exec_driver_sql(statement)


def truncate_posts(connection):
    """TRUNCATE where the backend has it (on MySQL/MariaDB it commits implicitly)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("DELETE FROM posts")
    else:
        connection.exec_driver_sql("TRUNCATE TABLE posts")
