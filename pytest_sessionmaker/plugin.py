"""pytest hooks: options, markers, the report header, and the fixtures' registration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY, add_options, read_settings
from pytest_sessionmaker.fixtures import (
    BEGIN_FAILURE_KEY,
    DATABASE_ITEM_KEY,
    OWN_FIXTURES,
    RUN_KEY,
    TRANSACTION_KEY,
    _db_transaction,
    begin_before_fixtures,
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
    mark_database_items,
)
from pytest_sessionmaker.markers import COMMIT_MARKER_HELP
from pytest_sessionmaker.queries import db_queries
from pytest_sessionmaker.query_limits import (
    MAX_QUERIES_MARKER_HELP,
    QUERY_LIMIT_KEY,
    db_assert_max_num_queries,
    db_assert_num_queries,
    query_limit_of_body,
)

if TYPE_CHECKING:
    from collections.abc import Generator

__all__ = [
    "_db_transaction",
    "db_application_sessionmakers",
    "db_assert_max_num_queries",
    "db_assert_num_queries",
    "db_connection",
    "db_engine",
    "db_engine_options",
    "db_queries",
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
    config.addinivalue_line("markers", MAX_QUERIES_MARKER_HELP)
    settings = config.stash[SETTINGS_KEY] = read_settings(config)
    # Modules are imported only when needed: start-up is paid by every run, database or not.
    if settings.sessionmaker_paths or settings.engine_paths:
        from pytest_sessionmaker.rebind import configure_application

        configure_application(config)
    if settings.url is None:
        from pytest_sessionmaker.server import ensure_run_id

        ensure_run_id(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_database_items(items, config)
    limited = any(item.stash.get(QUERY_LIMIT_KEY, False) for item in items)
    if limited and not config.pluginmanager.has_plugin(QueryLimitHooks.name):
        config.pluginmanager.register(QueryLimitHooks(), QueryLimitHooks.name)


class QueryLimitHooks:
    """Registered only when a collected test carries db_max_queries: a hook wrapper around
    every test's call costs each test a few microseconds, which the others need not pay."""

    name = "sessionmaker-query-limit"

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Count the statements of a db_max_queries test's body."""
        if not item.stash.get(QUERY_LIMIT_KEY, False):
            return (yield)
        with query_limit_of_body(item):
            return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Begin a database test's transaction before its first function-scoped fixture, and take
    what wider-scoped fixtures commit as the baseline.

    Both keep one rule: only commits made outside any test's function-scoped set-up, call and
    teardown (session-, package-, module- and class-scoped fixtures) become seed data; the rest
    is the test's, reported as an escape of that test.
    """
    if fixturedef.scope == "function":
        item = request.node
        if (
            item.stash.get(DATABASE_ITEM_KEY, False)
            and TRANSACTION_KEY not in item.stash
            and BEGIN_FAILURE_KEY not in item.stash
        ):
            begin_before_fixtures(request)
        return (yield)
    result = yield
    _accept_baseline(fixturedef, request.config)
    return result


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> None:
    if fixturedef.scope != "function":
        _accept_baseline(fixturedef, request.config)


def _accept_baseline(fixturedef: pytest.FixtureDef[object], config: pytest.Config) -> None:
    if fixturedef.argname in OWN_FIXTURES:
        return
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.accept_baseline()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_sessionmaker.report import header_lines

    return header_lines(config.stash[SETTINGS_KEY])


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash[SETTINGS_KEY].url is None:
        from pytest_sessionmaker.server import stop_throwaway_server

        stop_throwaway_server(session.config)
