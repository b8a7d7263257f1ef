"""Template test databases: the schema and the change log built once per schema, copied per run.

Creating 32 tables and installing their change-log triggers cost every run about half a second
here (the benchmark's first-test mode: 32 tables against one); copying a database that already
holds them costs one CREATE DATABASE ... TEMPLATE on PostgreSQL (a file copy on SQLite), whatever
the schema's size. So the first run with a given schema builds it into a template database
of the plugin's, and every run and xdist worker after it creates its test database as a copy.

A template is named ``pytest_sessionmaker_template_<key>``, where the key is a digest of what
the schema is built from (the DDL of db_metadata, or the Alembic version files, env.py and the
target), the URL's database, user and driver, the engine options and the plugin's modules that
write the change log. It carries
the plugin's template mark, which also records the digest of the schema and of the plugin's
objects it held when it was built; a copy that does not match it (a table dropped from the
template, say) is dropped and the template built again, so a damaged template never gives a
wrong schema. A database named like a template without that mark is somebody else's and is
never touched. When a template is built, the oldest templates of the same URL database beyond
the newest KEEP are dropped: their schema is gone for good (or, after a branch switch, built
again once).

PostgreSQL: the template is built and checked under an exclusive advisory lock on its name in
the server's ``postgres`` database, and copied under a shared one, so xdist workers wait only
while the one template is built and then copy it at once; a pruning run drops only templates
it can lock exclusively. Connections to a built template are refused (ALLOW_CONNECTIONS false),
since one session in it would make every copy fail. MySQL and MariaDB have no template
databases, and copying tables one by one costs what creating them does: they are not used there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from pytest_sessionmaker.errors import SessionmakerError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from sqlalchemy import URL, Connection
    from sqlalchemy.engine.interfaces import Dialect

    from pytest_sessionmaker.config import Settings
    from pytest_sessionmaker.dialects.postgresql import PostgreSQLSupport
    from pytest_sessionmaker.run import DatabaseRun

TEMPLATE_PREFIX = "pytest_sessionmaker_template_"
TEMPLATE_MARK = "pytest-sessionmaker template database"
# Templates kept per URL database: enough for switching between a few branches.
KEEP = 3
# Bump when what a template holds changes in a way its key would not show.
FORMAT = "1"
# The table naming a SQLite template's key and digests (PostgreSQL keeps them in the comment).
SQLITE_INFO_TABLE = "pytest_sessionmaker_template"


class TemplateUnusable(SessionmakerError):
    """The template could not be built or copied; the run creates its database directly."""


class TemplateMismatch(SessionmakerError):
    """A copy of the template does not hold what the template held when it was built."""


@dataclass(frozen=True)
class TemplateKey:
    """Which template a run's database can be copied from."""

    base: str  # the URL's database (app for app_test): templates are pruned per base
    digest: str

    @property
    def name(self) -> str:
        return f"{TEMPLATE_PREFIX}{self.digest[:24]}"


