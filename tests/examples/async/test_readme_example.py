import pytest
from sqlalchemy import func, select

from models import User

pytestmark = pytest.mark.asyncio


async def test_commit_releases_a_savepoint(db_async_session):
    db_async_session.add(User(name="ada"))
    await db_async_session.commit()  # a savepoint of the test's transaction
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 1


async def test_each_test_starts_empty(db_async_sessionmaker):
    async with db_async_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


@pytest.fixture
def grace(db_session):  # a sync fixture, as sync tests use it
    user = User(name="grace")
    db_session.add(user)
    db_session.commit()
    return user


async def test_sync_seed_rows_are_seen_by_async_code(grace, db_async_session):
    assert (await db_async_session.get(User, grace.id)).name == "grace"
