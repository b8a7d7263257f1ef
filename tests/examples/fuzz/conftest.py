"""Seed data committed by a session fixture: the baseline every generated test must return to."""

import pytest
from sqlalchemy import insert, select

from fuzz_support import dump
from models import Post, User


@pytest.fixture(scope="session", autouse=True)
def baseline(db_engine):
    with db_engine.begin() as connection:
        connection.execute(insert(User).values(name="seed"))
        seed_id = connection.execute(select(User.id)).scalar_one()
        connection.execute(insert(Post).values(user_id=seed_id, title="seeded post"))
    with db_engine.connect() as connection:
        return dump(connection)
