"""Sync and async fixtures in one test share one connection and one transaction."""

import pytest
from sqlalchemy import func, select, text

from models import Post, User


@pytest.fixture
def seeded_user(db_session):
    """A sync seed fixture, as sync tests use it (factory_boy would do the same)."""
    user = User(name="seeded")
    db_session.add(user)
    db_session.commit()
    yield user
    # Its teardown uses the connection too.
    db_session.add(Post(user_id=user.id, title="written at teardown"))
    db_session.flush()


async def count(session, model=User):
    return await session.scalar(select(func.count()).select_from(model))


@pytest.mark.asyncio
async def test_rows_seeded_by_a_sync_fixture_are_seen_by_the_async_session(
    seeded_user, db_async_session
):
    names = (await db_async_session.scalars(select(User.name))).all()
    assert names == ["seeded"]


def test_the_same_seed_fixture_in_a_sync_test_runs_as_usual(seeded_user, db_session):
    # The shared test ran the fixture (and its own body) in SQLAlchemy's greenlet by wrapping the
    # fixture's and the test's functions for that test only: here both are the plain ones again.
    assert db_session.scalar(select(User.name)) == "seeded"


@pytest.mark.asyncio
async def test_sync_calls_in_the_async_body_work_and_are_seen_both_ways(
    db_session, db_async_session
):
    db_session.add(User(name="sync"))
    db_session.commit()
    assert await count(db_async_session) == 1
    db_async_session.add(User(name="async"))
    await db_async_session.commit()
    assert db_session.scalar(select(func.count()).select_from(User)) == 2


@pytest.mark.asyncio
async def test_everything_was_rolled_back(db_session, db_async_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 0
    assert await count(db_async_session, Post) == 0


@pytest.mark.asyncio
async def test_sync_connection_is_the_async_connections(db_connection, db_async_connection):
    assert db_connection is db_async_connection.sync_connection


@pytest.mark.asyncio
async def test_escape_a_commit_statement_through_the_shared_sync_session(
    db_session, db_async_session
):
    db_session.add(User(name="escaped"))
    db_session.flush()
    db_session.execute(text("COMMIT"))


@pytest.mark.asyncio
async def test_clean_after_the_shared_escape(db_async_session):
    assert await count(db_async_session) == 0


def test_a_sync_test_after_the_shared_ones_gets_its_own_clean_transaction(db_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 0
