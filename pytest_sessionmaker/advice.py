"""What to do about a failure, in one sentence: which package, which setting, which server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import URL

# The package that provides each driver SQLAlchemy names, and our extra that installs it.
DRIVER_PACKAGES = {
    "psycopg": ("psycopg[binary]", None),
    "psycopg_async": ("psycopg[binary]", None),
    "psycopg2": ("psycopg2-binary", None),
    "asyncpg": ("asyncpg", "async"),
    "pg8000": ("pg8000", None),
    "pymysql": ("pymysql", "mysql"),
    "mysqldb": ("mysqlclient", None),
    "aiomysql": ("aiomysql", "async"),
    "asyncmy": ("asyncmy", None),
    "mariadbconnector": ("mariadb", None),
    "aiosqlite": ("aiosqlite", "async"),
}
URL_SETTINGS = "--db-url, $PYTEST_DB_URL or the db_url ini key"


def driver_advice(
    url: URL, exc: BaseException, instead: str = f"another URL with {URL_SETTINGS}"
) -> str:
    """A missing driver: name the package (and the extra that installs it), or another URL."""
    driver = url.get_driver_name()
    package, extra = DRIVER_PACKAGES.get(driver, (driver, None))
    install = f"pip install '{package}'"
    if extra:
        install = f"pip install 'pytest-sessionmaker[{extra}]' (or {install})"
    alternative = ""
    if url.get_backend_name() in ("mysql", "mariadb") and driver == "mysqldb":
        alternative = (
            f" A URL without a driver, {url.drivername}://, means mysqlclient; to use PyMySQL "
            "write mysql+pymysql:// and install 'pytest-sessionmaker[mysql]'."
        )
    return (
        f"The database driver {driver!r} that the URL {url.drivername}:// names is not "
        f"installed ({exc}). Install it: {install}, or choose {instead}.{alternative}"
    )


def failure_advice(url: URL, detail: str) -> str:
    """What to change after a failed connection, guessed from the server's own words."""
    lowered = detail.lower()
    who = f"the user {url.username!r}" if url.username else "the user the URL names"
    if "role" in lowered and "does not exist" in lowered:
        return (
            f"The server has no such role: create {who} on it, or put an existing one in the "
            f"URL ({URL_SETTINGS})."
        )
    if "authentication failed" in lowered or "access denied" in lowered:
        return (
            f"The server refused the credentials of {who}: fix the user or password in the URL "
            f"({URL_SETTINGS})."
        )
    if "database" in lowered and ("does not exist" in lowered or "unknown database" in lowered):
        return (
            "The server is up but has no database of that name; the plugin connects to it only "
            "to create its own test database next to it: create it, or name an existing one "
            f"(e.g. postgres) in the URL ({URL_SETTINGS})."
        )
    return (
        "Check that the server is running and reachable, or choose another database with "
        f"{URL_SETTINGS} (e.g. --db-url sqlite://)."
    )
