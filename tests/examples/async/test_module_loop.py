"""Tests sharing a module-scoped loop (named by the marker): each still rolled back, and the
connection a clean test leaves serves the next one."""

import asyncio

import pytest
from sqlalchemy import func, select

from models import User

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOOPS = []
CONNECTIONS = []


async def test_first(db_async_session):
    LOOPS.append(asyncio.get_running_loop())
    db_async_session.add(User(name="first"))
    await db_async_session.commit()


async def test_second(db_async_session):
    LOOPS.append(asyncio.get_running_loop())
    assert await db_async_session.scalar(select(func.count()).select_from(User)) == 0


async def test_the_loop_was_the_modules(db_async_connection):
    assert [asyncio.get_running_loop()] * 2 == LOOPS
    CONNECTIONS.append(db_async_connection)


async def test_a_clean_tests_connection_serves_the_next_test(db_async_connection):
    assert [db_async_connection] == CONNECTIONS
