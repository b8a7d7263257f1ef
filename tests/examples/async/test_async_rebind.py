"""The application's async_sessionmaker and async_scoped_session join each async test."""

import pytest
from sqlalchemy import func, select, text

from app_async import ScopedSession, SessionLocal, count_users, create_user
from models import User


@pytest.mark.asyncio
async def test_the_applications_commit_joins_the_test(db_async_session):
    await create_user("through the application")
    assert await count_users() == 1
    # The same connection and transaction as the test's own session.
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.asyncio
async def test_the_previous_tests_rows_are_gone(db_async_session):
    assert await count_users() == 0


@pytest.mark.asyncio
async def test_a_scoped_session_joins_the_test(db_async_session):
    ScopedSession.add(User(name="scoped"))
    await ScopedSession.commit()
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.asyncio
@pytest.mark.db_commit
async def test_in_a_commit_test_the_application_commits_for_real(db_async_engine):
    await create_user("really committed")
    async with db_async_engine.connect() as other:
        assert await other.scalar(text("SELECT count(*) FROM users")) == 1


def test_between_async_tests_the_factories_are_as_the_run_set_them(db_async_engine):
    for maker in (SessionLocal, ScopedSession.session_factory):
        assert maker.kw["bind"] is db_async_engine
        assert "join_transaction_mode" not in maker.kw
    assert SessionLocal.kw["expire_on_commit"] is False


@pytest.mark.asyncio
async def test_nothing_was_left_by_the_commit_test(db_async_session):
    assert await count_users() == 0
