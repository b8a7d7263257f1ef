"""PostgreSQL: one round trip ends a test, checks for escaped commits and clears session state."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event, text

from pytest_sessionmaker.dialects.base import (
    CHANGE_LOG,
    Counters,
    DialectSupport,
    TestEnding,
    ending,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy import URL, Connection, Engine, Table
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

LOG_FUNCTION = "pytest_sessionmaker_note_change"

# After the ROLLBACK, in the same round trip: release session-level advisory locks (a ROLLBACK
# keeps them), list the statements prepared with SQL PREPARE (kept too; psycopg's own, prepared
# through the protocol, have from_sql = false and stay), and read the change log, which now
# holds only what other transactions, or this one before a COMMIT of the test's, committed.
END_TEST = (
    "ROLLBACK; SELECT pg_advisory_unlock_all(), "
    "ARRAY(SELECT name FROM pg_prepared_statements WHERE from_sql)"
)
END_TEST_WITH_LOG = END_TEST + (
    f", ARRAY(SELECT DISTINCT table_name FROM {CHANGE_LOG} WHERE connection_id = "
    "pg_backend_pid()), "
    f"ARRAY(SELECT DISTINCT table_name FROM {CHANGE_LOG} WHERE connection_id <> pg_backend_pid())"
)

# What a connection going back to the pool sheds: DISCARD ALL without its DEALLOCATE ALL, because
# psycopg keeps a client-side cache of the statements it prepared and does not always notice a
# DISCARD ALL (the next use of a cached statement then failed with "prepared statement does not
# exist"). Statements prepared with SQL PREPARE are deallocated by name instead.
RESET = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; "
    "DO $$ DECLARE r record; BEGIN "
    "FOR r IN SELECT name FROM pg_prepared_statements WHERE from_sql LOOP "
    "EXECUTE format('DEALLOCATE %I', r.name); END LOOP; END $$"
)

LOG_FUNCTION_DDL = f"""
CREATE OR REPLACE FUNCTION {LOG_FUNCTION}() RETURNS trigger AS $$
BEGIN
    INSERT INTO {CHANGE_LOG} VALUES (TG_ARGV[0], pg_backend_pid()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


class PostgreSQLSupport(DialectSupport):
    name: ClassVar[str] = "postgresql"
    has_change_log: ClassVar[bool] = True
    # A COMMIT of the test's transaction that wrote no logged table (DDL alone) is not worth a
    # statement per test here; see the README's list of what is not detected.
    marks_transactions: ClassVar[bool] = False
    current_database_sql: ClassVar[str | None] = "SELECT current_database()"

    def prepare_engine(self, engine: Engine) -> None:
        super().prepare_engine(engine)
        event.listen(engine, "reset", self._on_reset)

    def _on_reset(
        self, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, state: PoolResetState
    ) -> None:
        dbapi_connection.rollback()
        if not state.terminate_only:
            self.reset_connection(dbapi_connection)

    def reset_connection(self, dbapi_connection: DBAPIConnection) -> None:
        """One round trip in autocommit mode (DISCARD TEMP refuses a transaction block)."""
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(RESET)
            finally:
                cursor.close()
        finally:
            dbapi_connection.autocommit = autocommit

    def left_autocommit(self, dbapi_connection: DBAPIConnection) -> bool:
        return bool(getattr(dbapi_connection, "autocommit", False))

    def connection_id_sql(self) -> str:
        return "pg_backend_pid()"

    def end_test(self, connection: Connection, *, change_log: bool) -> TestEnding:
        if self.driver != "psycopg":
            return self._end_test_in_steps(connection, change_log=change_log)
        # psycopg 3 sends several statements in one simple-protocol round trip when there are
        # no parameters; after it the server is idle, so the ROLLBACK that SQLAlchemy sends
        # next is a no-op in psycopg (it knows the server is not in a transaction).
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(END_TEST_WITH_LOG if change_log else END_TEST)
            cursor.nextset()
            row = cursor.fetchone()
        finally:
            cursor.close()
        connection.rollback()
        return self._ending(connection, row)

    def _end_test_in_steps(self, connection: Connection, *, change_log: bool) -> TestEnding:
        connection.rollback()
        query = (END_TEST_WITH_LOG if change_log else END_TEST).removeprefix("ROLLBACK; ")
        row = connection.exec_driver_sql(query).one()
        connection.rollback()
        return self._ending(connection, tuple(row))

    def _ending(self, connection: Connection, row: Any) -> TestEnding:
        prepared: list[str] = list(row[1] or [])
        found: list[tuple[str, bool | None]] = []
        if len(row) > 2:
            found = [(name, True) for name in row[2] or []]
            found += [(name, False) for name in row[3] or []]
        state: tuple[str, ...] = ()
        if prepared:
            for name in prepared:
                connection.exec_driver_sql(f'DEALLOCATE "{name}"')
            connection.rollback()
            state = (f"prepared statements ({', '.join(prepared)})",)
        result = ending(found, state)
        # The advisory locks are already released, the prepared statements deallocated: the
        # connection is clean again and may serve the next test.
        return result._replace(discard=False)

    # -- the change log -------------------------------------------------------------------

    def install_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        """One statement-level trigger per table (INSERT, UPDATE, DELETE and TRUNCATE)."""
        # Unlogged: the log is scratch data of the run, not worth the write-ahead log.
        connection.exec_driver_sql(self.change_log_table_ddl("CREATE UNLOGGED TABLE"))
        connection.exec_driver_sql(LOG_FUNCTION_DDL)
        preparer = connection.dialect.identifier_preparer
        for position, table in enumerate(tables):
            name = preparer.quote(trigger_name(position))
            target = preparer.format_table(table)
            key = literal(table.fullname)
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {target}")
            connection.exec_driver_sql(
                f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {target} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {LOG_FUNCTION}({key})"
            )

    def uninstall_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        # Dropping the function with CASCADE drops every trigger that calls it.
        connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {LOG_FUNCTION}() CASCADE")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {CHANGE_LOG}")

    # -- identity counters ----------------------------------------------------------------

    def read_counters(self, connection: Connection, tables: Sequence[Table]) -> Counters:
        """Every sequence owned by one of the tables (serial and identity columns)."""
        if not tables:
            return {}
        preparer = connection.dialect.identifier_preparer
        rows = connection.execute(
            text(
                "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename), "
                "s.last_value FROM pg_sequences s "
                "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = "
                "(quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass "
                "AND d.deptype IN ('a', 'i') "
                "WHERE d.refobjid = ANY(CAST(:tables AS regclass[]))"
            ),
            {"tables": [preparer.format_table(table) for table in tables]},
        ).all()
        return {name: (value, value is not None) for name, value in rows}

    def reset_counters(
        self, connection: Connection, counters: Counters, tables: Mapping[str, Table]
    ) -> None:
        for name, (value, is_called) in counters.items():
            connection.execute(
                text("SELECT setval(CAST(:name AS regclass), :value, :called)"),
                {"name": name, "value": value if value is not None else 1, "called": is_called},
            )

    @contextlib.contextmanager
    def foreign_keys_relaxed(self, connection: Connection) -> Iterator[None]:
        """Deferrable constraints wait for the commit; others are checked per statement, which
        the restore's order (children's rows removed first, parents' put back first) meets."""
        connection.exec_driver_sql("SET CONSTRAINTS ALL DEFERRED")
        yield

    def empty_tables(self, connection: Connection, tables: Sequence[Table]) -> None:
        if not tables:
            return
        preparer = connection.dialect.identifier_preparer
        names = ", ".join(preparer.format_table(table) for table in tables)
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")

    # -- test databases -------------------------------------------------------------------

    def can_create_databases(self) -> bool:
        return True

    def admin_url(self, url: URL) -> URL:
        return url.set(database=url.database or "postgres")

    def database_exists(self, admin: Connection, name: str) -> bool:
        return bool(self.scalar(admin, "SELECT 1 FROM pg_database WHERE datname = :n", n=name))

    def drop_database(self, admin: Connection, name: str) -> None:
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")

    def try_lock(self, admin: Connection, key: str) -> bool:
        return bool(self.scalar(admin, "SELECT pg_try_advisory_lock(hashtext(:k))", k=key))

    def unlock(self, admin: Connection, key: str) -> None:
        self.scalar(admin, "SELECT pg_advisory_unlock(hashtext(:k))", k=key)

    def holds_lock(self, admin: Connection, key: str) -> bool:
        return bool(
            self.scalar(
                admin,
                "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted "
                "AND objid = (hashtext(:k)::bigint & 4294967295))",
                k=key,
            )
        )


def trigger_name(position: int) -> str:
    return f"pytest_sessionmaker_log_{position}"


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
