"""What a test does to the objects it is given does not reach the next test."""

import pytest
from sqlalchemy import delete

from models import User


def test_reconfigure_the_sessionmaker(db_sessionmaker):
    db_sessionmaker.configure(expire_on_commit=False, info={"changed": True})


def test_the_next_sessionmaker_is_as_configured(db_sessionmaker, db_session):
    assert db_sessionmaker.kw.get("expire_on_commit", True) is True
    assert "changed" not in db_sessionmaker.kw.get("info", {})
    assert db_session.expire_on_commit is True


def test_mutate_the_session_options(db_session_options, db_session):
    db_session_options["expire_on_commit"] = False


def test_the_next_session_ignores_the_mutation(db_session):
    assert db_session.expire_on_commit is True


def test_change_the_connections_execution_options(db_connection):
    db_connection.execution_options(logging_token="changed", stream_results=True)


def test_the_next_connection_has_the_engines_options(db_connection, db_engine):
    assert db_connection.get_execution_options() == db_engine.get_execution_options()


@pytest.fixture
def cleans_up_after_itself(db_engine):
    """The cleanup of suites written before the plugin: it deletes nothing any more."""
    yield
    with db_engine.begin() as connection:
        connection.execute(delete(User))


def test_a_cleanup_that_deletes_nothing_is_no_escape(cleans_up_after_itself, db_session):
    db_session.add(User(name="rolled back before the cleanup runs"))
    db_session.commit()
