"""Seed rows committed by a session fixture, and the dump every check compares with."""

import pytest
from sqlalchemy import insert, select, update

from catalog import Author, Book, Tag, events
from dump import dump


@pytest.fixture(scope="session", autouse=True)
def baseline(db_engine):
    with db_engine.begin() as connection:
        connection.execute(insert(Author).values(name="ann"))
        ann = connection.execute(select(Author.id).where(Author.name == "ann")).scalar_one()
        connection.execute(insert(Author).values(name="bob", mentor_id=ann))
        bob = connection.execute(select(Author.id).where(Author.name == "bob")).scalar_one()
        connection.execute(update(Author).where(Author.id == ann).values(mentor_id=bob))
        connection.execute(
            insert(Book),
            [
                {"author_id": ann, "isbn": "isbn-1", "price": 10, "note": None},
                {"author_id": bob, "isbn": "isbn-2", "price": 20, "note": "second"},
            ],
        )
        books = connection.execute(select(Book.id).order_by(Book.id)).scalars().all()
        connection.execute(
            insert(Tag),
            [{"book_id": books[0], "label": "new"}, {"book_id": books[1], "label": "old"}],
        )
        connection.execute(
            insert(events),
            [{"message": "created", "book_id": books[0]}, {"message": None, "book_id": None}],
        )
    with db_engine.connect() as connection:
        return dump(connection)


@pytest.fixture
def check(db_engine, baseline):
    """Called by a test that runs after a db_commit test: the database is the baseline."""

    def compare():
        with db_engine.connect() as connection:
            assert dump(connection) == baseline

    return compare
