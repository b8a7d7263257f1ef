"""This run's lock connection ends; another run starts meanwhile (the outer test runs it) and
must not take this run's database, which this run still uses afterwards."""

import os
import pathlib
import time

import pytest
from lock_tools import kill_lock_connection

from models import User


@pytest.fixture(scope="session", autouse=True)
def seed(db_engine):
    with db_engine.begin() as connection:
        connection.execute(User.__table__.insert(), {"name": "seed"})


def wait_for(path: pathlib.Path) -> None:
    give_up = time.monotonic() + 300  # a safety net against a hang, not a timing
    while not path.exists():
        assert time.monotonic() < give_up, f"{path.name} never appeared"
        time.sleep(0.05)


def test_lose_the_lock(db_engine):
    kill_lock_connection(db_engine.url)
    barrier = pathlib.Path(os.environ["BARRIER"])
    (barrier / "lock-lost").write_text(str(db_engine.url.database))
    wait_for(barrier / "other-run-done")


def test_the_database_is_still_this_runs(db_session):
    assert [user.name for user in db_session.query(User)] == ["seed"]
