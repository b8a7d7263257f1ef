"""The async transaction's fixture for each of pytest-asyncio's loop scopes.

Registered only when pytest-asyncio is loaded (plugin.py). pytest-asyncio runs an async fixture
in the loop its ``loop_scope`` names, fixed at definition; an async test's connection must be
opened in the loop the test runs in, so there is one fixture per scope, all function-scoped, and
async_fixtures.py asks for the one of the test's loop. Explicit ``pytest_asyncio.fixture``
decorators make them work in strict mode as in auto mode.

A loop wider than one test has a keeper of the same scope, in the same loop: the connection a
clean test leaves serves the next test of that loop, and is closed when the scope ends, in its
loop, before pytest-asyncio closes the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest_asyncio

from pytest_sessionmaker.async_connections import AsyncConnectionKeeper
from pytest_sessionmaker.async_fixtures import run_async_transaction

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest

    from pytest_sessionmaker.async_transaction import AsyncTestTransaction
    from pytest_sessionmaker.run import DatabaseRun


async def keep_connections() -> AsyncIterator[AsyncConnectionKeeper]:
    keeper = AsyncConnectionKeeper()
    try:
        yield keeper
    finally:
        await keeper.close()


# db_setup: set up before the keeper, so torn down after it (the run drops its database).
@pytest_asyncio.fixture(scope="class", loop_scope="class")
async def _db_async_keeper_class(db_setup: DatabaseRun) -> AsyncIterator[AsyncConnectionKeeper]:
    async for keeper in keep_connections():
        yield keeper


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def _db_async_keeper_module(db_setup: DatabaseRun) -> AsyncIterator[AsyncConnectionKeeper]:
    async for keeper in keep_connections():
        yield keeper


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def _db_async_keeper_package(
    db_setup: DatabaseRun,
) -> AsyncIterator[AsyncConnectionKeeper]:
    async for keeper in keep_connections():
        yield keeper


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _db_async_keeper_session(
    db_setup: DatabaseRun,
) -> AsyncIterator[AsyncConnectionKeeper]:
    async for keeper in keep_connections():
        yield keeper


@pytest_asyncio.fixture(loop_scope="function")
async def _db_async_transaction_function(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request):
        yield transaction


@pytest_asyncio.fixture(loop_scope="class")
async def _db_async_transaction_class(
    request: pytest.FixtureRequest, _db_async_keeper_class: AsyncConnectionKeeper
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request, _db_async_keeper_class):
        yield transaction


@pytest_asyncio.fixture(loop_scope="module")
async def _db_async_transaction_module(
    request: pytest.FixtureRequest, _db_async_keeper_module: AsyncConnectionKeeper
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request, _db_async_keeper_module):
        yield transaction


@pytest_asyncio.fixture(loop_scope="package")
async def _db_async_transaction_package(
    request: pytest.FixtureRequest, _db_async_keeper_package: AsyncConnectionKeeper
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request, _db_async_keeper_package):
        yield transaction


@pytest_asyncio.fixture(loop_scope="session")
async def _db_async_transaction_session(
    request: pytest.FixtureRequest, _db_async_keeper_session: AsyncConnectionKeeper
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request, _db_async_keeper_session):
        yield transaction
