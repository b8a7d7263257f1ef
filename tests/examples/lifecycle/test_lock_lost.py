"""A run whose lock connection ends mid-run. SCENARIO says what happens meanwhile:
"alone" (nothing), "held" (another run holds the name at the end), "taken over" (another run
put its mark on the database)."""

import os

from lock_tools import hold_lock, kill_lock_connection, mark_as_another_runs

from models import User


def test_the_lock_connection_ends(db_engine):
    kill_lock_connection(db_engine.url)
    scenario = os.environ["SCENARIO"]
    if scenario == "held":
        hold_lock(db_engine.url)
    elif scenario == "taken over":
        mark_as_another_runs(db_engine.url)


def test_the_run_goes_on(db_session):
    db_session.add(User(name="still here"))
    db_session.commit()
    assert db_session.query(User).count() == 1
