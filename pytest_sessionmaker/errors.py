"""The plugin's exceptions, and the one scrubber every message goes through (no passwords)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pytest

if TYPE_CHECKING:
    from sqlalchemy import URL


class SessionmakerError(Exception):
    """Base class of every error raised by pytest-sessionmaker."""


class ConfigurationError(SessionmakerError):
    """A setting, fixture override or marker is wrong; the message says what to change."""


class DatabaseUnavailable(SessionmakerError):
    """The configured database cannot be reached or prepared."""


class SchemaConflict(SessionmakerError):
    """A table the plugin would create already exists and belongs to someone else."""


class MigrationFailed(SessionmakerError):
    """Alembic could not migrate the test database, or tried to migrate another one."""


class IsolationBreach(SessionmakerError):
    """A test made work permanent behind the plugin's back."""


class SessionmakerWarning(pytest.PytestWarning):
    """Something at the run's end could not be cleaned up; the message says what was left."""


# Query parameters and conninfo keys that carry secrets (libpq, PyMySQL, SQLAlchemy's URL).
SECRET_KEYS = ("password", "passwd", "pwd", "sslpassword", "sslkey_password", "secret", "token")
_SECRET_ASSIGNMENT = re.compile(
    r"""(?P<key>\b(?:{keys})\s*[=:]\s*)(?P<quote>['"]?)(?P<value>[^'"\s&;,)]*)""".format(
        keys="|".join(SECRET_KEYS)
    ),
    re.IGNORECASE,
)
# Everything between the user's ':' and the last '@' of the URL counts as its password, so a
# password holding '@', ':' or '/' is hidden whole (hiding a little more is harmless).
_URL_PASSWORD = re.compile(r"(?P<head>[\w+.-]+://[^:/@\s]*:)(?P<password>\S*)(?=@)")

# Secret values seen in URLs this process was given, so that a driver's message quoting one
# without its key is scrubbed as well. Process-wide on purpose: a secret stays one.
_known_secrets: set[str] = set()
# Shorter values are not replaced in text: "pw" would mangle every "pw" of a message.
MIN_SECRET = 3


def warn_plainly(message: str) -> None:
    """A SessionmakerWarning, scrubbed like every other message."""
    import warnings

    warnings.warn(SessionmakerWarning(scrub(message)), stacklevel=3)


def remember_secrets(url: URL) -> None:
    """Note the URL's password and secret query parameters for ``scrub``."""
    if url.password:
        _known_secrets.add(str(url.password))
    for key, value in url.query.items():
        if key.lower() in SECRET_KEYS:
            values = value if isinstance(value, tuple) else (value,)
            _known_secrets.update(str(each) for each in values if each)


def remember_secrets_in(url: str) -> None:
    """Note the secrets of a URL given as text (read without importing SQLAlchemy)."""
    for match in _URL_PASSWORD.finditer(url):
        _known_secrets.add(unquote(match["password"]))
    for match in _SECRET_ASSIGNMENT.finditer(url):
        _known_secrets.add(unquote(match["value"]))
    _known_secrets.discard("")


def knows_secrets() -> bool:
    return bool(_known_secrets)


def shows_known_secret(text: str) -> bool:
    return any(secret in text for secret in _known_secrets if len(secret) >= MIN_SECRET)


def scrub(message: str) -> str:
    """``message`` without passwords: in URLs, in key=value pairs, and any remembered one."""
    message = _URL_PASSWORD.sub(r"\g<head>***", message)
    message = _SECRET_ASSIGNMENT.sub(r"\g<key>\g<quote>***", message)
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            message = message.replace(secret, "***")
    return message


def shown_url(url: URL) -> str:
    """A URL as messages show it: password and secret query parameters hidden."""
    remember_secrets(url)
    return scrub(url.render_as_string(hide_password=True))


def connect_error_message(url: URL, exc: BaseException) -> str:
    """One plain sentence about a connection failure, with the password hidden."""
    from pytest_sessionmaker.advice import driver_advice, failure_advice

    if isinstance(exc, ImportError):
        return scrub(driver_advice(url, exc))
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = reason[0] if reason else type(exc).__name__
    return scrub(
        f"Cannot connect to the test database {shown_url(url)}: {detail}. "
        f"{failure_advice(url, detail)}"
    )
