"""The next module starts from the session's baseline: the module seed is undone."""

from sqlalchemy import select

from catalog import Author


def test_only_the_session_seed_is_left(db_session, check):
    assert sorted(db_session.scalars(select(Author.name))) == ["ann", "bob"]
    check()
