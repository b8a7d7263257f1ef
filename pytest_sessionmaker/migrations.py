"""``db_schema = alembic``: the project's own Alembic migrations build the test database.

Once per run (per xdist worker), before the first database test, the plugin runs what
``alembic upgrade heads`` would run from the directory of ``alembic.ini``, into the test database
it created, then reflects the tables the migrations made so that the change log covers all of
them. Rows a data migration inserted are the baseline that commit tests are restored to.

Two things keep Alembic in the test database. env.py is handed the plugin's connection in
``config.attributes["connection"]`` (Alembic's "sharing a connection" recipe) and sees
``sqlalchemy.url`` set to the test database, which is enough for env.py files built from
Alembic's templates. An env.py that computes its own URL from the application's settings would
connect elsewhere, so while env.py runs every new database connection in the process, of any
engine, is checked, and one to another database is refused before a migration can run there.
Afterwards the test database's version table must hold the target revision(s), or the run
stops with the three lines env.py needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import column, event, select, table
from sqlalchemy.pool import Pool

from pytest_sessionmaker.errors import MigrationFailed, scrub, shown_url
from pytest_sessionmaker.reflection import VERSION_COLUMN, DatabaseTables, reflect_tables

if TYPE_CHECKING:
    from collections.abc import Iterator

    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import URL, Connection, Select, Table
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry

    from pytest_sessionmaker.config import AlembicSettings
    from pytest_sessionmaker.dialects import DialectSupport
    from pytest_sessionmaker.migration_reuse import Fingerprint
    from pytest_sessionmaker.run import DatabaseRun

ENV_PY_LINES = """\
    if (connection := config.attributes.get("connection")) is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        return context.run_migrations()"""

Outcome = Literal["fresh", "reused", "added"]


def migrate(run: DatabaseRun) -> list[Table]:
    """Bring the run's test database to the target revision; return the tables it owns.

    With --db-reuse a kept database is used as it is, migrated forward, or created again,
    depending on what changed in the migrations since it was migrated (migration_reuse.py).
    """
    settings = run.settings.alembic
    assert settings is not None, "db_schema = alembic without its settings"
    url = absolute_sqlite_path(run.url)
    with alembic_directory(settings):
        config, script = load_environment(settings, url)
        expected = target_revisions(script, settings.revision)
        fingerprint: Fingerprint | None = None
        outcome: Outcome = "fresh"
        found: DatabaseTables | None = None
        if run.settings.reuse_database and run.recreate_database is not None:
            from pytest_sessionmaker.migration_reuse import fingerprint_of, open_kept_database

            fingerprint = fingerprint_of(script, settings.revision)
            outcome, found = open_kept_database(run, fingerprint, expected)
        if outcome != "reused":
            upgrade(run, config, settings.revision, env_py_of(script))
            with run.engine.begin() as connection:
                found = migrated_tables(connection, expected)
                if found is None:
                    raise not_migrated(connection, run.url, expected, env_py_of(script))
                if fingerprint is not None:
                    from pytest_sessionmaker.migration_reuse import save_migrated_state

                    save_migrated_state(connection, run.support, found.tables, fingerprint)
    assert found is not None
    run.reused_schema = outcome == "reused"
    return found.tables


# -- the project's Alembic environment -------------------------------------------------------


@contextlib.contextmanager
def alembic_directory(settings: AlembicSettings) -> Iterator[None]:
    """Run as ``alembic`` runs from the directory of its config file.

    Alembic takes script_location, prepend_sys_path and version_locations relative to the
    working directory, which is where its users run it: the directory of alembic.ini. pytest
    may run from anywhere below the rootdir, so the directory is changed for the duration of
    the upgrade and changed back. The logging configuration, which env.py usually replaces,
    is put back as well.
    """
    previous = Path.cwd()
    os.chdir(Path(settings.config_file).parent)
    try:
        with logging_left_alone():
            yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def logging_left_alone() -> Iterator[None]:
    """Undo env.py's ``fileConfig(config.config_file_name)``.

    fileConfig replaces the root logger's handlers (pytest's capture among them) and disables
    every logger that exists already, the application's included, for the rest of the process;
    the tests would then miss log records they expect.
    """
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        each for each in manager.loggerDict.values() if isinstance(each, logging.Logger)
    ]
    saved = [
        (each, each.level, list(each.handlers), each.disabled, each.propagate) for each in loggers
    ]
    try:
        yield
    finally:
        for each, level, handlers, disabled, propagate in saved:
            each.setLevel(level)
            each.handlers[:] = handlers
            each.disabled = disabled
            each.propagate = propagate


def absolute_sqlite_path(url: URL) -> URL:
    """A SQLite file named relative to pytest's working directory, named absolutely (Alembic
    runs in another directory)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database.startswith("file:"):
        return url
    if database == ":memory:" or os.path.isabs(database):
        return url
    return url.set(database=os.path.abspath(database))


