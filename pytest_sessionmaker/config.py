"""One frozen settings object, resolved once from the command line, the environment and the ini.

Precedence is CLI > environment > ini > default (as pytest-django and pytest-timeout do): the ini
file is the project's committed default, the environment is per machine or CI job, the command
line is per run. Every value remembers where it came from so the report header can say so.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Literal, NamedTuple

import pytest

from pytest_sessionmaker.errors import scrub

if TYPE_CHECKING:
    from sqlalchemy import URL

URL_ENV_VAR = "PYTEST_DB_URL"
SCHEMA_MODES = ("create", "none", "alembic")
DATABASE_MODES = ("derive", "as_given")

SchemaMode = Literal["create", "none", "alembic"]
DatabaseMode = Literal["derive", "as_given"]


class AlembicSettings(NamedTuple):
    """Where the migrations are (``db_schema = alembic``): read by migrations.py."""

    config_file: str  # absolute
    section: str
    revision: str


class Settings(NamedTuple):
    """Everything the plugin was told, validated (a NamedTuple: cheaper to define at import
    than a dataclass, and as immutable)."""

    url: str | None
    url_source: str | None
    metadata_paths: tuple[str, ...]
    schema_mode: SchemaMode
    database_mode: DatabaseMode
    reuse_database: bool
    recreate_database: bool
    sessionmaker_paths: tuple[str, ...]
    engine_paths: tuple[str, ...]
    rebind_autouse: bool
    # Block the application's named factories and engines outside database tests.
    blocking: bool = True
    # Where db_schema came from ("--db-schema" or "ini db_schema"), for the header.
    schema_source: str = "ini db_schema"
    alembic: AlembicSettings | None = None
    # The async driver for db_async_engine (None: chosen from the URL, see async_engines.py).
    async_driver: str | None = None
    async_driver_source: str | None = None

    def __repr__(self) -> str:
        """Without secrets: pytest prints it with --showlocals, and in some tracebacks."""
        fields = ", ".join(f"{name}={value!r}" for name, value in self._asdict().items())
        return scrub(f"Settings({fields})")

    def parsed_url(self) -> URL | None:
        """The URL as SQLAlchemy parses it (checked already at start-up); imports SQLAlchemy."""
        if self.url is None:
            return None
        from sqlalchemy.engine import make_url

        return make_url(self.url)


def add_options(parser: pytest.Parser) -> None:
    """Declare every option once, as CLI flag and ini key."""
    group = parser.getgroup("sessionmaker", "pytest-sessionmaker (SQLAlchemy test sessions)")
    group.addoption(
        "--db-url",
        dest="db_url",
        default=None,
        help=f"SQLAlchemy URL of the test database server (also ${URL_ENV_VAR} and the db_url "
        "ini key). Default: a throwaway PostgreSQL started for the run.",
    )
    group.addoption(
        "--db-reuse",
        dest="db_reuse",
        action="store_true",
        default=None,
        help="Keep the test database(s) after the run and reuse them while the schema is "
        "unchanged.",
    )
    group.addoption(
        "--db-create",
        dest="db_create",
        action="store_true",
        default=False,
        help="Re-create the test database(s) even when --db-reuse would keep them.",
    )
    group.addoption(
        "--db-schema",
        dest="db_schema",
        choices=SCHEMA_MODES,
        default=None,
        help="create, none or alembic (as the db_schema ini key, which it overrides).",
    )
    group.addoption(
        "--db-alembic-config",
        dest="db_alembic_config",
        default=None,
        help="The Alembic config file for db_schema = alembic (as the db_alembic_config ini "
        "key). Default: alembic.ini in the rootdir.",
    )
    group.addoption(
        "--db-async-driver",
        dest="db_async_driver",
        default=None,
        help="The async driver of db_async_engine (asyncpg, psycopg, aiosqlite, aiomysql, "
        "asyncmy), as the db_async_driver ini key. Default: the URL's driver if it is async, "
        "else psycopg for PostgreSQL, aiosqlite for SQLite, aiomysql for MariaDB/MySQL.",
    )
    parser.addini("db_url", "SQLAlchemy URL of the test database server.", default=None)
    parser.addini(
        "db_async_driver",
        "The async driver of db_async_engine (asyncpg, psycopg, aiosqlite, aiomysql, asyncmy); "
        "default: chosen from db_url.",
        default=None,
    )
    parser.addini(
        "db_metadata",
        "MetaData objects or declarative bases (module:attr, space separated) whose tables "
        "the plugin creates for the run.",
        type="args",
        default=[],
    )
    parser.addini(
        "db_schema",
        "create (default): create db_metadata's tables for the run and drop them after; "
        "none: run no DDL, the database was migrated beforehand; alembic: run the Alembic "
        "migrations (alembic upgrade) in the plugin's test database.",
        default="create",
    )
    parser.addini(
        "db_alembic_config",
        "The Alembic config file for db_schema = alembic, relative to the rootdir.",
        default="alembic.ini",
    )
    parser.addini(
        "db_alembic_section",
        "The section of the Alembic config file to use (alembic's --name).",
        default="alembic",
    )
    parser.addini(
        "db_alembic_revision",
        "The revision to migrate the test database to (default heads: every branch's head).",
        default="heads",
    )
    parser.addini(
        "db_database",
        "derive (default): work in test databases created from the URL's name (app -> "
        "app_test); as_given: use the URL's database exactly as given, create and drop nothing.",
        default="derive",
    )
    parser.addini(
        "db_reuse",
        "Keep and reuse test databases between runs (like --db-reuse).",
        type="bool",
        default=False,
    )
    parser.addini(
        "db_sessionmakers",
        "The application's sessionmaker / scoped_session objects (module:attr, space "
        "separated) to bind to each test's transaction.",
        type="args",
        default=[],
    )
    parser.addini(
        "db_engines",
        "The application's own engines (module:attr): commits through them in a rolled-back "
        "test are reported.",
        type="args",
        default=[],
    )
    parser.addini(
        "db_blocking",
        "Make the application's named session factories and engines raise outside database "
        "tests and before the test database is ready (default true); false turns it off.",
        type="bool",
        default=True,
    )
    parser.addini(
        "db_rebind_autouse",
        "Bind db_sessionmakers for every test, even tests that request no db_* fixture.",
        type="bool",
        default=False,
    )


def _choice(config: pytest.Config, key: str, allowed: tuple[str, ...]) -> str:
    value = str(config.getini(key)).strip()
    if value not in allowed:
        raise pytest.UsageError(
            f"ini key {key} = {value!r} is not valid; use one of: {', '.join(allowed)}."
        )
    return value


def _resolve_url(config: pytest.Config) -> tuple[str | None, str | None]:
    cli = config.getoption("db_url")
    if cli is not None:
        return cli, "--db-url"
    env = os.environ.get(URL_ENV_VAR)
    if env is not None:
        if not env.strip():
            raise pytest.UsageError(
                f"${URL_ENV_VAR} is set but empty; unset it to use the default, "
                "or give it a database URL."
            )
        return env, f"${URL_ENV_VAR}"
    ini = config.getini("db_url")
    if ini is not None:
        return str(ini), "ini db_url"
    return None, None


# SQLAlchemy's URL grammar (sqlalchemy.engine.url): everything after "name://" is optional.
# Patterns, not compiled ones: compiling costs every run at import, URL or not (re caches them).
URL_GRAMMAR = r"""
    (?P<drivername>[\w+]+)://
    (?:[^:/]*(?::[^@]*)?@)?
    (?:(?:\[[^/?]+\]|[^/:?]+)?(?::(?P<port>[^/?]*))?)?
    """
# Dialect names SQLAlchemy serves from another dialect's package.
DIALECT_PACKAGES = {"mariadb": "mysql"}
DRIVER_MODULE = rb"^dialect\s*="


def validate_url(url: str, source: str) -> None:
    """Check the URL at start-up without importing SQLAlchemy; one plain sentence on failure.

    Importing SQLAlchemy costs about a third of a second, which a run whose tests never touch
    the database should not pay. So the URL is checked against SQLAlchemy's URL grammar here,
    and its dialect and driver are looked up among the dialect modules SQLAlchemy ships. Only a
    name not found there (a third-party dialect, or a typo) is resolved by SQLAlchemy itself,
    which also finds dialects registered by other packages. SQLAlchemy parses the URL again
    when a test first needs the database.
    """
    if not url.strip():
        raise pytest.UsageError(f"The database URL from {source} is empty.")
    match = re.match(URL_GRAMMAR, url, re.VERBOSE)
    if match is None:
        raise pytest.UsageError(
            f"The database URL from {source} is not a valid SQLAlchemy URL; expected "
            "dialect+driver://user:password@host:port/database, e.g. "
            "postgresql+psycopg://postgres@127.0.0.1/app or sqlite:///app.db."
        )
    port = match["port"]
    if port and not port.isdigit():
        raise pytest.UsageError(
            f"The database URL from {source} has a port that is not a number; write it as "
            "host:5432, or leave the port out for the default."
        )
    drivername = match["drivername"]
    name, plus, driver = drivername.partition("+")
    if name == "postgres":
        raise pytest.UsageError(
            f"The database URL from {source} starts with {drivername}://, a name SQLAlchemy "
            f"does not know (it dropped that alias in 1.4); write postgresql{plus}{driver}:// "
            "instead."
        )
    if not _ships_with_sqlalchemy(drivername):
        _resolve_dialect(drivername, source)


def _ships_with_sqlalchemy(drivername: str) -> bool:
    """Whether SQLAlchemy's own dialects package has this dialect (and driver) module."""
    from importlib.util import find_spec
    from pathlib import Path

    name, plus, driver = drivername.partition("+")
    spec = find_spec("sqlalchemy")
    if spec is None or not spec.submodule_search_locations or (plus and not driver):
        return False
    dialects = Path(next(iter(spec.submodule_search_locations))) / "dialects"
    package = dialects / DIALECT_PACKAGES.get(name, name)
    if not (package / "__init__.py").is_file():
        return False
    if not driver:
        return True
    # A driver's module ends by naming its dialect class ``dialect``; helper modules do not.
    module = package / f"{driver}.py"
    return (
        module.is_file() and re.search(DRIVER_MODULE, module.read_bytes(), re.MULTILINE) is not None
    )


