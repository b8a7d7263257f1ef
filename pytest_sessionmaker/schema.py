"""The run's tables: find the user's metadata, create its tables once, drop them at the end.

The plugin never drops or alters a table it did not create. It records the tables it creates in
a small ownership table in the same database; a metadata table that already exists without such a
record belongs to somebody else, and the run stops before touching anything.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, String, Table, inspect, select
from sqlalchemy.schema import CreateIndex, CreateTable

from pytest_sessionmaker.errors import ConfigurationError, SchemaConflict, shown_url

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine.interfaces import Dialect

OWNERSHIP_TABLE = "pytest_sessionmaker_tables"


def import_object(path: str, ini_key: str) -> object:
    """Import ``module:attr`` (``attr`` may be dotted); raise ConfigurationError naming the key."""
    module_name, sep, attr_path = path.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigurationError(f"{ini_key} = {path!r} is not of the form module:attribute.")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"{ini_key} = {path!r}: module {module_name!r} cannot be imported ({exc})."
        ) from exc
    for attr in attr_path.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError as exc:
            raise ConfigurationError(
                f"{ini_key} = {path!r}: {module_name!r} has no attribute {attr_path!r}."
            ) from exc
    return obj


def load_metadata(paths: tuple[str, ...]) -> list[MetaData]:
    """Each path names a MetaData or a declarative base (anything with a ``metadata``)."""
    from pytest_sessionmaker.frameworks.flask_sqlalchemy import is_extension, metadatas_of

    found: list[MetaData] = []
    for path in paths:
        obj = import_object(path, "db_metadata")
        if is_extension(obj):
            # Flask-SQLAlchemy's db: the default metadata and one per __bind_key__.
            candidates: list[object] = list(metadatas_of(obj))
        else:
            candidates = [obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)]
        for metadata in candidates:
            if not isinstance(metadata, MetaData):
                raise ConfigurationError(
                    f"db_metadata = {path!r} is neither a MetaData nor a declarative base."
                )
            if metadata not in found:
                found.append(metadata)
        if not any(metadata.tables for metadata in candidates if isinstance(metadata, MetaData)):
            module = path.partition(":")[0]
            raise ConfigurationError(
                f"db_metadata = {path!r} has no tables: the modules defining its models were "
                f"not imported by {module!r}. Name a module that defines or imports the models "
                "(e.g. db_metadata = myapp.models:Base, where models.py imports Base), or "
                f"import the models module in {module!r}."
            )
    return found


def _ownership_table() -> Table:
    return Table(
        OWNERSHIP_TABLE,
        MetaData(),
        Column("table_name", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
    )


@dataclass
class Schema:
    """The tables of the configured metadata, and which of them this run created."""

    metadata: list[MetaData]
    created: list[Table] = field(default_factory=list)

    @property
    def tables(self) -> list[Table]:
        """Every table, parents before children."""
        return [table for metadata in self.metadata for table in metadata.sorted_tables]

    def fingerprint(self, engine: Engine) -> str:
        """A digest of the DDL the dialect would emit: any change to the schema changes it."""
        return self.fingerprint_for(engine.dialect)

    def fingerprint_for(self, dialect: Dialect) -> str:
        digest = hashlib.sha256()
        for table in self.tables:
            digest.update(str(CreateTable(table).compile(dialect=dialect)).encode())
            for index in sorted(table.indexes, key=lambda index: str(index.name)):
                digest.update(str(CreateIndex(index).compile(dialect=dialect)).encode())
        return digest.hexdigest()

    def create(self, engine: Engine, *, reuse: bool = False) -> bool:
        """Create the tables; return True when existing tables of ours were reused as they are.

        Raise SchemaConflict, touching nothing, when a table exists that this plugin did not
        create.
        """
        ownership = _ownership_table()
        fingerprint = self.fingerprint(engine)
        with engine.begin() as connection:
            inspector = inspect(connection)
            existing = [t for t in self.tables if inspector.has_table(t.name, schema=t.schema)]
            owned: dict[str, str] = {}
            if existing and inspector.has_table(OWNERSHIP_TABLE):
                owned = {name: digest for name, digest in connection.execute(select(ownership))}
            foreign = [t.fullname for t in existing if t.fullname not in owned]
            if foreign:
                raise SchemaConflict(
                    f"The table(s) {', '.join(foreign)} already exist in "
                    f"{shown_url(engine.url)} and were not created by "
                    "pytest-sessionmaker, so it will not touch them. Point --db-url at a "
                    "database of its own (the default db_database = derive does that), or set "
                    "db_schema = none to use the existing tables as they are."
                )
            if (
                reuse
                and existing
                and len(existing) == len(self.tables)
                and all(owned.get(t.fullname) == fingerprint for t in existing)
            ):
                self.created = list(self.tables)
                empty_tables(connection, self.created)
                return True
            for metadata in reversed(self.metadata):
                metadata.drop_all(
                    connection, tables=[t for t in existing if t.metadata is metadata]
                )
            ownership.create(connection, checkfirst=True)
            connection.execute(ownership.delete())
            for metadata in self.metadata:
                metadata.create_all(connection)
            self.created = list(self.tables)
            connection.execute(
                ownership.insert(),
                [{"table_name": t.fullname, "fingerprint": fingerprint} for t in self.created],
            )
        return False

    def drop(self, engine: Engine) -> None:
        """Drop exactly the tables this run created, and the ownership record."""
        if not self.created:
            return
        with engine.begin() as connection:
            self.drop_on(connection)

    def drop_on(self, connection: Connection) -> None:
        if not self.created:
            return
        drop_owned_tables(connection, self.metadata, self.created)
        self.created = []


def drop_owned_tables(
    connection: Connection, metadata: list[MetaData], tables: list[Table]
) -> None:
    for each in reversed(metadata):
        each.drop_all(connection, tables=[t for t in tables if t.metadata is each])
    _ownership_table().drop(connection, checkfirst=True)


def empty_tables(connection: Connection, tables: list[Table]) -> None:
    """Delete every row and restart identity counters (a reused database starts empty)."""
    from pytest_sessionmaker.dialects import support_for

    support_for(connection.engine).empty_tables(connection, tables)
