"""The blog's tests run on the schema its migrations built, seed rows and view included."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from blog.models import Category, Post, User


def category_names(session: Session) -> list[str]:
    return sorted(session.scalars(select(Category.name)))


def test_the_data_migration_seeded_the_categories(db_session: Session) -> None:
    assert category_names(db_session) == ["howto", "news"]


def test_the_view_made_by_a_migration_lists_published_posts(db_session: Session) -> None:
    author = User(name="ada")
    db_session.add(author)
    db_session.flush()
    db_session.add_all(
        [
            Post(user_id=author.id, title="Draft"),
            Post(user_id=author.id, title="Hello", published=True),
        ]
    )
    db_session.commit()
    rows = db_session.execute(text("SELECT title, author FROM published_posts")).all()
    assert [tuple(row) for row in rows] == [("Hello", "ada")]


def test_each_test_starts_from_the_migrated_rows(db_session: Session) -> None:
    assert db_session.scalars(select(User)).all() == []
    assert category_names(db_session) == ["howto", "news"]


@pytest.mark.db_commit
def test_a_commit_test_may_change_the_seeded_rows(db_session: Session) -> None:
    db_session.execute(update(Category).where(Category.name == "news").values(name="updates"))
    tips = Category(name="tips")
    db_session.add(tips)
    db_session.commit()
    assert tips.id == 3  # after the two seeded categories, on every backend
    assert category_names(db_session) == ["howto", "tips", "updates"]


@pytest.mark.db_commit
def test_after_a_commit_test_the_migrated_rows_are_back(db_session: Session) -> None:
    assert category_names(db_session) == ["howto", "news"]
    again = Category(name="tips")
    db_session.add(again)
    db_session.commit()
    assert again.id == 3
