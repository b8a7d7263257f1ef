"""MySQL and MariaDB: implicit commits, session state a ROLLBACK keeps, and row triggers."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event, text

from pytest_sessionmaker.dialects.base import (
    CHANGE_LOG,
    STATE_FLAG,
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


class MySQLSupport(DialectSupport):
    name: ClassVar[str] = "mysql"
    has_change_log: ClassVar[bool] = True
    # DDL and TRUNCATE commit implicitly on MySQL: the mark finds such a commit even when the
    # test wrote no logged row before it (TRUNCATE fires no trigger).
    marks_transactions: ClassVar[bool] = True
    driver_autocommit_options: ClassVar[tuple[str, ...]] = ("autocommit",)
    current_database_sql: ClassVar[str | None] = "SELECT DATABASE()"

    def prepare_engine(self, engine: Engine) -> None:
        super().prepare_engine(engine)
        # Any connection event listener makes SQLAlchemy dispatch events around every
        # statement; on MySQL that costs a few microseconds against a round trip of about a
        # hundred, and it is the only way to see SET and friends without a reset per test.
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

    def read_counters(self, connection: Connection, tables: Sequence[Table]) -> Counters:
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

    def database_exists(self, admin: Connection, name: str) -> bool:
        return bool(
            self.scalar(
                admin, "SELECT 1 FROM information_schema.schemata WHERE schema_name = :n", n=name
            )
        )

    def try_lock(self, admin: Connection, key: str) -> bool:
        return bool(self.scalar(admin, "SELECT GET_LOCK(:k, 0)", k=key[:64]))

    def unlock(self, admin: Connection, key: str) -> None:
        self.scalar(admin, "SELECT RELEASE_LOCK(:k)", k=key[:64])

    def holds_lock(self, admin: Connection, key: str) -> bool:
        return bool(self.scalar(admin, "SELECT IS_USED_LOCK(:k) = CONNECTION_ID()", k=key[:64]))


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
