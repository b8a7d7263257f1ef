"""Every way a rolled-back test can make rows permanent; each `test_escape_*` commits a row.

Each escaping test is followed by `test_clean_after_*`, which must find no row: the escape is
an error of the escaping test alone.
"""

import pytest
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from models import User


def count_users(session_or_connection):
    return session_or_connection.scalar(select(func.count()).select_from(User))


@pytest.fixture
def application_engine(db_engine):
    """An engine an application builds for itself (inside a create_app(), say), on the URL."""
    engine = create_engine(db_engine.url)
    yield engine
    engine.dispose()


def test_escape_commit_statement_through_db_session(db_session):
    db_session.add(User(name="session_commit_statement"))
    db_session.flush()
    db_session.execute(text("COMMIT"))


def test_clean_after_commit_statement_through_db_session(db_session):
    assert count_users(db_session) == 0


def test_escape_commit_statement_on_db_connection(db_connection):
    db_connection.execute(insert(User).values(name="connection_commit_statement"))
    db_connection.exec_driver_sql("COMMIT")


def test_clean_after_commit_statement_on_db_connection(db_connection):
    assert count_users(db_connection) == 0


def test_escape_commit_statement_on_the_sessions_connection(db_session):
    db_session.add(User(name="sessions_connection_commit_statement"))
    db_session.flush()
    db_session.connection().exec_driver_sql("COMMIT")


def test_clean_after_commit_statement_on_the_sessions_connection(db_session):
    assert count_users(db_session) == 0


def test_escape_dbapi_commit(db_session):
    db_session.add(User(name="dbapi_commit"))
    db_session.flush()
    db_session.connection().connection.commit()


def test_clean_after_dbapi_commit(db_session):
    assert count_users(db_session) == 0


def test_escape_second_engine_on_the_same_url(db_engine):
    engine = create_engine(db_engine.url)
    with engine.begin() as connection:
        connection.execute(insert(User).values(name="second_engine"))
    engine.dispose()


def test_clean_after_second_engine_on_the_same_url(db_session):
    assert count_users(db_session) == 0


def test_escape_engine_of_the_application(application_engine, db_session):
    with Session(application_engine) as session:
        session.add(User(name="application_engine"))
        session.commit()


def test_clean_after_engine_of_the_application(db_session):
    assert count_users(db_session) == 0


def test_escape_commit_of_the_connection_behind_db_session(db_session):
    db_session.add(User(name="connection_commit"))
    db_session.flush()
    db_session.connection().commit()


def test_clean_after_commit_of_the_connection_behind_db_session(db_session):
    assert count_users(db_session) == 0


def test_rolling_back_the_connection_behind_db_session_is_no_escape(db_session):
    db_session.add(User(name="rolled_back"))
    db_session.flush()
    db_session.connection().rollback()


def test_clean_after_rolling_back(db_session):
    assert count_users(db_session) == 0
