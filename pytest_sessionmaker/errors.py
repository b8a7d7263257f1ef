"""The plugin's exceptions, and the wording of database errors (never with a password)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import URL


class SessionmakerError(Exception):
    """Base class of every error raised by pytest-sessionmaker."""


class DatabaseUnavailable(SessionmakerError):
    """The configured database cannot be reached or prepared."""


class SchemaConflict(SessionmakerError):
    """A table the plugin would create already exists and belongs to someone else."""


class IsolationBreach(SessionmakerError):
    """A test made work permanent behind the plugin's back."""


def hide_secrets(message: str, url: URL) -> str:
    if url.password:
        message = message.replace(str(url.password), "***")
    return message


def connect_error_message(url: URL, exc: BaseException) -> str:
    """One plain sentence about a connection failure, with the password hidden."""
    shown = url.render_as_string(hide_password=True)
    if isinstance(exc, ImportError):
        return (
            f"The database driver for {url.drivername!r} is not installed ({exc}). Install it "
            "(for MySQL/MariaDB: pip install 'pytest-sessionmaker[mysql]') or choose another "
            "URL with --db-url."
        )
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = reason[0] if reason else type(exc).__name__
    return hide_secrets(
        f"Cannot connect to the test database {shown}: {detail}. Check that the server is "
        "running, or choose another database with --db-url, $PYTEST_DB_URL or the db_url ini "
        "key (e.g. --db-url sqlite://).",
        url,
    )