def _resolve_dialect(drivername: str, source: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import NoSuchModuleError

    try:
        make_url(f"{drivername}://").get_dialect()
    except (NoSuchModuleError, AttributeError):  # AttributeError: a module that is no driver
        raise pytest.UsageError(
            f"The database URL from {source} names the unknown dialect or driver "
            f"{drivername!r}; check the spelling or install the driver's SQLAlchemy "
            "dialect."
        ) from None


def _resolve_schema_mode(config: pytest.Config) -> tuple[str, str]:
    cli = config.getoption("db_schema")
    if cli is not None:
        return cli, "--db-schema"
    return _choice(config, "db_schema", SCHEMA_MODES), "ini db_schema"


def _alembic_settings(config: pytest.Config, database_mode: str) -> AlembicSettings:
    """Check at start-up what db_schema = alembic needs, without importing Alembic."""
    from importlib.util import find_spec
    from pathlib import Path

    if find_spec("alembic") is None:
        raise pytest.UsageError(
            "db_schema = alembic needs Alembic, which is not installed; install it with "
            "pip install 'pytest-sessionmaker[alembic]'."
        )
    if database_mode == "as_given":
        raise pytest.UsageError(
            "db_schema = alembic migrates only a test database of the plugin's, and "
            "db_database = as_given names a database of yours; migrate that one beforehand "
            "and set db_schema = none, or remove db_database = as_given."
        )
    cli = config.getoption("db_alembic_config")
    if cli is not None:
        path, source = Path(cli).absolute(), "--db-alembic-config"
    else:
        path = config.rootpath / str(config.getini("db_alembic_config"))
        source = "ini db_alembic_config"
    if not path.is_file():
        raise pytest.UsageError(
            f"db_schema = alembic: the Alembic config file {path} (from {source}) does not "
            "exist; point db_alembic_config or --db-alembic-config at your alembic.ini."
        )
    return AlembicSettings(
        config_file=str(path),
        section=str(config.getini("db_alembic_section")).strip() or "alembic",
        revision=str(config.getini("db_alembic_revision")).strip() or "heads",
    )


def _resolve_async_driver(config: pytest.Config) -> tuple[str | None, str | None]:
    cli = config.getoption("db_async_driver")
    if cli is not None:
        value, source = str(cli).strip(), "--db-async-driver"
    else:
        ini = config.getini("db_async_driver")
        if ini is None or not str(ini).strip():
            return None, None
        value, source = str(ini).strip(), "ini db_async_driver"
    if not re.fullmatch(r"\w+", value):
        raise pytest.UsageError(
            f"{source} = {value!r} is not a driver name; give one such as asyncpg, psycopg, "
            "aiosqlite, aiomysql or asyncmy."
        )
    return value, source


def read_settings(config: pytest.Config) -> Settings:
    """Resolve and validate every setting; raise pytest.UsageError on bad input."""
    url, source = _resolve_url(config)
    if url is not None and source is not None:
        validate_url(url, source)
    reuse_cli = config.getoption("db_reuse")
    schema_mode, schema_source = _resolve_schema_mode(config)
    database_mode = _choice(config, "db_database", DATABASE_MODES)
    async_driver, async_driver_source = _resolve_async_driver(config)
    return Settings(
        url=url,
        url_source=source,
        metadata_paths=tuple(config.getini("db_metadata")),
        schema_mode=schema_mode,  # type: ignore[arg-type]
        database_mode=database_mode,  # type: ignore[arg-type]
        reuse_database=bool(reuse_cli)
        if reuse_cli is not None
        else bool(config.getini("db_reuse")),
        recreate_database=bool(config.getoption("db_create")),
        sessionmaker_paths=tuple(config.getini("db_sessionmakers")),
        engine_paths=tuple(config.getini("db_engines")),
        rebind_autouse=bool(config.getini("db_rebind_autouse")),
        blocking=bool(config.getini("db_blocking")),
        schema_source=schema_source,
        alembic=_alembic_settings(config, database_mode) if schema_mode == "alembic" else None,
        async_driver=async_driver,
        async_driver_source=async_driver_source,
    )


SETTINGS_KEY = pytest.StashKey[Settings]()
