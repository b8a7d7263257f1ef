"""pytest hooks: options, markers, the report header, and the fixtures' registration."""

from __future__ import annotations

import sys
from typing import Any

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
        from pytest_sessionmaker.server import configure_throwaway_server

        configure_throwaway_server(config)
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistHooks(), "sessionmaker-xdist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    add_transaction_fixture(items, config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_sessionmaker.report import header_lines

    return header_lines(config.stash[SETTINGS_KEY])


def pytest_unconfigure(config: pytest.Config) -> None:
    # After the session fixtures' teardown, which still uses the throwaway server. A run that
    # never imported its module has none, and need not import it now.
    server = sys.modules.get("pytest_sessionmaker.server")
    if server is not None:
        server.stop_throwaway_server(config)


class XdistHooks:
    """xdist's hooks, registered only when xdist is installed (pytest rejects unknown hooks)."""

    def pytest_configure_node(self, node: Any) -> None:
        from pytest_sessionmaker.server import hand_to_worker

        hand_to_worker(node.config, node.workerinput)
