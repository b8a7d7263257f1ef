"""SQLAlchemy's recipe "Joining a Session into an External Transaction", async, by hand.

A pooled AsyncEngine for the run, in the session-scoped event loop every test runs in; per test
a connection from the pool, a transaction begun, an AsyncSession bound to it with
``join_transaction_mode="create_savepoint"``, and afterwards close, roll back, check back in.
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

    from sqlalchemy.ext.asyncio import AsyncEngine

# $BENCH_URL names a sync driver; the async strategies use the backend's async one.
ASYNC_DRIVERS = {"postgresql": "psycopg", "mysql": "aiomysql", "sqlite": "aiosqlite"}


def async_url(url: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    return parsed.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}").render_as_string(False)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def async_recipe_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(os.environ["BENCH_URL"]))
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def async_recipe_session(async_recipe_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    connection = await async_recipe_engine.connect()
    transaction = await connection.begin()
    session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    await session.close()
    await transaction.rollback()
    await connection.close()
