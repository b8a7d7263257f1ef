"""db_async_engine: the run's test database through an async driver.

One ``db_url`` serves both sides. The sync engine needs a sync driver and the async engine an
async one, so each side's URL is derived from the other's here: a URL naming an async driver
(``postgresql+asyncpg://``) gives the sync side the backend's usual sync driver, and the async
side uses that async driver (or the ``db_async_driver`` setting, or the backend's default).

Imported only when a test asks for an async fixture: a sync run never loads SQLAlchemy's asyncio
extension, greenlet or an async driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_sessionmaker.errors import ConfigurationError, DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy import URL
    from sqlalchemy.ext.asyncio import AsyncEngine

    from pytest_sessionmaker.run import DatabaseRun

# The async drivers SQLAlchemy ships, per backend; the first is the default. psycopg serves both
# sides: create_async_engine picks its async dialect by itself.
ASYNC_DRIVERS = {
    "postgresql": ("psycopg", "asyncpg", "psycopg_async"),
    "sqlite": ("aiosqlite",),
    "mysql": ("aiomysql", "asyncmy"),
    "mariadb": ("aiomysql", "asyncmy"),
}
# The sync driver the sync side uses when the URL names an async one.
SYNC_DRIVERS = {
    "asyncpg": "psycopg",
    "psycopg_async": "psycopg",
    "aiosqlite": "pysqlite",
    "aiomysql": "pymysql",
    "asyncmy": "pymysql",
}
DRIVER_SETTINGS = "--db-async-driver or the db_async_driver ini key"


def sync_url(url: URL) -> URL:
    """The URL the sync engine uses: an async driver replaced by the backend's sync one."""
    driver = url.get_driver_name()
    if driver in SYNC_DRIVERS and "+" in url.drivername:
        return url.set(drivername=f"{url.get_backend_name()}+{SYNC_DRIVERS[driver]}")
    return url


def async_driver_for(url: URL, configured: str | None) -> str:
    """The async driver: the setting, else the URL's own async driver, else the default."""
    backend = url.get_backend_name()
    known = ASYNC_DRIVERS.get(backend)
    if configured is not None:
        if known is not None and configured not in known:
            raise ConfigurationError(
                f"The async driver {configured!r} ({DRIVER_SETTINGS}) does not serve "
                f"{backend}; use one of: {', '.join(known)}."
            )
        return configured
    if known is None:
        raise ConfigurationError(
            f"pytest-sessionmaker does not know an async driver for {backend}; name one with "
            f"{DRIVER_SETTINGS}."
        )
    named = url.get_driver_name() if "+" in url.drivername else None
    return named if named in known else known[0]


def create_test_async_engine(run: DatabaseRun, original_url: URL) -> AsyncEngine:
    """An AsyncEngine for the run's test database, without a pool.

    Connections of an async driver belong to the event loop that opened them, and pytest-asyncio
    gives each test (or module) a loop of its own; a pooled connection handed to a test of
    another loop fails ("attached to a different loop"), and one left in the pool of a closed
    loop cannot be closed cleanly. Without a pool each test's connection is opened and closed
    in its own loop.
    """
    from importlib.util import find_spec

    from sqlalchemy.exc import NoSuchModuleError
    from sqlalchemy.pool import NullPool

    driver = async_driver_for(original_url, run.settings.async_driver)
    if find_spec("greenlet") is None:
        raise DatabaseUnavailable(
            "SQLAlchemy's asyncio extension needs greenlet, which is not installed; install "
            "it with pip install 'pytest-sessionmaker[async]' (or pip install greenlet)."
        )
    url = run.engine.url.set(drivername=f"{run.engine.url.get_backend_name()}+{driver}")
    try:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url, poolclass=NullPool)
    except ImportError as exc:
        from pytest_sessionmaker.advice import driver_advice

        raise DatabaseUnavailable(
            driver_advice(url, exc, instead=f"another driver with {DRIVER_SETTINGS}")
        ) from exc
    except NoSuchModuleError as exc:
        raise ConfigurationError(
            f"SQLAlchemy has no async driver {driver!r} for {url.get_backend_name()} "
            f"({DRIVER_SETTINGS}); check the spelling."
        ) from exc
    run.support.prepare_async_engine(engine.sync_engine)
    return engine
