"""A db_commit test's sessions use connections of their own: they are recorded too."""

import pytest
from sqlalchemy import func, select

from blog import Author


@pytest.mark.db_commit
def test_sessions_of_a_commit_test_are_recorded(
    db_session, db_sessionmaker, db_connection, db_engine, db_queries, db_assert_num_queries
):
    # Even with transaction control counted, SQLite's BEGIN (the plugin's) is left out.
    with db_assert_num_queries(1, transaction_control=True):
        db_session.add(Author(name="eve"))
        db_session.commit()
    with db_sessionmaker() as other:
        assert other.scalar(select(func.count()).select_from(Author)) == 1
    db_connection.execute(select(Author.name)).all()
    assert len(db_queries) == 3
    assert db_session.get_bind().url == db_engine.url


def test_the_commit_was_restored(db_session, db_queries):
    assert db_session.scalar(select(func.count()).select_from(Author)) == 0
    assert len(db_queries) == 1
