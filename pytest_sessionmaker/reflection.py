"""The tables a test database holds, reflected no further than the change log needs.

With ``db_schema = alembic`` the plugin owns every table the migrations created, whether the
models describe it or not. The change log and the restore need of each table only its name, its
columns and its primary key, and of all of them an order with parents before children. That is
what is reflected here, in a handful of catalogue queries whatever the number of tables (on
PostgreSQL; SQLite and MySQL ask per table): no indexes, constraints, defaults or comments.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import Column, MetaData, Table, inspect
from sqlalchemy.exc import SAWarning

from pytest_sessionmaker.errors import ConfigurationError, shown_url

if TYPE_CHECKING:
    from sqlalchemy import URL, Connection

# Every table the plugin makes for itself (ownership marks, change log, snapshots) starts so.
PLUGIN_PREFIX = "pytest_sessionmaker_"
# Alembic's version table has this one column, whatever env.py names the table.
VERSION_COLUMN = "version_num"


class DatabaseTables(NamedTuple):
    """The user's tables of a database, and Alembic's version table(s) among them."""

    tables: list[Table]  # parents before children; neither the plugin's nor version tables
    version_tables: list[str]


def user_table_names(connection: Connection) -> list[str]:
    """Every table of the default schema except the plugin's own (one catalogue query)."""
    return [
        name for name in inspect(connection).get_table_names() if not name.startswith(PLUGIN_PREFIX)
    ]


def refuse_empty_test_database(connection: Connection, url: URL) -> None:
    """db_schema = none in a test database the plugin created: nothing made its tables."""
    if not user_table_names(connection):
        raise ConfigurationError(
            f"The test database {shown_url(url)} was created empty by pytest-sessionmaker "
            "and db_schema = none runs no DDL, so it has no tables: set db_schema = alembic "
            "to run your Alembic migrations in it, or db_schema = create to create "
            "db_metadata's tables."
        )


def reflect_tables(connection: Connection) -> DatabaseTables:
    """The default schema's tables with their columns and primary keys; views are left out."""
    inspector = inspect(connection)
    with warnings.catch_warnings():
        # A column type SQLAlchemy does not know (citext, a domain) is reflected as NullType
        # with a warning; the restore copies such values without needing their type.
        warnings.simplefilter("ignore", SAWarning)
        names = [
            name
            for name, _ in inspector.get_sorted_table_and_fkc_names()
            if name is not None and not name.startswith(PLUGIN_PREFIX)
        ]
        if not names:
            return DatabaseTables([], [])
        columns = inspector.get_multi_columns(filter_names=names)
        keys = inspector.get_multi_pk_constraint(filter_names=names)
    metadata = MetaData()
    tables: list[Table] = []
    version_tables: list[str] = []
    for name in names:
        described = columns.get((None, name), [])
        if [column["name"] for column in described] == [VERSION_COLUMN]:
            version_tables.append(name)
            continue
        primary_key = keys.get((None, name))
        key = set(primary_key["constrained_columns"] or ()) if primary_key else set()
        tables.append(
            Table(
                name,
                metadata,
                *(
                    Column(column["name"], column["type"], primary_key=column["name"] in key)
                    for column in described
                ),
            )
        )
    return DatabaseTables(tables, version_tables)
