"""What differs between database backends, one module per dialect behind one interface.

Modelled on the provisioning registry of SQLAlchemy's own test suite: everything the plugin does
that depends on the backend (engine fixes, ending a test's transaction and looking for escaped
commits, the change-log triggers, identity counters, creating and locking test databases) is a
method of :class:`DialectSupport`, implemented once per dialect. Adding a backend means adding a
module; a backend without one gets :class:`~pytest_sessionmaker.dialects.base.GenericSupport`,
which runs rolled-back tests and says plainly what else it cannot do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_sessionmaker.dialects.base import DialectSupport, GenericSupport, TestEnding

if TYPE_CHECKING:
    from sqlalchemy import URL, Engine

__all__ = ["DialectSupport", "GenericSupport", "TestEnding", "support_for", "support_for_url"]


def support_for_url(url: URL) -> DialectSupport:
    """The support object for a URL's backend (imports only that backend's module)."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        from pytest_sessionmaker.dialects.postgresql import PostgreSQLSupport

        return PostgreSQLSupport(url.get_driver_name())
    if backend == "sqlite":
        from pytest_sessionmaker.dialects.sqlite import SQLiteSupport

        return SQLiteSupport(url.get_driver_name())
    if backend in ("mysql", "mariadb"):
        from pytest_sessionmaker.dialects.mysql import MySQLSupport

        return MySQLSupport(url.get_driver_name())
    return GenericSupport(url.get_driver_name(), backend)


def support_for(engine: Engine) -> DialectSupport:
    return support_for_url(engine.url)
