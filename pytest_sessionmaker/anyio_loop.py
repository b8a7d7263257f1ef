"""The async transaction's fixture for tests run by anyio's pytest plugin.

Registered only when that plugin is loaded (plugin.py). anyio runs a plain async fixture in the
runner of the test's ``anyio_backend`` when the test uses one, and keeps that runner (its event
loop) while the fixture lives, so the test runs in the loop the connection was opened in.
SQLAlchemy's async drivers run on asyncio only: the trio backend is refused in a sentence.

With pytest-asyncio also loaded, use its strict mode (its auto mode would take this fixture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_sessionmaker.async_fixtures import run_async_transaction
from pytest_sessionmaker.errors import ConfigurationError
from pytest_sessionmaker.fixtures import fail_plainly

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pytest_sessionmaker.async_transaction import AsyncTestTransaction


@pytest.fixture
async def _db_async_transaction_anyio(
    request: pytest.FixtureRequest,
) -> AsyncIterator[AsyncTestTransaction]:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fail_plainly(
            ConfigurationError(
                "The plugin's async fixtures run on asyncio only (SQLAlchemy's async drivers "
                "do), and this test runs on another event loop (trio); give it anyio_backend "
                "= 'asyncio'."
            ),
            request.config,
        )
    async for transaction in run_async_transaction(request):
        yield transaction
