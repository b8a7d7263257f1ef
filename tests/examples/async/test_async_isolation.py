"""Async sessions: commits are savepoints, and every test is rolled back.

In strict mode the module's marker makes the tests async tests; in auto mode it is accepted.
The loop scope comes from asyncio_default_test_loop_scope (the outer test sets it).
"""

import pytest
from sqlalchemy import func, select, text

from models import User

pytestmark = pytest.mark.asyncio


async def count_users(session):
    return await session.scalar(select(func.count()).select_from(User))


async def test_commit_releases_a_savepoint(db_async_session):
    db_async_session.add(User(name="committed"))
    await db_async_session.commit()
    assert await count_users(db_async_session) == 1


async def test_the_previous_tests_commit_is_gone(db_async_session):
    assert await count_users(db_async_session) == 0


async def test_rollback_goes_back_to_the_last_commit(db_async_session):
    db_async_session.add(User(name="kept"))
    await db_async_session.commit()
    db_async_session.add(User(name="dropped"))
    await db_async_session.rollback()
    names = (await db_async_session.scalars(select(User.name))).all()
    assert names == ["kept"]


async def test_begin_nested_rolls_back_alone(db_async_session):
    db_async_session.add(User(name="outer"))
    nested = await db_async_session.begin_nested()
    db_async_session.add(User(name="inner"))
    await nested.rollback()
    names = (await db_async_session.scalars(select(User.name))).all()
    assert names == ["outer"]


async def test_sessionmaker_begin_commits_into_the_test(db_async_sessionmaker):
    async with db_async_sessionmaker.begin() as session:
        session.add(User(name="begun"))
    async with db_async_sessionmaker() as session:
        assert await count_users(session) == 1


async def test_connection_writes_are_seen_by_sessions_of_the_test(
    db_async_connection, db_async_session
):
    await db_async_connection.execute(text("INSERT INTO users (name) VALUES ('raw')"))
    assert await count_users(db_async_session) == 1


async def test_nothing_reached_the_database(db_async_engine):
    async with db_async_engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM users")) == 0
