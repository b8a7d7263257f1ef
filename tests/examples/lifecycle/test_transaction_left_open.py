"""A test that leaves a transaction open on a connection of its own until the process ends."""

from lock_tools import leave_transaction_open


def test_leaves_a_transaction_open(db_engine):
    leave_transaction_open(db_engine.url)


def test_after_it(db_session):
    assert db_session.connection() is not None
