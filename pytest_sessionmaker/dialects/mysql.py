"""MySQL and MariaDB: implicit commits, session state a ROLLBACK keeps, and row triggers."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from pytest_sessionmaker.dialects.base import (
    CHANGE_LOG,
    OWNER_MARK,
    STATE_FLAG,
    TEARDOWN_LOCK_TIMEOUT,
    Counters,
    DialectSupport,
    TestEnding,
    ending,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy import Connection, Engine, Table
    from sqlalchemy.engine.interfaces import DBAPIConnection

# Statements whose effect a ROLLBACK does not undo on MySQL/MariaDB: SET (session variables),
# user variables (@name, in any statement), PREPARE, temporary tables, LOCK TABLES, USE,
# HANDLER, GET_LOCK. A connection that ran one is replaced instead of serving the next test.
STATE_STATEMENT = re.compile(
    r"^\s*(SET|PREPARE|LOCK|USE|HANDLER|CREATE\s+TEMPORARY|DROP\s+TEMPORARY)\b"
    r"|(?<![@\w])@(?!@)[\w`'\"$]|\bGET_LOCK\s*\(",
    re.IGNORECASE,
)

# MySQL (no database comment): the table that marks a test database as the plugin's.
MARK_TABLE = "pytest_sessionmaker_database"


MYSQL_FINGERPRINT = """
SELECT
 (SELECT CONCAT(COUNT(*), '/', COALESCE(BIT_XOR(CRC32(CONCAT_WS(':', table_name, table_type))), 0))
  FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name NOT LIKE :ours),
 (SELECT CONCAT(COUNT(*), '/', COALESCE(BIT_XOR(CRC32(CONCAT_WS(':', table_name, column_name,
   column_type, is_nullable, ordinal_position, COALESCE(column_default, ''), extra))), 0))
  FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name NOT LIKE :ours),
 (SELECT CONCAT(COUNT(*), '/', COALESCE(BIT_XOR(CRC32(CONCAT_WS(':', table_name, index_name,
   column_name, seq_in_index, non_unique))), 0))
  FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name NOT LIKE :ours),
 (SELECT CONCAT(COUNT(*), '/', COALESCE(BIT_XOR(CRC32(CONCAT_WS(':', table_name,
   constraint_name, referenced_table_name, update_rule, delete_rule))), 0))
  FROM information_schema.referential_constraints WHERE constraint_schema = DATABASE()
   AND table_name NOT LIKE :ours)