def load_environment(settings: AlembicSettings, url: URL) -> tuple[Config, ScriptDirectory]:
    """Alembic's Config, pointed at the test database, and the project's migration scripts."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config_file = Path(settings.config_file)
    options: dict[str, Any] = {"ini_section": settings.section}
    pyproject = config_file.with_name("pyproject.toml")
    if pyproject.is_file() and "[tool.alembic]" in pyproject.read_text(encoding="utf-8"):
        options["toml_file"] = str(pyproject)  # Alembic >= 1.16 reads its options there
    try:
        config = Config(str(config_file), **options)
        # The password goes to Alembic as it is; configparser needs % doubled.
        rendered = url.render_as_string(hide_password=False)
        config.set_section_option(settings.section, "sqlalchemy.url", rendered.replace("%", "%%"))
        return config, ScriptDirectory.from_config(config)
    except Exception as exc:
        raise MigrationFailed(
            scrub(
                f"The Alembic environment of {config_file} (section [{settings.section}]) "
                f"cannot be loaded: {first_line(exc)}; check its script_location, or set "
                "db_alembic_section to the section that holds it."
            )
        ) from exc


def env_py_of(script: ScriptDirectory) -> Path:
    return Path(script.env_py_location).absolute()


def target_revisions(script: ScriptDirectory, target: str) -> set[str] | None:
    """The revision ids the version table holds once migrated to ``target``.

    None when Alembic cannot name them without a database (a relative target such as +2):
    the version table then only has to be filled.
    """
    try:
        return {each.revision for each in script.get_revisions(target) if each is not None}
    except Exception:
        return None


# -- running the migrations ----------------------------------------------------------------


def upgrade(run: DatabaseRun, config: Config, target: str, env_py: Path) -> None:
    """``alembic upgrade <target>`` with the plugin's connection, refusing any other database.

    The connection is handed over outside a transaction (the recipe's ``engine.begin()``
    would make Alembic's ``autocommit_block()`` and ``transaction_per_migration`` fail):
    env.py's ``context.begin_transaction()`` then commits as it does from the command line,
    and whatever an env.py without it leaves open is committed here.
    """
    from alembic import command

    with run.engine.connect() as connection:
        config.attributes["connection"] = connection
        guard = OtherDatabaseGuard(run.support, run.url)
        try:
            with guard:
                command.upgrade(config, target)
        except Exception as exc:
            if guard.refused:
                raise guard.refusal(env_py) from None
            raise MigrationFailed(
                scrub(
                    f"alembic upgrade {target} failed in the test database "
                    f"{shown_url(run.url)}: {first_line(exc)} (run pytest with --tb=long "
                    "to see the migration's traceback)."
                )
            ) from exc
        finally:
            config.attributes.pop("connection", None)
        if guard.refused:  # env.py caught the refusal itself
            raise guard.refusal(env_py)
        if connection.in_transaction():
            connection.commit()


class OtherDatabaseGuard:
    """While env.py runs: refuse every new connection to another database, of any engine.

    A pool "connect" listener on the Pool class sees each DBAPI connection any engine opens,
    before SQLAlchemy hands it out; raising there makes ``engine.connect()`` fail. It costs
    nothing once removed, unlike an Engine-class connection listener, which would make every
    engine of the process dispatch events around each statement for good.
    """

    def __init__(self, support: DialectSupport, url: URL) -> None:
        self.support = support
        self.url = url
        self.expected = support.url_database(url)
        self.refused: list[str] = []

    def __enter__(self) -> OtherDatabaseGuard:
        event.listen(Pool, "connect", self._check)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(Pool, "connect", self._check)

    def _check(self, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        found = self.support.opened_database(dbapi_connection)
        if found == self.expected:
            return
        self.refused.append(repr(found) if found is not None else "another database")
        raise MigrationFailed(
            f"pytest-sessionmaker refused env.py's connection to {self.refused[-1]}."
        )

    def refusal(self, env_py: Path) -> MigrationFailed:
        return MigrationFailed(
            scrub(
                f"Alembic's env.py opened a connection to the database {self.refused[0]}, "
                f"not to the test database {shown_url(self.url)}, and pytest-sessionmaker "
                "stopped it before a migration ran there; make env.py use the connection the "
                f"plugin passes it by adding these three lines at the top of "
                f"run_migrations_online() in {env_py}:\n\n{ENV_PY_LINES}"
            )
        )


# -- checking the result -------------------------------------------------------------------


def migrated_tables(connection: Connection, expected: set[str] | None) -> DatabaseTables | None:
    """The database's tables when its version table is at ``expected``, else None."""
    found = reflect_tables(connection)
    return found if at_target(connection, found, expected) else None


def at_target(connection: Connection, found: DatabaseTables, expected: set[str] | None) -> bool:
    revisions = version_revisions(connection, found.version_tables)
    return bool(found.version_tables) and (
        revisions == expected if expected is not None else bool(revisions)
    )


def version_revisions(connection: Connection, version_tables: list[str]) -> set[str]:
    revisions: set[str] = set()
    for name in version_tables:
        query: Select[tuple[Any]] = select(column(VERSION_COLUMN)).select_from(table(name))
        revisions.update(str(each) for each in connection.scalars(query))
    return revisions


def not_migrated(
    connection: Connection, url: URL, expected: set[str] | None, env_py: Path
) -> MigrationFailed:
    found = sorted(version_revisions(connection, reflect_tables(connection).version_tables))
    holds = f"holds {', '.join(found)}" if found else "is missing"
    wanted = ", ".join(sorted(expected)) if expected else "the target revision"
    return MigrationFailed(
        scrub(
            f"Alembic's env.py did not migrate the test database {shown_url(url)}: its "
            f"alembic_version {holds}, not {wanted}; make env.py use the connection "
            "pytest-sessionmaker passes it by adding these three lines at the top of "
            f"run_migrations_online() in {env_py}:\n\n{ENV_PY_LINES}"
        )
    )


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
