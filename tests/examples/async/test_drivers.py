"""Which drivers serve each side of one db_url."""

import pytest

from expected_driver import DRIVER


@pytest.mark.asyncio
async def test_the_async_side_uses_the_expected_driver(db_async_engine):
    assert db_async_engine.dialect.driver == DRIVER
    assert db_async_engine.dialect.is_async


def test_the_sync_side_uses_a_sync_driver(db_engine, db_session):
    assert db_engine.dialect.driver == "psycopg"
    assert not db_engine.dialect.is_async
