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

from sqlalchemy import BigInteger, Column, MetaData, String, Table, and_, exists, select, text

from pytest_sessionmaker.dialects.base import CHANGE_LOG

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from pytest_sessionmaker.dialects import DialectSupport

SNAPSHOT_PREFIX = "pytest_sessionmaker_snap_"


def _change_log_table() -> Table:
    return Table(
        CHANGE_LOG,
        MetaData(),
        Column("table_name", String(255), primary_key=True),
        Column("connection_id", BigInteger, primary_key=True),
    )


def _quote(engine: Engine, name: str) -> str:
    return engine.dialect.identifier_preparer.quote(name)


def _qualified(engine: Engine, table: Table) -> str:
    return engine.dialect.identifier_preparer.format_table(table)


@dataclass
class Baseline:
    """What the tables held when the last checkpoint was taken."""

    snapshots: dict[str, str] = field(default_factory=dict)
    counters: dict[str, tuple[int | None, bool]] = field(default_factory=dict)


class TableRestorer:
    """Logs writes to the plugin's tables and puts the written tables back as they were."""

    def __init__(self, engine: Engine, support: DialectSupport, tables: list[Table]) -> None:
        self.engine = engine
        self.support = support
        self.tables = tables
        self.by_name = {table.fullname: table for table in tables}
        self.baseline = Baseline()
        self.log = _change_log_table()

    def install(self, *, existing_rows: bool = False) -> None:
        """Create the change log and the triggers (once per run, after the tables).

        ``existing_rows``: the tables may hold rows already (a data migration's), which the
        log never saw written; every table is then looked at for the first baseline.
        """
        with self.engine.begin() as connection:
            self.support.install_change_log(connection, self.tables)
        self.checkpoint(every_table=existing_rows)

    def uninstall(self) -> None:
        """Drop snapshots, change log and (with their tables) the triggers."""
        with self.engine.begin() as connection:
            for snapshot in self.baseline.snapshots.values():
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(self.engine, snapshot)}")
            self.support.uninstall_change_log(connection, self.tables)
        self.baseline = Baseline()

    def changed_tables(self, connection: Connection) -> list[Table]:
        names = set(connection.execute(select(self.log.c.table_name)).scalars())
        return [table for table in self.tables if table.fullname in names]

    def checkpoint(self, *, every_table: bool = False) -> None:
        """Accept what the tables hold now as the state to restore to (seed data included)."""
        with self.engine.begin() as connection:
            changed = self.tables if every_table else self.changed_tables(connection)
            for table in changed:
                self._snapshot(connection, table)
            connection.execute(self.log.delete())
            self.baseline.counters = self.support.read_counters(connection, self.tables)

    def restore(self) -> list[str]:
        """Put every table written since the checkpoint back; return their names."""
        with self.engine.begin() as connection:
            changed = self.changed_tables(connection)
            counters = self.support.read_counters(connection, self.tables)
            moved = {
                name: value
                for name, value in self.baseline.counters.items()
                if counters.get(name) != value
            }
            if changed:
                with self.support.foreign_keys_relaxed(connection):
                    for table in reversed(changed):
                        self._remove_written_rows(connection, table)
                    for table in changed:
                        self._put_back_baseline_rows(connection, table)
            self.support.reset_counters(connection, moved, self.by_name)
            connection.execute(self.log.delete())
        return [table.fullname for table in changed]

    def reset_moved_counters(self) -> None:
        """Put counters that moved since the baseline back (rolled-back tests advance them)."""
        with self.engine.begin() as connection:
            counters = self.support.read_counters(connection, self.tables)
            moved = {
                name: value
                for name, value in self.baseline.counters.items()
                if counters.get(name) != value
            }
            if moved:
                self.support.reset_counters(connection, moved, self.by_name)

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
