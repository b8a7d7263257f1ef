"""The async fixtures: db_async_engine, db_async_connection, db_async_sessionmaker,
db_async_session (and db_async_session_options).

The public fixtures are sync and thin; each hands over what the test's
:class:`~pytest_sessionmaker.async_transaction.AsyncTestTransaction` holds. That transaction is
begun and ended by an async fixture run in the test's own event loop: a connection of an async
driver belongs to the loop that opened it, and the loop a test runs in is chosen per test
(pytest-asyncio's ``loop_scope``, or anyio). A fixture's loop is fixed when it is defined, so
there is one such fixture per loop scope (asyncio_loops.py, anyio_loop.py), registered only when
its plugin is loaded, and the public fixtures ask for the one matching the test. A sync run
imports none of this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.errors import ConfigurationError, SessionmakerError, scrub
from pytest_sessionmaker.fixtures import (
    BEGIN_FAILURE_KEY,
    SHARED_ITEM_KEY,
    TRANSACTION_KEY,
    current_run,
    fail_plainly,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import (
        AsyncConnection,
        AsyncEngine,
        AsyncSession,
        async_sessionmaker,
    )

    from pytest_sessionmaker.async_connections import AsyncConnectionKeeper
    from pytest_sessionmaker.async_transaction import AsyncTestTransaction

ASYNC_FIXTURES = frozenset({"db_async_connection", "db_async_sessionmaker", "db_async_session"})
LOOP_SCOPES = ("function", "class", "module", "package", "session")
ANYIO_FIXTURE = "_db_async_transaction_anyio"
# The names plugin.py registers the loop fixtures under, when their runner is loaded.
ASYNCIO_PLUGIN = "sessionmaker-asyncio"
ANYIO_PLUGIN = "sessionmaker-anyio"
MIXED_MESSAGE = (
    "This test uses an async fixture of the plugin's (db_async_session ...) with a sync one "
    "that cannot share its transaction (db_rebind, db_session_dependency, db_queries, "
    "db_assert_num_queries or the db_max_queries marker); only db_session, db_sessionmaker, "
    "db_connection and db_engine can. Use those, or split the test in two."
)


def asyncio_fixture_name(scope: str) -> str:
    return f"_db_async_transaction_{scope}"


def async_transaction_of(request: pytest.FixtureRequest) -> AsyncTestTransaction:
    """The test's AsyncTestTransaction, from the fixture of the loop the test runs in."""
    item = request.node
    names: list[str] = getattr(item, "fixturenames", [])
    if "anyio_backend" in names and request.config.pluginmanager.hasplugin(ANYIO_PLUGIN):
        return request.getfixturevalue(ANYIO_FIXTURE)  # type: ignore[no-any-return]
    marker = item.get_closest_marker("asyncio")
    if marker is not None and request.config.pluginmanager.hasplugin(ASYNCIO_PLUGIN):
        scope = marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")
        if scope is None:
            scope = request.config.getini("asyncio_default_test_loop_scope") or "function"
        return request.getfixturevalue(asyncio_fixture_name(str(scope)))  # type: ignore[no-any-return]
    fail_plainly(
        ConfigurationError(
            f"{request.fixturename} is for async tests run by pytest-asyncio "
            "(@pytest.mark.asyncio, or asyncio_mode = auto) or by anyio's pytest plugin "
            "(@pytest.mark.anyio); this test is run by neither."
        ),
        request.config,
    )


async def run_async_transaction(
    request: pytest.FixtureRequest, keeper: AsyncConnectionKeeper | None = None
) -> AsyncIterator[AsyncTestTransaction]:
    """Begin the test's async transaction in the running loop; end it after the test."""
    from pytest_sessionmaker.async_transaction import AsyncTestTransaction

    item = request.node
    failure = item.stash.get(BEGIN_FAILURE_KEY, None)
    if failure is not None:
        raise failure
    run = current_run(request)
    shared = item.stash.get(SHARED_ITEM_KEY, False)
    sync = item.stash.get(TRANSACTION_KEY, None)
    commit_mode = sync is not None and sync.commit_mode
    try:
        if sync is not None and not commit_mode:
            raise ConfigurationError(MIXED_MESSAGE)
        transaction = AsyncTestTransaction(
            run, run.async_engine(), commit_mode=commit_mode, keeper=keeper
        )
        if not commit_mode:
            run.enter_async_test(transaction)
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)
    try:
        await transaction.begin()
        names = getattr(item, "fixturenames", ())
        if "db_async_connection" in names or (shared and "db_connection" in names):
            await transaction.direct_connection()
    except SessionmakerError as exc:
        run.transaction_ended(transaction)
        fail_plainly(exc, request.config)
    except BaseException:
        run.transaction_ended(transaction)
        raise
    test_function = item.obj
    binding = None
    problems: list[str] = []
    try:
        if shared:
            from pytest_sessionmaker.shared import body_in_greenlet

            # The body's sync calls on the shared connection need SQLAlchemy's greenlet.
            item.obj = body_in_greenlet(test_function)
        if run.async_application_factories:
            from pytest_sessionmaker.async_rebind import AsyncTestBinding

            binding = AsyncTestBinding(run.async_application_factories, transaction.bind)
            await binding.enter(savepoints=not commit_mode)
        yield transaction
    finally:
        if shared:
            item.obj = test_function
        try:
            if binding is not None:
                # First: a session of the application's holds the test's connection.
                problems.extend(await binding.leave())
        finally:
            try:
                problem = await transaction.end()
            finally:
                run.transaction_ended(transaction)
    if problem:
        problems.append(problem)
    if problems:
        pytest.fail(scrub(" ".join(problems)), pytrace=False)


@pytest.fixture(scope="session")
def db_async_engine(request: pytest.FixtureRequest) -> AsyncEngine:
    """An AsyncEngine for the run's test database (the one db_engine uses), without a pool:
    usable from any event loop."""
    try:
        return current_run(request).async_engine()
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)


@pytest.fixture(scope="session")
def db_async_session_options() -> dict[str, Any]:
    """Keyword arguments for the async sessionmaker, over db_session_options (e.g.
    expire_on_commit=False, or class_ for an AsyncSession subclass)."""
    return {}


@pytest.fixture
def _db_async_transaction(request: pytest.FixtureRequest) -> AsyncTestTransaction:
    """The plugin adds it to async tests that use db_async_engine alone, so that what they
    commit through it is looked for (as _db_transaction does for db_engine)."""
    return async_transaction_of(request)


@pytest.fixture
def db_async_connection(request: pytest.FixtureRequest) -> AsyncConnection:
    """An AsyncConnection in a transaction that is rolled back after the test."""
    return async_transaction_of(request).connection


@pytest.fixture
def db_async_sessionmaker(
    request: pytest.FixtureRequest, db_async_session_options: dict[str, Any]
) -> async_sessionmaker[AsyncSession]:
    """This test's async_sessionmaker: its sessions' commits are savepoints of the test's
    transaction."""
    try:
        return async_transaction_of(request).sessionmaker(db_async_session_options)
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)


@pytest.fixture
def db_async_session(
    request: pytest.FixtureRequest, db_async_session_options: dict[str, Any]
) -> AsyncSession:
    """An AsyncSession whose commits are savepoints of the test's transaction; closed after."""
    try:
        return async_transaction_of(request).session(db_async_session_options)
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)