def template_key(
    settings: Settings, url: URL, engine_options: Mapping[str, Any], base: str
) -> TemplateKey | None:
    """The key of the template for this run's schema, or None when the run builds no schema
    (db_schema = none) or its schema cannot be known before the database exists."""
    from sqlalchemy.exc import ArgumentError

    try:
        dialect = url.get_dialect()()
    except (ArgumentError, ImportError):
        return None  # the engine's creation says what is wrong, in one sentence
    if settings.schema_mode == "create" and settings.metadata_paths:
        schema = create_schema_digest(settings.metadata_paths, dialect)
    elif settings.schema_mode == "alembic" and settings.alembic is not None:
        schema = alembic_digest(settings, url)
    else:
        return None
    digest = hashlib.sha256()
    for part in (
        FORMAT,
        plugin_source_digest(url),
        schema,
        url.drivername,
        url.username or "",
        base,
        # Engine options can change the DDL (schema_translate_map). An option whose repr
        # differs per process (a function) only costs a template built per run.
        repr(sorted(engine_options.items())),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return TemplateKey(base, digest.hexdigest())


def plugin_source_digest(url: URL) -> str:
    """The plugin's modules that decide what a template holds: a new release of the plugin
    (other triggers, say) builds new templates."""
    package = Path(__file__).parent
    digest = hashlib.sha256()
    for module in ("dialects/base.py", f"dialects/{url.get_backend_name()}.py", "restore.py"):
        path = package / module
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def create_schema_digest(paths: tuple[str, ...], dialect: Dialect) -> str:
    from pytest_sessionmaker.schema import Schema, load_metadata

    return Schema(load_metadata(paths)).fingerprint_for(dialect)


def alembic_digest(settings: Settings, url: URL) -> str:
    """The digest --db-reuse keeps for migrated databases: every version file, env.py and the
    target revision."""
    from pytest_sessionmaker.migration_reuse import fingerprint_of
    from pytest_sessionmaker.migrations import absolute_sqlite_path, alembic_directory
    from pytest_sessionmaker.migrations import load_environment as load

    assert settings.alembic is not None
    with alembic_directory(settings.alembic):
        _, script = load(settings.alembic, absolute_sqlite_path(url))
        fingerprint = fingerprint_of(script, settings.alembic.revision)
    return json.dumps([sorted(fingerprint.revisions.items()), fingerprint.environment])


def database_fingerprint(run: DatabaseRun) -> str:
    """What a template's copy must hold: the user's schema and the plugin's objects."""
    with run.engine.connect() as connection:
        schema = run.support.schema_fingerprint(connection)
        objects = run.support.plugin_objects_fingerprint(connection)
    return hashlib.sha256(f"{schema}\0{objects}".encode()).hexdigest()


@dataclass
class TemplateUse:
    """How the run's database came to be, for its check and the report."""

    key: TemplateKey
    fingerprint: str = ""
    built: bool = False  # this run built the template
    build_seconds: float = 0.0
    copied: bool = False


def parse_mark(mark: str) -> dict[str, Any] | None:
    """A template mark's record, or None for anything else (somebody's database, a mark of
    a template being built)."""
    prefix = f"{TEMPLATE_MARK} "
    if not mark.startswith(prefix):
        return None
    try:
        record = json.loads(mark[len(prefix) :])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def new_mark(key: TemplateKey, fingerprint: str) -> str:
    record = {"base": key.base, "key": key.digest, "fingerprint": fingerprint, "built": time.time()}
    return f"{TEMPLATE_MARK} {json.dumps(record, sort_keys=True)}"


BUILDING_MARK = f"{TEMPLATE_MARK} (being built)"


class PostgreSQLTemplates:
    """Template databases on a PostgreSQL server, used on the run's lock connection."""

    def __init__(
        self,
        support: PostgreSQLSupport,
        server_url: URL,
        key: TemplateKey,
        build: Callable[[URL], str],
    ) -> None:
        self.support = support
        self.server_url = server_url
        self.key = key
        self.build = build
        self.use = TemplateUse(key)

    def create_copy(self, admin: Connection, name: str, mark: str) -> None:
        """Create ``name`` (marked) as a copy of the template, building the template first if
        need be; raise TemplateUnusable when it cannot be had (nothing of ``name`` is left)."""
        from pytest_sessionmaker.databases import lock_key

        template, lock = self.key.name, lock_key(self.key.name)
        self.support.lock(admin, lock, shared=True)
        try:
            record = self._record(admin)
            if record is not None:
                self._copy(admin, name, mark, record)
                return
        finally:
            self.support.unlock_lock(admin, lock, shared=True)
        self.support.lock(admin, lock, shared=False)
        try:
            # Another run or worker may have built it while this one waited.
            record = self._record(admin)
            if record is None:
                record = self._build(admin, template)
                self._prune(admin)
            self._copy(admin, name, mark, record)
        finally:
            self.support.unlock_lock(admin, lock, shared=False)

    def discard(self, admin: Connection) -> None:
        """Drop the template (its copy did not match it), if it is still the plugin's."""
        from pytest_sessionmaker.databases import lock_key

        lock = lock_key(self.key.name)
        self.support.lock(admin, lock, shared=False)
        try:
            if self._record(admin) is not None:
                self.support.drop_database(admin, self.key.name)
        finally:
            self.support.unlock_lock(admin, lock, shared=False)

    def _record(self, admin: Connection) -> dict[str, Any] | None:
        """The template's record when it exists, is the plugin's and is complete."""
        mark = self.support.database_mark(admin, self.key.name)
        if mark is None or mark == BUILDING_MARK:
            return None
        record = parse_mark(mark)
        if record is None or record.get("key") != self.key.digest:
            raise TemplateUnusable(
                f"a database named {self.key.name!r} exists that is not a template of the "
                "plugin's, so it is left alone"
            )
        return record

    def _copy(self, admin: Connection, name: str, mark: str, record: dict[str, Any]) -> None:
        try:
            self.support.create_marked_database(admin, name, mark, template=self.key.name)
        except DBAPIError as exc:  # dropped meanwhile, or a session connected to it
            from pytest_sessionmaker.databases import reason_of

            raise TemplateUnusable(f"copying {self.key.name!r} failed: {reason_of(exc)}") from exc
        self.use.fingerprint = str(record["fingerprint"])
        self.use.copied = True

    def _build(self, admin: Connection, template: str) -> dict[str, Any]:
        """Build the template under its exclusive lock: marked as being built until done, so a
        build killed half-way is dropped and done again by the next run."""
        started = time.perf_counter()
        mark = self.support.database_mark(admin, template)
        if mark is not None:
            if mark != BUILDING_MARK:  # a complete template of another key: not ours
                raise TemplateUnusable(f"{template!r} is not a template of the plugin's")
            self.support.drop_database(admin, template)
        try:
            self.support.create_marked_database(admin, template, BUILDING_MARK)
            fingerprint = self.build(self.server_url.set(database=template))
            self.support.refuse_connections(admin, template)
            self.support.set_mark(admin, template, new_mark(self.key, fingerprint))
        except BaseException as exc:
            with contextlib.suppress(DBAPIError):
                self.support.drop_database(admin, template)
            if not isinstance(exc, Exception):
                raise
            raise build_failed(template, exc) from exc
        self.use.built = True
        self.use.build_seconds = time.perf_counter() - started
        record = parse_mark(self.support.database_mark(admin, template) or "")
        assert record is not None
        return record

    def _prune(self, admin: Connection) -> None:
        """Drop this base's templates beyond the newest KEEP, each only if no run uses it."""
        from sqlalchemy import text

        from pytest_sessionmaker.databases import lock_key

        rows = admin.execute(
            text(
                "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') "
                "FROM pg_database WHERE starts_with(datname, :prefix)"
            ),
            {"prefix": TEMPLATE_PREFIX},
        ).all()
        ours: list[tuple[float, str]] = []
        for name, mark in rows:
            record = parse_mark(str(mark))
            if record is not None and record.get("base") == self.key.base:
                ours.append((float(record.get("built", 0)), str(name)))
        for _, name in sorted(ours, reverse=True)[KEEP:]:
            lock = lock_key(name)
            if not self.support.try_lock(admin, lock):
                continue  # being copied or built right now
            try:
                record = parse_mark(self.support.database_mark(admin, name) or "")
                if record is not None and record.get("base") == self.key.base:
                    self.support.drop_database(admin, name)
            except DBAPIError:
                pass  # the next build tries again
            finally:
                self.support.unlock(admin, lock)


def sqlite_template_directory() -> Path:
    """Where SQLite templates live: the user's cache directory (beside the throwaway server's
    cluster template), not the project's folder, where they would show up in ``git status``."""
    from pytest_sessionmaker.cluster_template import cache_root

    return cache_root() / "sqlite-templates"


class SQLiteTemplates:
    """Template files ``pytest_sessionmaker_template_<key>.db`` in the user's cache directory.

    A template is written under a name of its own and renamed into place when complete, so an
    existing template file is always a whole one; a file lock keeps concurrent runs from
    building the same template twice.
    """

    def __init__(self, url: URL, key: TemplateKey, build: Callable[[URL], str]) -> None:
        self.url = url
        directory = sqlite_template_directory()
        self.directory = directory
        self.key = key
        self.build = build
        self.path = directory / f"{key.name}.db"
        self.use = TemplateUse(key)

    def create_copy(self, destination: Path) -> None:
        """Write a copy of the template to ``destination`` (building the template if need be);
        raise TemplateUnusable when it cannot be had."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._create_copy(destination)
        except OSError as exc:  # a cache directory that cannot be written, say
            raise TemplateUnusable(f"{self.directory}: {exc}") from exc

    def _create_copy(self, destination: Path) -> None:
        record = read_sqlite_record(self.path)
        if record is None:
            from filelock import FileLock

            lock = FileLock(f"{self.path}.lock")
            try:
                with lock:
                    record = read_sqlite_record(self.path)
                    if record is None:
                        record = self._build()
                        self._prune()
            finally:
                # Not left in the user's folder. A run that opens the file anew meanwhile may
                # build the template a second time: each build is written aside under a name
                # of its own and renamed into place whole, so that costs time, not correctness.
                Path(lock.lock_file).unlink(missing_ok=True)
        if record.get("key") != self.key.digest:
            raise TemplateUnusable(f"{self.path} is not this schema's template")
        try:
            shutil.copyfile(self.path, destination)
        except OSError as exc:  # pruned meanwhile (or removed by hand)
            raise TemplateUnusable(f"copying {self.path} failed: {exc}") from exc
        self.use.fingerprint = str(record["fingerprint"])
        self.use.copied = True

    def discard(self) -> None:
        if read_sqlite_record(self.path) is not None:
            self.path.unlink(missing_ok=True)

    def _build(self) -> dict[str, Any]:
        """Build the template aside, then rename it into place (a whole file or none)."""
        from pytest_sessionmaker.databases import SQLiteTestDatabase

        started = time.perf_counter()
        if self.path.exists():
            # A file of that name that is no template of ours: somebody's, left alone.
            raise TemplateUnusable(f"{self.path} exists and is not a template of the plugin's")
        aside = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}.building")
        try:
            record = self._build_aside(aside)
            os.replace(aside, self.path)
        except Exception as exc:
            raise build_failed(str(self.path), exc) from exc
        finally:
            SQLiteTestDatabase.delete_file(aside)
        self.use.built = True
        self.use.build_seconds = time.perf_counter() - started
        return record

    def _build_aside(self, aside: Path) -> dict[str, Any]:
        from pytest_sessionmaker.databases import SQLiteTestDatabase

        SQLiteTestDatabase.write_marked_file(aside)
        # Created before the build, so that the fingerprint covers it as the copies hold it.
        self._write_record(aside, None)
        fingerprint = self.build(self.url.set(database=str(aside)))
        record = {
            "base": self.key.base,
            "key": self.key.digest,
            "fingerprint": fingerprint,
            "built": time.time(),
        }
        self._write_record(aside, record)
        return record

    @staticmethod
    def _write_record(path: Path, record: dict[str, Any] | None) -> None:
        connection = sqlite3.connect(path)
        try:
            if record is None:
                connection.execute(f"CREATE TABLE {SQLITE_INFO_TABLE} (record TEXT NOT NULL)")
            else:
                connection.execute(
                    f"INSERT INTO {SQLITE_INFO_TABLE} VALUES (?)", (json.dumps(record),)
                )
            connection.commit()
        finally:
            connection.close()

    def _prune(self) -> None:
        from filelock import FileLock, Timeout

        ours: list[tuple[float, Path]] = []
        for path in self.directory.glob(f"{TEMPLATE_PREFIX}*.db"):
            record = read_sqlite_record(path)
            if record is not None and record.get("base") == self.key.base:
                ours.append((float(record.get("built", 0)), path))
        for _, path in sorted(ours, reverse=True)[KEEP:]:
            lock = FileLock(f"{path}.lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                path.unlink(missing_ok=True)
            finally:
                lock.release()
                Path(lock.lock_file).unlink(missing_ok=True)


def build_failed(template: str, exc: Exception) -> TemplateUnusable:
    """Building a template failed: the run builds its own database instead, where the user's
    error (a failing migration, a table of somebody else's) is reported as without templates,
    naming the test database rather than a template."""
    from pytest_sessionmaker.databases import reason_of

    return TemplateUnusable(f"building {template} failed: {reason_of(exc)}")


def read_sqlite_record(path: Path) -> dict[str, Any] | None:
    """A SQLite template's record, or None when ``path`` is not a complete template."""
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = connection.execute(f"SELECT record FROM {SQLITE_INFO_TABLE}").fetchone()
        record = json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None
    finally:
        connection.close()
    return record if isinstance(record, dict) else None
