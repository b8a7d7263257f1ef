"""pytest hooks: options, markers, the report header, and the fixtures' registration."""

from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.async_fixtures import (
    ANYIO_PLUGIN,
    ASYNCIO_PLUGIN,
    _db_async_transaction,
    db_async_connection,
    db_async_engine,
    db_async_session,
    db_async_session_options,
    db_async_sessionmaker,
)
from pytest_sessionmaker.config import SETTINGS_KEY, add_options, read_settings
from pytest_sessionmaker.fixtures import (
    APPLICATION_SESSIONS_KEY,
    ASYNC_ITEM_KEY,
    BEGIN_FAILURE_KEY,
    COSTS_KEY,
    DATABASE_ITEM_KEY,
    OWN_FIXTURES,
    RUN_KEY,
    SHARED_ITEM_KEY,
    TRANSACTION_KEY,
    _db_transaction,
    begin_before_fixtures,
    db_application_engines,
    db_application_sessionmakers,
    db_blocker,
    db_connection,
    db_engine,
    db_engine_options,
    db_rebind,
    db_session,
    db_session_dependency,
    db_session_options,
    db_sessionmaker,
    db_setup,
    db_url,
    mark_database_items,
    watch_fixture,
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
    import asyncio
    from collections.abc import Generator

__all__ = [
    "_db_async_transaction",
    "_db_transaction",
    "db_application_engines",
    "db_application_sessionmakers",
    "db_assert_max_num_queries",
    "db_assert_num_queries",
    "db_async_connection",
    "db_async_engine",
    "db_async_session",
    "db_async_session_options",
    "db_async_sessionmaker",
    "db_blocker",
    "db_connection",
    "db_engine",
    "db_engine_options",
    "db_queries",
    "db_rebind",
    "db_session",
    "db_session_dependency",
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
    # The async transaction's fixtures for the loops of pytest-asyncio and anyio, when loaded
    # (by entry point, -p or pytest_plugins: the names differ).
    if _loaded(config, "pytest_asyncio.plugin"):
        from pytest_sessionmaker import asyncio_loops

        config.pluginmanager.register(asyncio_loops, ASYNCIO_PLUGIN)
    if _loaded(config, "anyio.pytest_plugin"):
        from pytest_sessionmaker import anyio_loop

        config.pluginmanager.register(anyio_loop, ANYIO_PLUGIN)
    if settings.url is not None:
        from pytest_sessionmaker.errors import knows_secrets, remember_secrets_in

        remember_secrets_in(settings.url)
        if knows_secrets():
            from pytest_sessionmaker.redaction import hide_secrets_in_reports

            hide_secrets_in_reports(config)
    # Modules are imported only when needed: start-up is paid by every run, database or not.
    if settings.sessionmaker_paths or settings.engine_paths:
        from pytest_sessionmaker.application import guard_application
        from pytest_sessionmaker.rebind import configure_application

        configure_application(config)
        guard_application(config)
    if settings.url is None:
        from pytest_sessionmaker.server import configure_throwaway_server

        configure_throwaway_server(config)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "sessionmaker-xdist")


def _loaded(config: pytest.Config, module: str) -> bool:
    return any(
        getattr(plugin, "__name__", None) == module for plugin in config.pluginmanager.get_plugins()
    )


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
    application = request.config.stash.get(APPLICATION_SESSIONS_KEY, None)
    if fixturedef.scope == "function":
        item = request.node
        if item.stash.get(SHARED_ITEM_KEY, False):
            return (yield from shared_fixture_setup(fixturedef, request))
        if item.stash.get(DATABASE_ITEM_KEY, False):
            transaction = item.stash.get(TRANSACTION_KEY, None)
            if transaction is None and BEGIN_FAILURE_KEY not in item.stash:
                begin_before_fixtures(request)
                transaction = item.stash.get(TRANSACTION_KEY, None)
            if transaction is not None:
                watch_fixture(fixturedef, transaction)
        elif application is not None and not item.stash.get(ASYNC_ITEM_KEY, False):
            # A test using no database: the application's database is blocked from here to
            # the teardown of its last function-scoped fixture.
            application.enter_plain_test(item)
        return (yield)
    if application is None:
        result = yield
    else:
        # Wider-scoped fixtures run as between tests, even when a plain test sets them up.
        with application.between_tests():
            result = yield
    run = request.config.stash.get(RUN_KEY, None)
    if run is not None and fixturedef.argname not in OWN_FIXTURES:
        # Session-scoped seed data is the run's baseline; a narrower scope's is a level of its
        # own, undone when its fixture is torn down.
        run.accept_baseline(None if fixturedef.scope == "session" else fixturedef)
    return result


# On a shared test item: its fixtures that run in SQLAlchemy's greenlet (shared_fixture_setup).
SHARED_USERS_KEY = pytest.StashKey[set[str]]()


def shared_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """A test sharing one transaction between sync and async fixtures: its sync fixtures that
    use db_session, db_sessionmaker or db_connection (directly or through other such fixtures)
    run in SQLAlchemy's greenlet on the test's loop (shared.py)."""
    from pytest_sessionmaker.shared import SHARED_SYNC_FIXTURES, fixture_in_loop

    function = getattr(fixturedef, "func", None)
    users = request.node.stash.setdefault(SHARED_USERS_KEY, set())
    if (
        function is None
        or fixturedef.argname in OWN_FIXTURES
        or inspect.iscoroutinefunction(function)
        or inspect.isasyncgenfunction(function)
        or not any(name in SHARED_SYNC_FIXTURES or name in users for name in fixturedef.argnames)
    ):
        return (yield)
    users.add(fixturedef.argname)
    from pytest_sessionmaker.async_fixtures import async_transaction_of

    def loop_of_test() -> asyncio.AbstractEventLoop:
        loop = async_transaction_of(request).loop
        assert loop is not None
        return loop

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fixturedef, "func", fixture_in_loop(function, loop_of_test))
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    application = item.config.stash.get(APPLICATION_SESSIONS_KEY, None)
    if (
        application is not None
        and not item.stash.get(DATABASE_ITEM_KEY, False)
        and not item.stash.get(ASYNC_ITEM_KEY, False)
    ):
        application.enter_plain_test(item)


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> None:
    if fixturedef.scope == "function" or fixturedef.argname in OWN_FIXTURES:
        return
    run = request.config.stash.get(RUN_KEY, None)
    if run is not None:
        run.end_scope(fixturedef)


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_sessionmaker.report import header_lines

    return header_lines(config.stash[SETTINGS_KEY])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # First, so that other hooks of the session's end see the application as it was made.
    _release_application(session.config)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[COSTS_OUTPUT] = session.config.stash.get(COSTS_KEY, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """With -v, one line per process that opened a database: where its first test's wait went."""
    config = terminalreporter.config
    if config.get_verbosity() < 1:
        return
    for line in config.stash.get(COSTS_KEY, []):
        terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    # A run that stopped before its session ended (a usage error in collection, say).
    _release_application(config)
    # After the session fixtures' teardown, which still uses the throwaway server. A run that
    # never imported its module has none, and need not import it now.
    server = sys.modules.get("pytest_sessionmaker.server")
    if server is not None:
        server.stop_throwaway_server(config)


def _release_application(config: pytest.Config) -> None:
    application = config.stash.get(APPLICATION_SESSIONS_KEY, None)
    if application is not None:
        application.close()


class XdistHooks:
    """xdist's hooks, registered only when xdist is installed (pytest rejects unknown hooks)."""

    def pytest_configure_node(self, node: Any) -> None:
        from pytest_sessionmaker.server import hand_to_worker

        hand_to_worker(node.config, node.workerinput)

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker's one-time costs, shown by the controller (see pytest_terminal_summary)."""
        lines = getattr(node, "workeroutput", {}).get(COSTS_OUTPUT, [])
        worker = node.workerinput.get("workerid", "?")
        node.config.stash.setdefault(COSTS_KEY, []).extend(f"[{worker}] {x}" for x in lines)


COSTS_OUTPUT = "pytest_sessionmaker_costs"
