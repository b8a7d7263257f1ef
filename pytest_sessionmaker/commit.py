"""Restoring the tables after real commits, in time proportional to what was written.

Triggers on every table the plugin created note the table's name in a small change log, whoever
writes: this process, a thread with its own engine, a subprocess. After a ``db_commit`` test (or
a breach in a rolled-back one) only the logged tables are restored to their baseline, and
identity/sequence counters are put back. A table whose baseline is empty (the common case) is
restored with one DELETE; a table holding seed rows is restored from a snapshot copy taken when
those rows appeared, row by row on its primary key so unchanged rows referenced by other tables
stay in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, String, Table, and_, exists, select, text

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Connection, Engine

CHANGE_LOG = "pytest_sessionmaker_changes"
SNAPSHOT_PREFIX = "pytest_sessionmaker_snap_"


def _change_log_table() -> Table:
    return Table(CHANGE_LOG, MetaData(), Column("table_name", String(255), primary_key=True))


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _qualified(engine: Engine, table: Table) -> str:
    return engine.dialect.identifier_preparer.format_table(table)


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _trigger_name(position: int, operation: str) -> str:
    return f"pytest_sessionmaker_log_{position}_{operation.lower()}"


ROW_OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def _drop_trigger_ddl(engine: Engine, table: Table, position: int) -> list[str]:
    if engine.dialect.name == "postgresql":
        name = _quote(engine, _trigger_name(position, "all"))
        return [f"DROP TRIGGER IF EXISTS {name} ON {_qualified(engine, table)}"]
    return [
        f"DROP TRIGGER IF EXISTS {_quote(engine, _trigger_name(position, operation))}"
        for operation in ROW_OPERATIONS
    ]


def _trigger_ddl(engine: Engine, table: Table, position: int) -> list[str]:
    """DDL for the triggers that log writes to ``table`` (one statement per list item).

    PostgreSQL logs once per statement; SQLite and MySQL only have row triggers.
    """
    log, target, key = (
        _quote(engine, CHANGE_LOG),
        _qualified(engine, table),
        _literal(table.fullname),
    )
    dialect = engine.dialect.name
    if dialect == "postgresql":
        name = _quote(engine, _trigger_name(position, "all"))
        return [
            f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {target} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION pytest_sessionmaker_note_change({key})"
        ]
    statements = []
    for operation in ROW_OPERATIONS:
        name = _quote(engine, _trigger_name(position, operation))
        if dialect == "sqlite":
            statements.append(
                f"CREATE TRIGGER {name} AFTER {operation} ON {target} "
                f"BEGIN INSERT OR IGNORE INTO {log} VALUES ({key}); END"
            )
        elif dialect in ("mysql", "mariadb"):
            statements.append(
                f"CREATE TRIGGER {name} AFTER {operation} ON {target} "
                f"FOR EACH ROW INSERT IGNORE INTO {log} VALUES ({key})"
            )
    return statements


POSTGRESQL_LOG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION pytest_sessionmaker_note_change() RETURNS trigger AS $$
BEGIN
    INSERT INTO {CHANGE_LOG} VALUES (TG_ARGV[0]) ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


@dataclass
class Baseline:
    """What the tables held when the last checkpoint was taken."""

    snapshots: dict[str, str] = field(default_factory=dict)
    counters: dict[str, tuple[int | None, bool]] = field(default_factory=dict)


class TableRestorer:
    """Logs writes to the plugin's tables and puts the written tables back as they were."""

    supported_dialects = ("postgresql", "sqlite", "mysql", "mariadb")

    def __init__(self, engine: Engine, tables: list[Table]) -> None:
        self.engine = engine
        self.tables = tables
        self.by_name = {table.fullname: table for table in tables}
        self.baseline = Baseline()
        self.log = _change_log_table()

    @classmethod
    def supports(cls, engine: Engine) -> bool:
        return engine.dialect.name in cls.supported_dialects

    def install(self) -> None:
        """Create the change log and the triggers (once per run, after the tables)."""
        with self.engine.begin() as connection:
            self.log.create(connection, checkfirst=True)
            if self.engine.dialect.name == "postgresql":
                connection.exec_driver_sql(POSTGRESQL_LOG_FUNCTION)
            for position, table in enumerate(self.tables):
                for statement in _drop_trigger_ddl(self.engine, table, position):
                    connection.exec_driver_sql(statement)
                for statement in _trigger_ddl(self.engine, table, position):
                    connection.exec_driver_sql(statement)
        self.checkpoint()

    def uninstall(self) -> None:
        """Drop snapshots, change log and (with their tables) the triggers."""
        with self.engine.begin() as connection:
            for snapshot in self.baseline.snapshots.values():
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(self.engine, snapshot)}")
            for position, table in enumerate(self.tables):
                for statement in _drop_trigger_ddl(self.engine, table, position):
                    connection.exec_driver_sql(statement)
            self.log.drop(connection, checkfirst=True)
            if self.engine.dialect.name == "postgresql":
                connection.exec_driver_sql(
                    "DROP FUNCTION IF EXISTS pytest_sessionmaker_note_change() CASCADE"
                )
        self.baseline = Baseline()

    def changed_tables(self, connection: Connection) -> list[Table]:
        names = set(connection.execute(select(self.log.c.table_name)).scalars())
        return [table for table in self.tables if table.fullname in names]

    def checkpoint(self) -> None:
        """Accept what the tables hold now as the state to restore to (seed data included)."""
        with self.engine.begin() as connection:
            changed = self.changed_tables(connection)
            for table in changed:
                self._snapshot(connection, table)
            if changed:
                connection.execute(self.log.delete())
            self.baseline.counters = read_counters(connection, self.tables)

    def restore(self) -> list[str]:
        """Put every table written since the checkpoint back; return their names."""
        with self.engine.begin() as connection:
            changed = self.changed_tables(connection)
            counters = read_counters(connection, self.tables)
            moved = {
                name: value
                for name, value in self.baseline.counters.items()
                if counters.get(name) != value
            }
            if not changed and not moved:
                return []
            with foreign_keys_relaxed(connection):
                for table in reversed(changed):
                    self._remove_written_rows(connection, table)
                for table in changed:
                    self._put_back_baseline_rows(connection, table)
            reset_counters(connection, moved, self.by_name)
            if changed:
                connection.execute(self.log.delete())
        return [table.fullname for table in changed]

    def _snapshot(self, connection: Connection, table: Table) -> None:
        snapshot = self.baseline.snapshots.pop(table.fullname, None)
        if snapshot is not None:
            connection.exec_driver_sql(f"DROP TABLE {_quote(self.engine, snapshot)}")
        if connection.execute(select(text("1")).select_from(table).limit(1)).first() is None:
            return
        snapshot = f"{SNAPSHOT_PREFIX}{self.tables.index(table)}"
        connection.exec_driver_sql(
            f"CREATE TABLE {_quote(self.engine, snapshot)} AS "
            f"SELECT * FROM {_qualified(self.engine, table)}"
        )
        self.baseline.snapshots[table.fullname] = snapshot

    def _snapshot_of(self, table: Table) -> Table | None:
        name = self.baseline.snapshots.get(table.fullname)
        if name is None:
            return None
        return Table(name, MetaData(), *(Column(c.name, c.type) for c in table.c))

    def _remove_written_rows(self, connection: Connection, table: Table) -> None:
        """First pass, children before parents: delete rows the baseline does not have."""
        snapshot = self._snapshot_of(table)
        key = list(table.primary_key.columns)
        if snapshot is None or not key:
            connection.execute(table.delete())
            return
        same_key = and_(*(snapshot.c[c.name] == c for c in key))
        connection.execute(table.delete().where(~exists().where(same_key)))

    def _put_back_baseline_rows(self, connection: Connection, table: Table) -> None:
        """Second pass, parents before children: undo updates, re-insert deleted rows."""
        snapshot = self._snapshot_of(table)
        if snapshot is None:
            return
        key = list(table.primary_key.columns)
        if not key:
            connection.execute(table.insert().from_select(list(table.c), select(snapshot)))
            return
        same_key = and_(*(snapshot.c[c.name] == c for c in key))
        others = [c for c in table.c if c not in key]
        if others:
            unchanged = exists().where(
                same_key, *(snapshot.c[c.name].is_not_distinct_from(c) for c in others)
            )
            connection.execute(
                table.update()
                .where(exists().where(same_key), ~unchanged)
                .values(
                    {
                        c: select(snapshot.c[c.name]).where(same_key).scalar_subquery()
                        for c in others
                    }
                )
            )
        missing = ~exists().where(and_(*(c == snapshot.c[c.name] for c in key)))
        connection.execute(
            table.insert().from_select(
                [c.name for c in table.c],
                select(*(snapshot.c[c.name] for c in table.c)).where(missing),
            )
        )


