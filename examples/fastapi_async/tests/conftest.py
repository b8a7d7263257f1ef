from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@pytest.fixture(scope="session")
def app() -> FastAPI:
    from notes.main import app

    return app


@pytest.fixture(scope="session")
def db_async_session_options() -> dict[str, Any]:
    # As the application's SessionLocal: its endpoints read attributes after commit(), which
    # an expired object would load with sync IO (MissingGreenlet).
    return {"expire_on_commit": False}


@pytest.fixture
async def client(
    app: FastAPI, db_async_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncClient]:
    from notes.database import get_db

    async def get_test_db() -> AsyncIterator[AsyncSession]:
        # Each request gets a session of the test's transaction: its commits are savepoints.
        async with db_async_sessionmaker() as session:
            yield session

    app.dependency_overrides[get_db] = get_test_db
    try:
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
    finally:
        app.dependency_overrides.clear()
