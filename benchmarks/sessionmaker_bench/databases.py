"""The benchmark's databases on the server: created per strategy, all dropped at the end.

Every name starts with a prefix unique to this invocation (``smb1a2b3c_``), so concurrent
benchmark runs on one server (a CI job's smoke test next to a developer's run) never drop each
other's databases, and the end of a run can drop everything it made, including the test
databases the strategies derived from theirs (``..._test``, ``..._tmpl``, ``..._test_gw0``).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import URL, Engine

BACKENDS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


class Server:
    """One database server, addressed by the ``--url`` the benchmark was given."""

    def __init__(self, url: str, workdir: Path) -> None:
        self.url: URL = make_url(url)
        self.backend = BACKENDS.get(self.url.get_backend_name(), self.url.get_backend_name())
        self.prefix = f"smb{secrets.token_hex(3)}_"
        self.workdir = workdir

    def url_for(self, name: str) -> str:
        """The URL of the benchmark's database ``name`` (not yet created)."""
        database = self.prefix + name
        if self.backend == "sqlite":
            database = str(self.workdir / f"{database}.db")
        return self.url.set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> Engine:
        return create_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")

    def create(self, name: str) -> None:
        if self.backend == "sqlite":
            return
        engine = self._admin()
        try:
            with engine.connect() as admin:
                admin.execute(text(f"CREATE DATABASE {self.prefix}{name}"))
        finally:
            engine.dispose()

    def ours(self) -> list[str]:
        """The databases of this invocation that exist on the server."""
        if self.backend == "sqlite":
            return []
        query = {
            # pytest-sessionmaker's template databases are named by a digest; their comment
            # names the database they were built for.
            "postgresql": "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') "
            "FROM pg_database",
            "mysql": "SELECT schema_name, '' FROM information_schema.schemata",
        }[self.backend]
        engine = self._admin()
        try:
            with engine.connect() as admin:
                rows = admin.execute(text(query)).all()
        finally:
            engine.dispose()
        return sorted(
            str(name)
            for name, mark in rows
            if str(name).startswith(self.prefix) or f'"base": "{self.prefix}' in str(mark)
        )

    def drop_ours(self) -> None:
        """Drop every database this invocation made (pytest-postgresql's templates included)."""
        names = self.ours()
        if not names:
            return
        engine = self._admin()
        try:
            with engine.connect() as admin:
                for name in names:
                    quoted = engine.dialect.identifier_preparer.quote(name)
                    if self.backend == "postgresql":
                        admin.execute(text(f"ALTER DATABASE {quoted} WITH is_template false"))
                        admin.execute(text(f"DROP DATABASE {quoted} WITH (FORCE)"))
                    else:
                        admin.execute(text(f"DROP DATABASE IF EXISTS {quoted}"))
        finally:
            engine.dispose()

    def describe(self) -> str:
        if self.backend == "sqlite":
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        engine = self._admin()
        try:
            with engine.connect() as admin:
                version = admin.execute(text("SELECT version()")).scalar_one()
        finally:
            engine.dispose()
        if self.backend == "postgresql":
            return " ".join(str(version).split()[:2])
        return f"MySQL/MariaDB {version}"
