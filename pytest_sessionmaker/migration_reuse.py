"""--db-reuse with migrations: keep a migrated test database while its migrations are unchanged.

A kept database remembers, in a table of the plugin's, what it was migrated from (a digest of
each version file, and one of env.py with the target revision) and what the migrations left in
its tables (a copy of each table they filled, and the identity counters). The next run with
--db-reuse compares that with the project's migrations now:

- nothing changed: the tables are put back as the migrations left them; no migration runs;
- revisions were only added: the same, then ``alembic upgrade`` runs just the new ones;
- anything else (a version file edited or removed, env.py, the target): the database is dropped,
  created again and migrated from the start.

Putting the rows back costs one DELETE per table and one INSERT per table the migrations filled,
whatever the previous run did, so a run killed half-way leaves nothing the next cannot undo.
Invariant risked by the shortcut: the kept schema equals a fresh migration's; it holds while
only the migrations change the schema (tests' DDL is rolled back or, in db_commit tests, the
user's to undo).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sqlalchemy import Column, MetaData, Table, Text, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from pytest_sessionmaker.migrations import at_target
from pytest_sessionmaker.reflection import (
    PLUGIN_PREFIX,
    DatabaseTables,
    reflect_tables,
    user_table_names,
)
from pytest_sessionmaker.restore import SNAPSHOT_PREFIX

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory
    from sqlalchemy import Connection

    from pytest_sessionmaker.dialects import DialectSupport
    from pytest_sessionmaker.migrations import Outcome
    from pytest_sessionmaker.run import DatabaseRun

STATE_TABLE = f"{PLUGIN_PREFIX}migrations"
COPY_PREFIX = f"{PLUGIN_PREFIX}migrated_"


class Fingerprint(NamedTuple):
    """What a database was migrated from."""

    revisions: dict[str, str]  # revision id -> sha256 of its version file
    environment: str  # sha256 of env.py and the target revision


class KeptState(NamedTuple):
    fingerprint: Fingerprint
    counters: dict[str, tuple[int | None, bool]]
    copies: dict[str, str]  # table -> the copy of the rows the migrations left in it


def fingerprint_of(script: ScriptDirectory, target: str) -> Fingerprint:
    revisions = {each.revision: _digest(Path(each.path)) for each in script.walk_revisions()}
    environment = hashlib.sha256(Path(script.env_py_location).read_bytes())
    environment.update(target.encode())
    return Fingerprint(revisions, environment.hexdigest())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare(kept: Fingerprint, now: Fingerprint) -> Literal["same", "added", "changed"]:
    if kept.environment != now.environment:
        return "changed"
    if any(now.revisions.get(revision) != digest for revision, digest in kept.revisions.items()):
        return "changed"
    return "added" if len(now.revisions) > len(kept.revisions) else "same"


def open_kept_database(
    run: DatabaseRun, fingerprint: Fingerprint, expected: set[str] | None
) -> tuple[Outcome, DatabaseTables | None]:
    """Put a kept database back as its migrations left it, or start it again.

    "reused": ready as it is (its tables come along); "added": ready for the new revisions to
    run; "fresh": the database is new (created by this run, or dropped and created again here).
    """
    found: DatabaseTables | None = None
    with run.engine.begin() as connection:
        kept = read_state(connection)
        if kept is None and not user_table_names(connection):
            return "fresh", None
        change = compare(kept.fingerprint, fingerprint) if kept is not None else "changed"
        if kept is not None and change != "changed":
            clear_leftovers(connection, run.support)
            found = reflect_tables(connection)
    if kept is not None and found is not None:
        # A transaction of its own: on MySQL the counters' ALTER TABLE commits implicitly.
        try:
            with run.engine.begin() as connection:
                ready = put_back(connection, run.support, found.tables, kept) and (
                    change == "added" or at_target(connection, found, expected)
                )
        except SQLAlchemyError:  # the tables no longer fit their copies: start again
            ready = False
        if ready:
            return ("reused", found) if change == "same" else ("added", None)
    assert run.recreate_database is not None
    run.engine.dispose()
    run.recreate_database()
    return "fresh", None


def read_state(connection: Connection) -> KeptState | None:
    if not inspect(connection).has_table(STATE_TABLE):
        return None
    stored = connection.execute(select(_state_table().c.state)).scalar()
    if stored is None:
        return None
    data: dict[str, Any] = json.loads(stored)
    return KeptState(
        Fingerprint(data["revisions"], data["environment"]),
        {name: (value, bool(called)) for name, (value, called) in data["counters"].items()},
        data["copies"],
    )


def save_migrated_state(
    connection: Connection, support: DialectSupport, tables: list[Table], fingerprint: Fingerprint
) -> None:
    """Copy what the migrations left in the tables, and note what they were migrated from."""
    preparer = connection.dialect.identifier_preparer
    for name in inspect(connection).get_table_names():
        if name.startswith(COPY_PREFIX):
            connection.exec_driver_sql(f"DROP TABLE {preparer.quote(name)}")
    copies: dict[str, str] = {}
    for position, each in enumerate(tables):
        if connection.execute(select(text("1")).select_from(each).limit(1)).first() is None:
            continue
        copy = f"{COPY_PREFIX}{position}"
        connection.exec_driver_sql(
            f"CREATE TABLE {preparer.quote(copy)} AS SELECT * FROM {preparer.format_table(each)}"
        )
        copies[each.name] = copy
    state = _state_table()
    state.drop(connection, checkfirst=True)
    state.create(connection)
    document = {
        "revisions": fingerprint.revisions,
        "environment": fingerprint.environment,
        "counters": support.read_counters(connection, tables),
        "copies": copies,
    }
    connection.execute(state.insert().values(state=json.dumps(document)))


def clear_leftovers(connection: Connection, support: DialectSupport) -> None:
    """What a killed run left: the change log, its triggers and the restore's snapshots."""
    support.uninstall_change_log(connection, [])
    preparer = connection.dialect.identifier_preparer
    for name in inspect(connection).get_table_names():
        if name.startswith(SNAPSHOT_PREFIX):
            connection.exec_driver_sql(f"DROP TABLE {preparer.quote(name)}")


def put_back(
    connection: Connection, support: DialectSupport, tables: list[Table], kept: KeptState
) -> bool:
    """Every table as the migrations left it; False (touching nothing) when the tables are not
    those the copies were taken of."""
    by_name = {each.name: each for each in tables}
    if not set(kept.copies) <= set(by_name):
        return False
    with support.foreign_keys_relaxed(connection):
        for each in reversed(tables):
            connection.execute(each.delete())
        for each in tables:
            copy_name = kept.copies.get(each.name)
            if copy_name is None:
                continue
            copy = Table(copy_name, MetaData(), *(Column(c.name, c.type) for c in each.c))
            connection.execute(each.insert().from_select([c.name for c in each.c], select(*copy.c)))
    support.reset_counters(connection, kept.counters, by_name)
    return True


def _state_table() -> Table:
    return Table(STATE_TABLE, MetaData(), Column("state", Text, nullable=False))
