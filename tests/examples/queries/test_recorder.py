"""What db_queries and the assertion fixtures record, on the backend under test."""

import inspect
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from blog import Author, Post


def here() -> int:
    """The caller's line number."""
    return sys._getframe(1).f_lineno


def first_words(recorder):
    return [statement.sql.split()[0].upper() for statement in recorder]


def test_every_session_of_the_test_and_db_connection_are_recorded(
    db_session, db_sessionmaker, db_connection, db_queries
):
    db_session.add(Author(name="ann"))
    line = here() + 1
    db_session.flush()
    with db_sessionmaker() as other:
        other.scalars(select(Author)).all()
    db_connection.execute(text("SELECT 1"))
    with Session(bind=db_connection) as own:
        own.scalars(select(Post)).all()
    assert first_words(db_queries) == ["INSERT", "SELECT", "SELECT", "SELECT"]
    insert = db_queries[0]
    assert insert.location == f"test_recorder.py:{line}"
    assert "ann" in repr(insert.parameters)
    assert all(statement.duration is not None for statement in db_queries)
    assert "SELECT 1" in db_queries[2].sql


def test_the_application_s_rebound_factory_is_recorded_with_its_own_line(
    db_assert_num_queries,
):
    import blog_app

    source, start = inspect.getsourcelines(blog_app.author_names)
    line = start + next(n for n, text in enumerate(source) if "session.scalars" in text)
    with db_assert_num_queries(1) as queries:
        assert blog_app.author_names() == []
    assert queries[0].location == f"blog_app.py:{line}"


def test_savepoints_and_transaction_control_count_only_when_asked(
    db_session, db_queries, db_assert_num_queries
):
    with db_assert_num_queries(3, transaction_control=True) as everything:
        db_session.add(Author(name="bob"))
        db_session.commit()
    assert first_words(everything) == ["SAVEPOINT", "INSERT", "RELEASE"]
    assert first_words(db_queries) == ["INSERT"]


def test_the_savepoint_db_connection_opens_is_never_recorded(
    request, db_session, db_assert_num_queries
):
    with db_assert_num_queries(0, transaction_control=True):
        connection = request.getfixturevalue("db_connection")
    assert connection.in_nested_transaction()


def test_nested_recorders_each_see_their_window(db_session, db_queries, db_assert_num_queries):
    db_session.scalars(select(Author)).all()
    with db_assert_num_queries(2) as block:
        db_session.scalars(select(Author)).all()
        db_session.scalars(select(Post)).all()
    db_session.scalars(select(Post)).all()
    assert len(block) == 2
    assert len(db_queries) == 4
    assert db_queries[1] is block[0]


def test_listeners_exist_only_while_recording(db_connection, db_assert_max_num_queries):
    listeners = len(db_connection.dispatch.before_cursor_execute)
    with db_assert_max_num_queries(1):
        assert len(db_connection.dispatch.before_cursor_execute) == listeners + 1
        with db_assert_max_num_queries(1):
            assert len(db_connection.dispatch.before_cursor_execute) == listeners + 1
    assert len(db_connection.dispatch.before_cursor_execute) == listeners


def test_clear_and_str(db_session, db_queries):
    db_session.scalars(select(Author).where(Author.name == "cy")).all()
    shown = str(db_queries)
    assert shown.startswith("1 statement:\n1. SELECT authors.id, authors.name")
    assert "parameters: " in shown and "'cy'" in shown
    assert "at test_recorder.py:" in shown
    db_queries.clear()
    assert len(db_queries) == 0 and list(db_queries) == []
    assert str(db_queries) == "No statements."


def test_a_statement_that_raised_is_recorded(db_session, db_queries):
    with pytest.raises(DBAPIError):
        db_session.execute(text("SELECT * FROM no_such_table"))
    assert len(db_queries) == 1
    assert db_queries[0].duration is None
    assert "raised an error" in str(db_queries)


def test_an_error_inside_the_block_is_not_hidden(db_assert_num_queries):
    with pytest.raises(ZeroDivisionError), db_assert_num_queries(5):
        1 / 0  # noqa: B018


kept = []


def test_a_recorded_test(db_connection, db_session, db_queries):
    db_session.add(Author(name="dee"))
    db_session.commit()
    kept.append((db_connection, db_queries, len(db_queries)))
    assert not any("pytest_sessionmaker" in statement.sql for statement in db_queries)


def test_the_next_test_pays_nothing(db_connection):
    recorded_connection, recorder, count = kept[0]
    # Nothing the plugin sent at the end of the recorded test was recorded.
    assert len(recorder) == count
    # The recorded connection went back to the pool; this one has no listener of a recorder.
    assert recorded_connection.closed
    assert db_connection is not recorded_connection
    kept.append(db_connection)


def test_later_clean_tests_keep_their_connection(db_connection):
    assert db_connection is kept[-1]


def test_without_db_max_queries_tests_run_without_its_hook(request):
    assert not request.config.pluginmanager.has_plugin("sessionmaker-query-limit")
