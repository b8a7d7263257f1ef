"""Failing counts: every test here fails, each with the message the outer test checks."""

from sqlalchemy import select, text

from blog import Author


def test_exact_count_differs(db_session, db_assert_num_queries):
    with db_assert_num_queries(1):
        for name in ("ann", "bob"):
            db_session.execute(select(Author).where(Author.name == name)).all()


def test_more_than_the_maximum(db_connection, db_assert_max_num_queries):
    with db_assert_max_num_queries(1):
        db_connection.execute(text("SELECT 1"))
        db_connection.execute(text("SELECT 2"))


def test_nothing_ran_on_the_test_s_connection(db_engine, db_assert_num_queries):
    with db_assert_num_queries(1), db_engine.connect() as elsewhere:
        elsewhere.execute(text("SELECT 1"))


def test_a_bad_number(db_assert_num_queries):
    with db_assert_num_queries("2"):
        pass
