"""The report header: which database, from where, in which mode; never a password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_sessionmaker.errors import scrub

if TYPE_CHECKING:
    from pytest_sessionmaker.config import Settings
    from pytest_sessionmaker.templates import TemplateUse


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


@dataclass
class OneTimeCosts:
    """What the run paid once, before its first database test (seconds), for ``-v``."""

    server: float | None = None  # the throwaway server's start, when this process waited for it
    server_place: str | None = None  # the directory its files are in
    creation: float | None = None  # the test database, with the template's build if any
    schema: float = 0.0  # tables created, or migrations run
    change_log: float = 0.0
    template: TemplateUse | None = None
    template_problem: str | None = None

    def line(self) -> str:
        parts = []
        if self.server is not None:
            parts.append(f"server start {self.server:.2f}s (in {self.server_place})")
        if self.creation is not None:
            parts.append(f"database {self.creation:.2f}s ({self._origin()})")
        if self.template is not None and self.template.copied:
            parts.append(f"check and baseline {self.schema + self.change_log:.2f}s")
        else:
            parts.append(f"schema {self.schema:.2f}s, change log {self.change_log:.2f}s")
        return "sessionmaker one-time costs: " + ", ".join(parts)

    def _origin(self) -> str:
        use = self.template
        if use is not None and use.copied:
            built = f", built now in {use.build_seconds:.2f}s" if use.built else ""
            return f"copy of template {use.key.name}{built}"
        if self.template_problem is not None:
            return f"created empty; template not used: {self.template_problem}"
        return "created empty"
