"""Commits by fixtures: wider-scoped fixtures seed the baseline, function-scoped ones escape."""

import pytest
from sqlalchemy import insert, select

from models import User


@pytest.fixture(scope="module")
def seeded_by_module(db_engine):
    with db_engine.begin() as connection:
        connection.execute(insert(User).values(name="module_seed"))


@pytest.fixture
def committed_by_function_fixture(db_engine):
    with db_engine.begin() as connection:
        connection.execute(insert(User).values(name="function_fixture"))


@pytest.fixture
def committed_at_teardown(db_engine):
    yield
    with db_engine.begin() as connection:
        connection.execute(insert(User).values(name="function_fixture_teardown"))


def names(session):
    return sorted(session.scalars(select(User.name)))


def test_a_module_fixture_seeds_the_baseline(seeded_by_module, db_session):
    assert names(db_session) == ["module_seed"]


def test_escape_function_fixture_commits_before_db_session(
    seeded_by_module, committed_by_function_fixture, db_session
):
    assert names(db_session) == ["function_fixture", "module_seed"]


def test_the_function_fixtures_row_is_gone(seeded_by_module, db_session):
    assert names(db_session) == ["module_seed"]


def test_escape_function_fixture_commits_at_teardown(
    seeded_by_module, committed_at_teardown, db_session
):
    assert names(db_session) == ["module_seed"]


def test_the_teardown_row_is_gone(seeded_by_module, db_session):
    assert names(db_session) == ["module_seed"]
