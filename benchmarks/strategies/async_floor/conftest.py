"""The async ORM floor: the least work that isolates an async ORM test which commits.

One AsyncConnection is held for the whole run, in the session-scoped event loop every test runs
in. Per test: BEGIN, an AsyncSession joined to that connection with
``join_transaction_mode="create_savepoint"``, ROLLBACK. No pool check-out, no plugin.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest_asyncio
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from models import Base

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncConnection

# $BENCH_URL names a sync driver; the async strategies use the backend's async one.
ASYNC_DRIVERS = {"postgresql": "psycopg", "mysql": "aiomysql", "sqlite": "aiosqlite"}


def async_url(url: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    return parsed.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}").render_as_string(False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def async_floor_connection() -> AsyncIterator[AsyncConnection]:
    engine = create_async_engine(async_url(os.environ["BENCH_URL"]))
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with engine.connect() as connection:
        yield connection
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def async_floor_session(
    async_floor_connection: AsyncConnection,
) -> AsyncIterator[AsyncSession]:
    transaction = await async_floor_connection.begin()
    session = AsyncSession(bind=async_floor_connection, join_transaction_mode="create_savepoint")
    yield session
    await transaction.rollback()
    await session.close()
