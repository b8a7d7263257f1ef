"""The async transaction's fixture for each of pytest-asyncio's loop scopes.

Registered only when pytest-asyncio is loaded (plugin.py). pytest-asyncio runs an async fixture
in the loop its ``loop_scope`` names, fixed at definition; an async test's connection must be
opened in the loop the test runs in, so there is one fixture per scope, all function-scoped, and
async_fixtures.py asks for the one of the test's loop. Explicit ``pytest_asyncio.fixture``
decorators make them work in strict mode as in auto mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest_asyncio

from pytest_sessionmaker.async_fixtures import run_async_transaction

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest

    from pytest_sessionmaker.async_transaction import AsyncTestTransaction


@pytest_asyncio.fixture(loop_scope="function")
async def _db_async_transaction_function(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request):
        yield transaction


@pytest_asyncio.fixture(loop_scope="class")
async def _db_async_transaction_class(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request):
        yield transaction


@pytest_asyncio.fixture(loop_scope="module")
async def _db_async_transaction_module(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request):
        yield transaction


@pytest_asyncio.fixture(loop_scope="package")
async def _db_async_transaction_package(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request):
        yield transaction


@pytest_asyncio.fixture(loop_scope="session")
async def _db_async_transaction_session(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    async for transaction in run_async_transaction(request):
        yield transaction
