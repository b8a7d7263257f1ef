"""The run's engine: one engine, the one tests get as ``db_engine`` and the one behind every
test's connection, with the dialect's fixes installed as pool events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine
from sqlalchemy.exc import NoSuchModuleError

from pytest_sessionmaker.errors import DatabaseUnavailable, connect_error_message

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import URL, Engine

    from pytest_sessionmaker.dialects import DialectSupport


def create_test_engine(url: URL, options: Mapping[str, Any], support: DialectSupport) -> Engine:
    """The run's engine: pooled, savepoints working, session state reset on check-in."""
    support.refuse_engine_options(options)
    url = support.engine_url(url)
    engine = engine_or_plain_error(url, **{**support.engine_defaults(url), **options})
    support.prepare_engine(engine)
    return engine


def engine_or_plain_error(url: URL, **options: Any) -> Engine:
    """create_engine, with a missing driver reported in one sentence instead of a traceback."""
    try:
        return create_engine(url, **options)
    except ImportError as exc:
        raise DatabaseUnavailable(connect_error_message(url, exc)) from exc
    except NoSuchModuleError as exc:
        raise DatabaseUnavailable(
            f"SQLAlchemy has no dialect or driver {url.drivername!r} (the database URL names "
            "it); check the spelling or install the driver's SQLAlchemy dialect."
        ) from exc
