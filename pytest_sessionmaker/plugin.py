"""pytest hooks: options, markers, the report header, and the fixtures' registration."""

from __future__ import annotations

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY, add_options, read_settings
from pytest_sessionmaker.fixtures import (
    _db_transaction,
    add_transaction_fixture,
    db_application_sessionmakers,
    db_connection,
    db_engine,
    db_engine_options,
    db_rebind,
    db_session,
    db_session_options,
    db_sessionmaker,
    db_setup,
    db_url,
)
from pytest_sessionmaker.markers import COMMIT_MARKER_HELP

__all__ = [
    "_db_transaction",
    "db_application_sessionmakers",
    "db_connection",
    "db_engine",
    "db_engine_options",
    "db_rebind",
    "db_session",
    "db_session_options",
    "db_sessionmaker",
    "db_setup",
    "db_url",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", COMMIT_MARKER_HELP)
    settings = config.stash[SETTINGS_KEY] = read_settings(config)
    # Modules are imported only when needed: start-up is paid by every run, database or not.
    if settings.sessionmaker_paths or settings.engine_paths:
        from pytest_sessionmaker.rebind import configure_application

        configure_application(config)
    if settings.url is None:
        from pytest_sessionmaker.server import ensure_run_id

        ensure_run_id(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    add_transaction_fixture(items, config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_sessionmaker.report import header_lines

    return header_lines(config.stash[SETTINGS_KEY])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash[SETTINGS_KEY].url is None:
        from pytest_sessionmaker.server import stop_throwaway_server

        stop_throwaway_server(session.config)
