"""The ORM floor: the least work that isolates an ORM test which commits.

One connection is held for the whole run. Per test: BEGIN, a Session joined to that connection
with ``join_transaction_mode="create_savepoint"`` (so the test's ``commit()`` releases a
savepoint), ROLLBACK. No pool check-out, no plugin. The connection's transaction is rolled back
before the session is closed, so the session's own savepoint needs no ROLLBACK TO of its own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from models import Base

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Connection


@pytest.fixture(scope="session")
def floor_connection() -> Iterator[Connection]:
    engine = create_engine(os.environ["BENCH_URL"])
    Base.metadata.create_all(engine)
    with engine.connect() as connection:
        yield connection
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def floor_session(floor_connection: Connection) -> Iterator[Session]:
    transaction = floor_connection.begin()
    session = Session(bind=floor_connection, join_transaction_mode="create_savepoint")
    yield session
    transaction.rollback()
    session.close()
