"""A module-scoped fixture's seed rows are the baseline while the module runs."""

import pytest
from sqlalchemy import insert, select

from catalog import Author


@pytest.fixture(scope="module", autouse=True)
def module_seed(db_engine):
    with db_engine.begin() as connection:
        connection.execute(insert(Author).values(name="module_author"))


def names(session):
    return sorted(session.scalars(select(Author.name)))


@pytest.mark.db_commit
def test_a_commit_test_restores_to_the_modules_baseline(db_session):
    assert names(db_session) == ["ann", "bob", "module_author"]
    db_session.add(Author(name="from_the_test"))
    db_session.commit()


def test_the_module_baseline_is_back(db_session):
    assert names(db_session) == ["ann", "bob", "module_author"]
