"""Async tests that commit behind the plugin's back: each is an error of its own test, and the
test after it starts clean."""

import pytest
from sqlalchemy import func, insert, select, text

from models import User

pytestmark = pytest.mark.asyncio


async def test_escape_commit_statement_through_db_async_session(db_async_session):
    await db_async_session.execute(insert(User).values(name="escaped"))
    await db_async_session.execute(text("COMMIT"))


async def test_clean_after_commit_statement(db_async_session):
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 0


async def test_escape_second_connection_of_db_async_engine(db_async_engine):
    async with db_async_engine.begin() as connection:
        await connection.execute(insert(User).values(name="escaped"))


async def test_clean_after_second_connection(db_async_session):
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 0
