"""The report header: which database, from where, in which mode; never a password."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_sessionmaker.errors import scrub

if TYPE_CHECKING:
    from pytest_sessionmaker.config import Settings


def header_lines(settings: Settings) -> list[str]:
    if settings.url is None:
        where = (
            "a throwaway PostgreSQL started on first use (no --db-url, $PYTEST_DB_URL or db_url)"
        )
    else:
        where = f"{scrub(settings.url)} (from {settings.url_source})"
    database = {
        "derive": "a test database of the plugin's, named after the URL's (app -> app_test)",
        "as_given": "the URL's database as given",
    }[settings.database_mode]
    if settings.reuse_database:
        database += ", reused between runs"
    if settings.alembic is not None:
        schema = f"alembic upgrade {settings.alembic.revision} with {settings.alembic.config_file}"
    elif settings.schema_mode == "create" and settings.metadata_paths:
        schema = f"create from {' '.join(settings.metadata_paths)}"
    else:
        schema = "none (no DDL)"
    if settings.schema_source != "ini db_schema":
        schema += f" (from {settings.schema_source})"
    line = f"sessionmaker: {where}; database: {database}; schema: {schema}"
    if settings.async_driver is not None:
        line += f"; async driver: {settings.async_driver} (from {settings.async_driver_source})"
    return [line]
