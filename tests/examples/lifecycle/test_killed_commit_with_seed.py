"""Seed rows committed by a session fixture (so the baseline has a snapshot table), then a
db_commit test; with KILL_ME the process dies inside it and no teardown runs."""

import os
import signal

import pytest
from sqlalchemy import func, select

from models import User


@pytest.fixture(scope="session", autouse=True)
def seed(db_engine):
    with db_engine.begin() as connection:
        connection.execute(User.__table__.insert(), [{"name": "seed1"}, {"name": "seed2"}])


@pytest.mark.db_commit
def test_commit(db_session):
    db_session.add(User(name="committed"))
    db_session.commit()
    if os.environ.get("KILL_ME"):
        os.kill(os.getpid(), signal.SIGKILL)


def test_only_the_seed(db_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 2
