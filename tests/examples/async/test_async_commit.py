"""db_commit in async tests: real commits, visible to other connections, undone afterwards."""

import pytest
from sqlalchemy import func, select, text

from models import User


@pytest.mark.asyncio
@pytest.mark.db_commit
async def test_commit_is_real(db_async_session, db_async_engine):
    db_async_session.add(User(name="committed"))
    await db_async_session.commit()
    async with db_async_engine.connect() as other:
        assert await other.scalar(text("SELECT count(*) FROM users")) == 1


@pytest.mark.asyncio
@pytest.mark.db_commit
async def test_connection_commits_are_real_and_counters_restart(
    db_async_connection, db_async_engine
):
    await db_async_connection.execute(text("INSERT INTO users (name) VALUES ('raw')"))
    await db_async_connection.commit()
    async with db_async_engine.connect() as other:
        # The previous test's row and its id are gone: the restore is exact.
        assert (await other.execute(text("SELECT id, name FROM users"))).all() == [(1, "raw")]


@pytest.mark.asyncio
async def test_the_commits_were_undone(db_async_session):
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 0


def test_the_commits_were_undone_for_sync_tests_too(db_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 0
