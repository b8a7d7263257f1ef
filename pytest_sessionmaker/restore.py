"""Putting the tables back exactly after real commits, in time proportional to what was written.

Triggers on every table the plugin owns note the table's name in a small change log, whoever
writes: this process, a thread with its own engine, a subprocess. After a ``db_commit`` test (or
an escape from a rolled-back one) only the logged tables are restored to their baseline, and
identity/sequence counters are put back. A table whose baseline is empty (the common case) is
restored with one DELETE; a table holding seed rows is restored from a snapshot copy taken when
those rows appeared: first row by row on its primary key (rows the test left alone stay in
place), and when that trips over a constraint (a unique value swapped between two seed rows, a
seed row re-pointed to a new parent), by emptying the table and the tables that reference it and
copying the baseline back whole.

Baselines form a stack: seed data committed by a module- or class-scoped fixture is a level of
its own, kept while its scope runs and undone when the fixture is torn down, so that later
modules start from the session's baseline again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    and_,
    exists,
    func,
    not_,
    select,
)
from sqlalchemy.exc import DBAPIError

from pytest_sessionmaker.dialects.base import CHANGE_LOG, SCHEMA_MARK

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Connection, Engine

    from pytest_sessionmaker.dialects import DialectSupport
    from pytest_sessionmaker.dialects.base import Counters

SNAPSHOT_PREFIX = "pytest_sessionmaker_snap_"


def _change_log_table() -> Table:
    return Table(
        CHANGE_LOG,
        MetaData(),
        Column("table_name", String(255), primary_key=True),
        Column("connection_id", BigInteger, primary_key=True),
    )


class RestoreFailed(Exception):
    """The baseline could not be put back; the database is as the test left it."""


class SchemaChanged(Exception):
    """DDL changed the schema since the baseline: rows alone cannot put it back."""


@dataclass
class Level:
    """One baseline: what the tables held when it was taken, over the level below it."""

    # Table -> snapshot table holding its rows at this level (None: the table was empty).
    snapshots: dict[str, str | None] = field(default_factory=dict)
    # Table -> its number of rows at this level, for tables with a snapshot.
    counts: dict[str, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=dict)
    # What made this level: None for the session's, else the fixture whose commits did.
    owner: object | None = None
    # The schema's digest at this level (where DDL is not logged by the database itself).
    fingerprint: str | None = None


def drop_leftover_snapshots(connection: Connection) -> None:
    """Snapshot tables a killed run left (its teardown never ran): the next snapshot of the same
    table would fail on the name. Only the plugin makes tables with this prefix."""
    from sqlalchemy import inspect

    for name in inspect(connection).get_table_names():
        if name.startswith(SNAPSHOT_PREFIX):
            quoted = connection.dialect.identifier_preparer.quote(name)
            connection.exec_driver_sql(f"DROP TABLE {quoted}")


class TableRestorer:
    """Logs writes to the plugin's tables and puts the written tables back as they were."""

    def __init__(
        self,
        engine: Engine,
        support: DialectSupport,
        tables: list[Table],
        *,
        every_sequence: bool = False,
    ) -> None:
        self.engine = engine
        self.support = support
        self.tables = tables
        # In a database of its own the plugin restores every sequence, standalone ones too.
        self.every_sequence = every_sequence
        # Whether the database logs DDL into the change log (else fingerprints are compared).
        self.ddl_logged = False
        self.by_name = {table.fullname: table for table in tables}
        self.levels: list[Level] = [Level()]
        self.log = _change_log_table()
        self._snapshot_serial = 0

    # -- the run's life -----------------------------------------------------------------------

    def install(self, *, existing_rows: bool = False) -> None:
        """Create the change log and the triggers (once per run, after the tables).

        ``existing_rows``: the tables may hold rows already (a data migration's), which the
        log never saw written; every table is then looked at for the first baseline.
        """
        with self.engine.begin() as connection:
            drop_leftover_snapshots(connection)
        self.install_triggers()
        self.checkpoint(every_table=existing_rows)

    def adopt(self, *, existing_rows: bool = False) -> None:
        """The change log and triggers exist already (a copy of a template database): take
        the first baseline, as install does after creating them."""
        with self.engine.connect() as connection:
            self.ddl_logged = self.support.ddl_watched(connection)
        self.checkpoint(every_table=existing_rows)

    def install_triggers(self) -> None:
        with self.engine.begin() as connection:
            self.support.install_change_log(connection, self.tables)
            self.ddl_logged = self.support.watch_ddl(connection)

    def uninstall_triggers(self) -> None:
        with self.engine.begin() as connection:
            self.support.unwatch_ddl(connection)
            self.support.uninstall_change_log(connection, self.tables)

    def uninstall(self, connection: Connection | None = None) -> None:
        """Drop snapshots, change log and (with their tables) the triggers."""
        if connection is None:
            with self.engine.begin() as connection:
                self.uninstall(connection)
            return
        for level in self.levels:
            for snapshot in level.snapshots.values():
                if snapshot is not None:
                    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {self._quote(snapshot)}")
        self.support.unwatch_ddl(connection)
        self.support.uninstall_change_log(connection, self.tables)
        self.levels = [Level()]

    # -- baselines ----------------------------------------------------------------------------

    def checkpoint(self, owner: object | None = None, *, every_table: bool = False) -> list[str]:
        """Take what the tables hold now as the state to restore to (seed data included).

        With an ``owner`` (a narrower-scoped fixture) whose commits changed tables, a new level
        is pushed for it, undone by ``pop(owner)``; otherwise the top level takes them in. With
        ``every_table``, every table is looked at, not only the logged ones (rows written before
        the log existed). Returns the tables taken in.
        """
        with self.engine.begin() as connection:
            changed = list(self.tables) if every_table else self._logged_tables(connection)
            if owner is not None and changed:
                self.levels.append(Level(owner=owner))
            level = self.levels[-1]
            for table in changed:
                self._snapshot(connection, table, level)
            connection.execute(self.log.delete())
            level.counters = self._read_counters(connection)
            if not self.ddl_logged:
                level.fingerprint = self.support.schema_fingerprint(connection)
        return [table.fullname for table in changed]

    def _read_counters(self, connection: Connection) -> Counters:
        return self.support.read_counters(
            connection, self.tables, every_sequence=self.every_sequence
        )

    def schema_changed(self, connection: Connection) -> bool:
        """Whether DDL changed the schema since the baseline (logged, or by its digest)."""
        if self.ddl_logged:
            marks = connection.execute(
                select(self.log.c.table_name).where(self.log.c.table_name == SCHEMA_MARK)
            ).first()
            return marks is not None
        fingerprint = self.support.schema_fingerprint(connection)
        return fingerprint != self._fingerprint()

    def _fingerprint(self) -> str | None:
        for level in reversed(self.levels):
            if level.fingerprint is not None:
                return level.fingerprint
        return None

    def owns_level(self, owner: object) -> bool:
        return len(self.levels) > 1 and self.levels[-1].owner is owner

    def pop(self, owner: object) -> None:
        """The narrower scope that committed seed data ended: back to the level below."""
        if not self.owns_level(owner):
            return
        top = self.levels[-1]
        written = [self.by_name[name] for name in top.snapshots]
        self.levels.pop()
        with self.engine.begin() as connection:
            self._put_back(connection, written + self._logged_tables(connection))
            self._reset_counters(connection)
            connection.execute(self.log.delete())
            for snapshot in top.snapshots.values():
                if snapshot is not None:
                    connection.exec_driver_sql(f"DROP TABLE {self._quote(snapshot)}")

    # -- restoring --------------------------------------------------------------------------

    def restore(self, *, every_table: bool = False) -> list[str]:
        """Put every table written since the baseline back; return the names of those written.

        With ``every_table`` every table is put back (a commit of unknown extent). Raises
        RestoreFailed, leaving the database as it was, when the baseline cannot be put back.
        """
        try:
            with self.engine.begin() as connection:
                if self.schema_changed(connection):
                    raise SchemaChanged
                written = self._logged_tables(connection)
                changed = list(self.tables) if every_table else list(written)
                if not self.support.logs_truncate:
                    changed += self._emptied_behind_the_log(connection, changed)
                self._put_back(connection, changed)
                self._reset_counters(connection)
                if changed:
                    # The restore's own writes are logged too.
                    connection.execute(self.log.delete())
        except DBAPIError as exc:
            raise RestoreFailed(str(exc.orig or exc).strip().splitlines()[0]) from exc
        return [table.fullname for table in written]

    def reset_moved_counters(self) -> None:
        """Put counters that moved since the baseline back (rolled-back tests advance them:
        sequences are not transactional), in one query when none moved."""
        with self.engine.begin() as connection:
            self._reset_counters(connection)

    def copy_back_everything(self) -> None:
        """After the tables were made anew (a schema rebuild): every baseline row back, the
        counters back, the log empty."""
        with self.engine.begin() as connection:
            with self.support.foreign_keys_relaxed(connection):
                for table in self.tables:
                    snapshot = self._snapshot_of(table)
                    if snapshot is not None:
                        self._insert(connection, table, snapshot, where=None)
            self._reset_counters(connection)
            connection.execute(self.log.delete())
            if not self.ddl_logged:
                self.levels[0].fingerprint = self.support.schema_fingerprint(connection)
                for level in self.levels[1:]:
                    level.fingerprint = None

    def _reset_counters(self, connection: Connection) -> None:
        baseline = self.levels[-1].counters
        current = self._read_counters(connection)
        moved = {name: value for name, value in baseline.items() if current.get(name) != value}
        # A counter that appeared since (SQLite's sqlite_sequence gets a row on the first
        # insert into an AUTOINCREMENT table) goes back to its start.
        appeared = {name: (None, False) for name in current.keys() - baseline.keys()}
        if moved or appeared:
            self.support.reset_counters(connection, {**moved, **appeared}, self.by_name)

    def _emptied_behind_the_log(self, connection: Connection, changed: list[Table]) -> list[Table]:
        """Tables with seed rows whose row count changed while the log saw nothing (TRUNCATE on
        MySQL fires no trigger): one query over the seeded tables only."""
        seeded = [
            (table, count)
            for table in self.tables
            if table not in changed and (count := self._count_at_baseline(table))
        ]
        if not seeded:
            return []
        counts = connection.execute(
            select(
                *(select(func.count()).select_from(table).scalar_subquery() for table, _ in seeded)
            )
        ).one()
        return [table for (table, count), now in zip(seeded, counts, strict=True) if now != count]

    def _put_back(self, connection: Connection, tables: Iterable[Table]) -> None:
        """Make ``tables`` hold their baseline rows: row by row on the key first; when a
        constraint stops that, empty them (and the tables referencing them) and copy back."""
        chosen = {table.fullname for table in tables}
        ordered = [table for table in self.tables if table.fullname in chosen]
        if not ordered:
            return
        with self.support.foreign_keys_relaxed(connection):
            savepoint = connection.begin_nested()
            try:
                for table in ordered:
                    self._update_changed_rows(connection, table)
                for table in reversed(ordered):
                    self._delete_extra_rows(connection, table)
                for table in ordered:
                    self._insert_missing_rows(connection, table)
            except DBAPIError:
                savepoint.rollback()
                self._copy_back_whole(connection, self._with_referencing(ordered))
            else:
                savepoint.commit()

    def _with_referencing(self, tables: list[Table]) -> list[Table]:
        """``tables`` and every table whose foreign keys reach them, parents first."""
        closure = {table.fullname for table in tables}
        grew = True
        while grew:
            grew = False
            for table in self.tables:
                if table.fullname in closure:
                    continue
                if any(fk.column.table.fullname in closure for fk in table.foreign_keys):
                    closure.add(table.fullname)
                    grew = True
        return [table for table in self.tables if table.fullname in closure]

    def _copy_back_whole(self, connection: Connection, tables: list[Table]) -> None:
        for table in reversed(tables):
            connection.execute(table.delete())
        for table in tables:
            snapshot = self._snapshot_of(table)
            if snapshot is not None:
                self._insert(connection, table, snapshot, where=None)

    # -- the three passes ---------------------------------------------------------------------

    def _update_changed_rows(self, connection: Connection, table: Table) -> None:
        snapshot = self._snapshot_of(table)
        key = list(table.primary_key.columns)
        others = [c for c in _writable(table) if c not in key]
        if snapshot is None or not key or not others:
            return
        same_key = and_(*(snapshot.c[c.name] == c for c in key))
        unchanged = exists().where(
            same_key, *(snapshot.c[c.name].is_not_distinct_from(c) for c in others)
        )
        connection.execute(
            table.update()
            .where(exists().where(same_key), ~unchanged)
            .values(
                {c: select(snapshot.c[c.name]).where(same_key).scalar_subquery() for c in others}
            )
        )

    def _delete_extra_rows(self, connection: Connection, table: Table) -> None:
        """Children before parents: delete rows the baseline does not have."""
        snapshot = self._snapshot_of(table)
        key = list(table.primary_key.columns)
        if snapshot is None:
            connection.execute(table.delete())
            return
        if not key:
            # Without a key, a row is its values: every row goes, all come back from the copy.
            connection.execute(table.delete())
            return
        same_key = and_(*(snapshot.c[c.name] == c for c in key))
        connection.execute(table.delete().where(~exists().where(same_key)))

    def _insert_missing_rows(self, connection: Connection, table: Table) -> None:
        """Parents before children: put back the baseline rows that are missing."""
        snapshot = self._snapshot_of(table)
        if snapshot is None:
            return
        key = list(table.primary_key.columns)
        if not key:
            self._insert(connection, table, snapshot, where=None)
            return
        present = exists().where(and_(*(c == snapshot.c[c.name] for c in key)))
        self._insert(connection, table, snapshot, where=not_(present))

    def _insert(self, connection: Connection, table: Table, snapshot: Table, where: Any) -> None:
        columns = _writable(table)
        query = select(*(snapshot.c[c.name] for c in columns))
        if where is not None:
            query = query.where(where)
        statement = table.insert().from_select([c.name for c in columns], query)
        if self.support.name == "postgresql" and any(_identity_always(c) for c in columns):
            # Values of a GENERATED ALWAYS identity column are written only when the INSERT
            # says so (PostgreSQL): the compiled statement gets the clause it cannot express.
            compiled = statement.compile(connection)
            sql = str(compiled).replace(") SELECT ", ") OVERRIDING SYSTEM VALUE SELECT ", 1)
            connection.exec_driver_sql(sql, compiled.params or ())
            return
        connection.execute(statement)

    # -- snapshots ----------------------------------------------------------------------------

    def _logged_tables(self, connection: Connection) -> list[Table]:
        names = set(connection.execute(select(self.log.c.table_name)).scalars())
        return [table for table in self.tables if table.fullname in names]

    def _count_at_baseline(self, table: Table) -> int:
        for level in reversed(self.levels):
            if table.fullname in level.snapshots:
                return level.counts.get(table.fullname, 0)
        return 0

    def _snapshot_name_of(self, table: Table) -> str | None:
        for level in reversed(self.levels):
            if table.fullname in level.snapshots:
                return level.snapshots[table.fullname]
        return None

    def _snapshot_of(self, table: Table) -> Table | None:
        name = self._snapshot_name_of(table)
        if name is None:
            return None
        return Table(name, MetaData(), *(Column(c.name, c.type) for c in table.c))

    def _snapshot(self, connection: Connection, table: Table, level: Level) -> None:
        """Copy the table's rows into a snapshot of ``level`` (or note that it is empty)."""
        previous = level.snapshots.pop(table.fullname, None)
        if previous is not None:
            connection.exec_driver_sql(f"DROP TABLE {self._quote(previous)}")
        level.counts.pop(table.fullname, None)
        count = connection.execute(select(func.count()).select_from(table)).scalar_one()
        if not count:
            level.snapshots[table.fullname] = None
            return
        self._snapshot_serial += 1
        snapshot = f"{SNAPSHOT_PREFIX}{self._snapshot_serial}"
        preparer = connection.dialect.identifier_preparer
        connection.exec_driver_sql(
            f"CREATE TABLE {self._quote(snapshot)} AS SELECT * FROM {preparer.format_table(table)}"
        )
        level.snapshots[table.fullname] = snapshot
        level.counts[table.fullname] = count

    def _quote(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)


def _writable(table: Table) -> list[Column[Any]]:
    """Columns a restore writes: all but computed ones (the database computes those)."""
    return [column for column in table.c if column.computed is None]


def _identity_always(column: Column[Any]) -> bool:
    return column.identity is not None and bool(column.identity.always)
