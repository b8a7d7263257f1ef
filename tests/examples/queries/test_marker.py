"""The db_max_queries marker on a module, a class and a test."""

import pytest
from sqlalchemy import select

from blog import Author, Post

pytestmark = pytest.mark.db_max_queries(1)


@pytest.fixture
def authors(db_session):
    db_session.add_all([Author(name=name) for name in ("ann", "bob", "cy")])
    db_session.flush()
    db_session.scalars(select(Author)).all()


def test_the_fixture_s_statements_do_not_count(authors, db_session):
    assert len(db_session.scalars(select(Author)).all()) == 3


def test_a_second_query_fails_the_test(authors, db_session):
    db_session.scalars(select(Author)).all()
    db_session.scalars(select(Post)).all()


@pytest.mark.db_max_queries(2)
def test_the_closest_marker_wins(db_session):
    db_session.scalars(select(Author)).all()
    db_session.scalars(select(Post)).all()


@pytest.mark.db_max_queries(0, ignore=lambda statement: "posts" in statement.sql)
def test_ignore_leaves_statements_out(db_session):
    db_session.scalars(select(Post)).all()


def test_the_marker_alone_makes_a_database_test(request):
    # ... and its call hook is registered for this run only because a test carries the marker.
    assert request.config.pluginmanager.has_plugin("sessionmaker-query-limit")


class TestAClass:
    pytestmark = pytest.mark.db_max_queries(0)

    def test_a_class_marker_applies_to_its_tests(self, db_session):
        db_session.scalars(select(Author)).all()


@pytest.mark.db_max_queries("3")
def test_a_bad_limit(db_session):
    pass


@pytest.mark.db_max_queries()
def test_a_missing_limit(db_session):
    pass
