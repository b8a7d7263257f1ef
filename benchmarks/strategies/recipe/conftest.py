"""SQLAlchemy's recipe "Joining a Session into an External Transaction", written by hand.

As the SQLAlchemy documentation gives it: a pooled engine for the run; per test a connection
from the pool, a transaction begun, a Session bound to it with
``join_transaction_mode="create_savepoint"``, and afterwards close, roll back, check back in.
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

    from sqlalchemy import Engine


@pytest.fixture(scope="session")
def recipe_engine() -> Iterator[Engine]:
    engine = create_engine(os.environ["BENCH_URL"])
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def recipe_session(recipe_engine: Engine) -> Iterator[Session]:
    connection = recipe_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    transaction.rollback()
    connection.close()
