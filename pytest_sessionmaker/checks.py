"""Ready-made tests: import one into a test module of yours and pytest runs it there.

    from pytest_sessionmaker.checks import test_models_match_migrations

(pytest-alembic ships its built-in tests the same way.) Needs Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.reflection import PLUGIN_PREFIX, reflect_tables
from pytest_sessionmaker.schema import load_metadata

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData

__all__ = ["schema_differences", "test_models_match_migrations"]


def test_models_match_migrations(db_connection: Connection, pytestconfig: pytest.Config) -> None:
    """The models (db_metadata) describe the schema the migrations built, as Alembic's
    autogenerate compares them: tables, columns, types, nullability, indexes, constraints."""
    paths = pytestconfig.stash[SETTINGS_KEY].metadata_paths
    if not paths:
        pytest.fail(
            "test_models_match_migrations compares the migrated schema with your models: set "
            "db_metadata to their declarative base (module:Base).",
            pytrace=False,
        )
    differences = schema_differences(db_connection, load_metadata(paths))
    if differences:
        pytest.fail(
            "The models (db_metadata) and the schema the migrations built differ:\n"
            + "\n".join(f"  {line}" for line in differences)
            + "\nWrite a migration for the models' side (alembic revision --autogenerate "
            "drafts one) or change the models.",
            pytrace=False,
        )


def schema_differences(connection: Connection, metadata: list[MetaData]) -> list[str]:
    """Alembic's ``compare_metadata`` between the database and the models, one line each:
    ``+`` only in the models, ``-`` only in the database, ``~`` different."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    version_tables = set(reflect_tables(connection).version_tables)

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ != "table" or name is None:
            return True
        return not name.startswith(PLUGIN_PREFIX) and name not in version_tables

    context = MigrationContext.configure(
        connection, opts={"include_name": include_name, "compare_type": True}
    )
    # Several MetaData compare as one, as env.py's target_metadata may be a list of them.
    target: Any = metadata[0] if len(metadata) == 1 else metadata
    return [line for diff in compare_metadata(context, target) for line in _describe(diff)]


def _describe(diff: Any) -> list[str]:
    if isinstance(diff, list):  # one column's modify_* entries come grouped
        return [line for each in diff for line in _describe(each)]
    kind: str = diff[0]
    side = {
        "add": "+ {}: in the models, not made by the migrations",
        "remove": "- {}: made by the migrations, not in the models",
    }
    action, _, what = kind.partition("_")
    if action in side and what in ("table", "index", "constraint", "fk"):
        return [side[action].format(_name_of(what, diff[1]))]
    if action in side and what == "column":
        return [side[action].format(f"column {diff[2]}.{diff[3].name}")]
    if action == "modify":
        _, _, table, column, _, database, models = diff
        label = {"nullable": "", "type": "type ", "default": "server default "}.get(
            what, f"{what} "
        )
        if what == "nullable":
            database = "NULL" if database else "NOT NULL"
            models = "NULL" if models else "NOT NULL"
        return [
            f"~ column {table}.{column}: {label}{_sql(database)} in the database, "
            f"{label}{_sql(models)} in the models"
        ]
    return [f"? {diff!r}"]


def _name_of(what: str, item: Any) -> str:
    if what == "table":
        return f"table {item.name}"
    table = item.table.name
    columns = ", ".join(column.name for column in item.columns)
    if what == "index":
        unique = "unique " if item.unique else ""
        return f"{unique}index {item.name or ''} on {table} ({columns})".replace("  ", " ")
    if what == "fk":
        return f"foreign key on {table} ({columns}) to {item.referred_table.name}"
    kind = type(item).__name__.replace("Constraint", " constraint").lower()
    return f"{kind} {item.name or ''} on {table} ({columns})".replace("  ", " ")


def _sql(value: Any) -> str:
    if value is None:
        return "none"
    text = getattr(value, "arg", value)  # a server default wraps its SQL
    return str(getattr(text, "text", text))
