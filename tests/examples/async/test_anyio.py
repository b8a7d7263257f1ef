"""Tests run by anyio's pytest plugin (asyncio backend), without pytest-asyncio."""

import pytest
from sqlalchemy import func, select

from models import User

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def seeded(db_session):
    db_session.add(User(name="seeded by a sync fixture"))
    db_session.commit()


async def test_commit_releases_a_savepoint(db_async_session):
    db_async_session.add(User(name="committed"))
    await db_async_session.commit()
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 1


async def test_the_previous_tests_commit_is_gone(db_async_sessionmaker):
    async with db_async_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_sync_seed_fixtures_share_the_transaction(seeded, db_async_session):
    names = (await db_async_session.scalars(select(User.name))).all()
    assert names == ["seeded by a sync fixture"]
