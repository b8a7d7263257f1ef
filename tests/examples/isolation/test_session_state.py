"""Session state a ROLLBACK keeps must not reach the next test on the kept connection."""

from sqlalchemy import text


def backend(connection):
    return connection.dialect.name


def test_leave_state(db_connection):
    if backend(db_connection) == "postgresql":
        db_connection.exec_driver_sql("PREPARE leftover AS SELECT 1")
        db_connection.exec_driver_sql("SELECT pg_advisory_lock(4242)")
    elif backend(db_connection) == "mysql":
        db_connection.exec_driver_sql("SET @leftover = 42")
        db_connection.exec_driver_sql("SET SESSION sql_mode = 'ANSI_QUOTES'")
        db_connection.exec_driver_sql("CREATE TEMPORARY TABLE leftover_scratch (x INTEGER)")
        db_connection.exec_driver_sql("SELECT GET_LOCK('leftover_lock', 0)")
    else:
        db_connection.exec_driver_sql("PRAGMA case_sensitive_like = ON")


def test_nothing_is_left(db_connection):
    if backend(db_connection) == "postgresql":
        prepared = db_connection.exec_driver_sql(
            "SELECT count(*) FROM pg_prepared_statements WHERE from_sql"
        ).scalar()
        locks = db_connection.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).scalar()
        assert (prepared, locks) == (0, 0)
    elif backend(db_connection) == "mysql":
        assert db_connection.exec_driver_sql("SELECT @leftover").scalar() is None
        assert "ANSI_QUOTES" not in db_connection.exec_driver_sql("SELECT @@sql_mode").scalar()
        assert (
            db_connection.exec_driver_sql("SELECT IS_USED_LOCK('leftover_lock')").scalar() is None
        )
        db_connection.exec_driver_sql("CREATE TEMPORARY TABLE leftover_scratch (x INTEGER)")
    else:
        # The PRAGMA is per connection: LIKE is case-insensitive again on a fresh one.
        assert db_connection.execute(text("SELECT 'A' LIKE 'a'")).scalar() == 1