"""


class MySQLSupport(DialectSupport):
    name: ClassVar[str] = "mysql"
    has_change_log: ClassVar[bool] = True
    # DDL and TRUNCATE commit implicitly on MySQL: the mark finds such a commit even when the
    # test wrote no logged row before it (TRUNCATE fires no trigger).
    marks_transactions: ClassVar[bool] = True
    logs_truncate: ClassVar[bool] = False
    driver_autocommit_options: ClassVar[tuple[str, ...]] = ("autocommit",)
    current_database_sql: ClassVar[str | None] = "SELECT DATABASE()"

    def prepare_engine(self, engine: Engine) -> None:
        super().prepare_engine(engine)
        # Any connection event listener makes SQLAlchemy dispatch events around every
        # statement; on MySQL that costs a few microseconds against a round trip of about a
        # hundred, and it is the only way to see SET and friends without a reset per test.
        event.listen(engine, "before_cursor_execute", _flag_state_statements)

    def prepare_async_engine(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", _flag_state_statements)

    def left_autocommit(self, dbapi_connection: DBAPIConnection) -> bool:
        get_autocommit = getattr(dbapi_connection, "get_autocommit", None)
        return bool(get_autocommit()) if callable(get_autocommit) else False

    def connection_id_sql(self) -> str:
        return "CONNECTION_ID()"

    def end_test(self, connection: Connection, *, change_log: bool) -> TestEnding:
        """ROLLBACK, read the log, ROLLBACK again.

        The second ROLLBACK ends the transaction the read began: with autocommit off, InnoDB
        would otherwise keep the read's snapshot into the next test, which would then not see
        what session fixtures committed in between. PyMySQL sends one statement per round trip.
        """
        dirty = bool(connection.info.pop(STATE_FLAG, False))
        connection.rollback()
        found: list[tuple[str, bool | None]] = []
        if change_log:
            found = self.read_change_log(connection)
            connection.rollback()
        state = ("session state (SET, user variables, temporary tables ...)",) if dirty else ()
        return ending(found, state)

    def install_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        """Row triggers (MySQL has no statement triggers), three per table."""
        connection.exec_driver_sql(self.change_log_table_ddl())
        preparer = connection.dialect.identifier_preparer
        for position, table in enumerate(tables):
            for operation in ("INSERT", "UPDATE", "DELETE"):
                name = preparer.quote(f"pytest_sessionmaker_log_{position}_{operation.lower()}")
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
                connection.exec_driver_sql(
                    f"CREATE TRIGGER {name} AFTER {operation} ON {preparer.format_table(table)} "
                    f"FOR EACH ROW INSERT IGNORE INTO {CHANGE_LOG} VALUES "
                    f"({_literal(table.fullname)}, CONNECTION_ID())"
                )

    def uninstall_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        triggers = connection.execute(
            text(
                "SELECT trigger_name FROM information_schema.triggers WHERE "
                "trigger_schema = DATABASE() AND trigger_name LIKE :pattern"
            ),
            {"pattern": "pytest_sessionmaker_log_%"},
        ).scalars()
        preparer = connection.dialect.identifier_preparer
        for name in list(triggers):
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {preparer.quote(name)}")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {CHANGE_LOG}")

    def schema_fingerprint(self, connection: Connection) -> str:
        """Tables, columns, indexes and foreign keys, each folded into a count and a checksum.
        (Not the tables' creation times: the restore's own ALTER TABLE ... AUTO_INCREMENT may
        change them.)"""
        row = connection.execute(text(MYSQL_FINGERPRINT), {"ours": "pytest\\_sessionmaker%"}).one()
        return ":".join(str(value) for value in row)

    def drop_tables(self, connection: Connection, names: Sequence[str]) -> None:
        with self.foreign_keys_relaxed(connection):
            super().drop_tables(connection, names)

    def read_counters(
        self, connection: Connection, tables: Sequence[Table], *, every_sequence: bool = False
    ) -> Counters:
        names = {table.fullname for table in tables}
        if not getattr(connection.dialect, "is_mariadb", False):
            # MySQL 8 caches these statistics for a day unless told not to.
            connection.exec_driver_sql("SET SESSION information_schema_stats_expiry = 0")
            connection.info.pop(STATE_FLAG, None)
        rows = connection.execute(
            text(
                "SELECT table_name, auto_increment FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL"
            )
        ).all()
        return {name: (value, True) for name, value in rows if name in names}

    def reset_counters(
        self, connection: Connection, counters: Counters, tables: Mapping[str, Table]
    ) -> None:
        preparer = connection.dialect.identifier_preparer
        for name, (value, _) in counters.items():
            # InnoDB takes max(value, largest id + 1), so this is exact once rows are restored.
            target = preparer.format_table(tables[name])
            connection.exec_driver_sql(f"ALTER TABLE {target} AUTO_INCREMENT = {int(value or 1)}")

    @contextlib.contextmanager
    def foreign_keys_relaxed(self, connection: Connection) -> Iterator[None]:
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        try:
            yield
        finally:
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
            connection.info.pop(STATE_FLAG, None)

    def empty_tables(self, connection: Connection, tables: Sequence[Table]) -> None:
        super().empty_tables(connection, tables)
        preparer = connection.dialect.identifier_preparer
        for table in tables:
            connection.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} AUTO_INCREMENT = 1"
            )

    # -- test databases -------------------------------------------------------------------

    def can_create_databases(self) -> bool:
        return True

    def prepare_lock_connection(self, admin: Connection) -> None:
        """The server ends a connection idle for wait_timeout seconds (8 hours by default),
        and the lock with it: the lock connection waits for a year."""
        admin.exec_driver_sql("SET SESSION wait_timeout = 31536000")

    @staticmethod
    def has_database_comments(admin: Connection) -> bool:
        """MariaDB 10.5 and later: CREATE DATABASE ... COMMENT, in information_schema."""
        info = admin.dialect.server_version_info or ()
        version = tuple(part for part in info if isinstance(part, int))
        return bool(getattr(admin.dialect, "is_mariadb", False)) and version >= (10, 5)

    def database_mark(self, admin: Connection, name: str) -> str | None:
        if self.has_database_comments(admin):
            row = admin.execute(
                text(
                    "SELECT schema_comment FROM information_schema.schemata WHERE schema_name = :n"
                ),
                {"n": name},
            ).first()
            return None if row is None else str(row[0] or "")
        return self._mark_table_mark(admin, name)

    def create_marked_database(
        self, admin: Connection, name: str, mark: str, template: str | None = None
    ) -> None:
        """On MariaDB the mark is in the CREATE DATABASE statement itself. MySQL has no database
        comment: there the mark is a table created just after, and a database left empty by a
        kill in between is recognised by its emptiness (see _mark_table_mark).

        Neither has template databases (copying one would be a CREATE TABLE ... LIKE and an
        INSERT per table, no cheaper than creating the tables), so ``template`` is refused."""
        if template is not None:
            raise NotImplementedError("MySQL and MariaDB have no template databases")
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        if self.has_database_comments(admin):
            admin.exec_driver_sql(f"CREATE DATABASE {quoted} COMMENT {_literal(mark)}")
            return
        admin.exec_driver_sql(f"CREATE DATABASE {quoted}")
        admin.exec_driver_sql(f"CREATE TABLE {quoted}.{MARK_TABLE} (mark VARCHAR(200))")
        admin.exec_driver_sql(f"INSERT INTO {quoted}.{MARK_TABLE} VALUES ({_literal(mark)})")

    def set_mark(self, admin: Connection, name: str, mark: str) -> None:
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        if self.has_database_comments(admin):
            admin.exec_driver_sql(f"ALTER DATABASE {quoted} COMMENT = {_literal(mark)}")
        else:
            admin.exec_driver_sql(f"UPDATE {quoted}.{MARK_TABLE} SET mark = {_literal(mark)}")

    def _mark_table_mark(self, admin: Connection, name: str) -> str | None:
        tables = admin.execute(
            text(
                "SELECT s.schema_name, t.table_name FROM information_schema.schemata s "
                "LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name "
                "WHERE s.schema_name = :n"
            ),
            {"n": name},
        ).all()
        if not tables:
            return None
        names = {table for _, table in tables if table is not None}
        if not names:
            # Created by the plugin and killed before its mark: an empty database holds
            # nothing that could be lost (MySQL keeps grants apart from the database).
            return f"{OWNER_MARK} (its creation was interrupted)"
        if MARK_TABLE not in names:
            return ""
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        value = admin.exec_driver_sql(f"SELECT mark FROM {quoted}.{MARK_TABLE}").scalar()
        return str(value or "")

    def others_connected(self, admin: Connection, name: str) -> bool:
        """Sessions whose current database it is (all of them only with the PROCESS
        privilege; without it, the user's own)."""
        return bool(self._other_sessions(admin, name))

    @staticmethod
    def _other_sessions(admin: Connection, name: str) -> list[int]:
        return list(
            admin.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = :n AND id <> CONNECTION_ID()"
                ),
                {"n": name},
            ).scalars()
        )

    def drop_own_database(self, admin: Connection, name: str) -> None:
        """End the sessions the run's tests left in the database (their open transactions hold
        metadata locks DROP DATABASE would wait for), then drop it, waiting for other locks no
        longer than the teardown's limit."""
        for session in self._other_sessions(admin, name):
            with contextlib.suppress(DBAPIError):  # it ended meanwhile, or is not ours to end
                admin.exec_driver_sql(f"KILL CONNECTION {int(session)}")
        admin.exec_driver_sql(f"SET SESSION lock_wait_timeout = {TEARDOWN_LOCK_TIMEOUT}")
        self.drop_database(admin, name)

    @contextlib.contextmanager
    def lock_waits_limited(self, connection: Connection) -> Iterator[None]:
        # A session setting: the SET is seen by _flag_state_statements, so the connection is
        # replaced rather than reused.
        connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {TEARDOWN_LOCK_TIMEOUT}")
        yield

    def try_lock(self, admin: Connection, key: str) -> bool:
        return bool(self.scalar(admin, "SELECT GET_LOCK(:k, 0)", k=key))

    def unlock(self, admin: Connection, key: str) -> None:
        self.scalar(admin, "SELECT RELEASE_LOCK(:k)", k=key)

    def holds_lock(self, admin: Connection, key: str) -> bool:
        return bool(self.scalar(admin, "SELECT IS_USED_LOCK(:k) = CONNECTION_ID()", k=key))


def _flag_state_statements(
    connection: Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if STATE_STATEMENT.search(statement) is not None:
        connection.info[STATE_FLAG] = True


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