class foreign_keys_relaxed:
    """Let restore statements run in an order foreign keys would otherwise forbid."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name

    def __enter__(self) -> None:
        if self.dialect in ("mysql", "mariadb"):
            self.connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        elif self.dialect == "sqlite":
            self.connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")

    def __exit__(self, *exc: object) -> None:
        if self.dialect in ("mysql", "mariadb"):
            self.connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")


def read_counters(
    connection: Connection, tables: Iterable[Table]
) -> dict[str, tuple[int | None, bool]]:
    """Identity and sequence counters of the plugin's tables, by sequence or table name."""
    dialect = connection.dialect.name
    names = [table.fullname for table in tables]
    if dialect == "postgresql":
        rows = connection.execute(
            text(
                "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename), "
                "s.last_value FROM pg_sequences s "
                "JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = "
                "(quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass "
                "AND d.deptype IN ('a', 'i') "
                "WHERE d.refobjid = ANY(CAST(:tables AS regclass[]))"
            ),
            {"tables": [_qualified(connection.engine, table) for table in tables]},
        ).all()
        return {name: (value, value is not None) for name, value in rows}
    if dialect == "sqlite":
        has_sequence = connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
        ).first()
        if not has_sequence:
            return {}
        rows = connection.exec_driver_sql("SELECT name, seq FROM sqlite_sequence").all()
        return {name: (seq, True) for name, seq in rows if name in names}
    if dialect in ("mysql", "mariadb"):
        if not getattr(connection.dialect, "is_mariadb", False):
            # MySQL 8 caches these statistics for a day unless told not to.
            connection.exec_driver_sql("SET SESSION information_schema_stats_expiry = 0")
        rows = connection.execute(
            text(
                "SELECT table_name, auto_increment FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND auto_increment IS NOT NULL"
            )
        ).all()
        return {name: (value, True) for name, value in rows if name in names}
    return {}


def reset_counters(
    connection: Connection, counters: dict[str, tuple[int | None, bool]], tables: dict[str, Table]
) -> None:
    dialect = connection.dialect.name
    for name, (value, is_called) in counters.items():
        if dialect == "postgresql":
            connection.execute(
                text("SELECT setval(CAST(:name AS regclass), :value, :called)"),
                {"name": name, "value": value if value is not None else 1, "called": is_called},
            )
        elif dialect == "sqlite":
            connection.exec_driver_sql(
                "UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (value, name)
            )
        elif dialect in ("mysql", "mariadb"):
            # InnoDB takes max(value, largest id + 1), so this is exact once rows are restored.
            target = _qualified(connection.engine, tables[name])
            connection.exec_driver_sql(f"ALTER TABLE {target} AUTO_INCREMENT = {int(value or 1)}")
