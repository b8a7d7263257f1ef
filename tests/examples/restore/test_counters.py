"""The first id a commit test inserts does not depend on how many rolled-back tests ran."""

import pytest
from sqlalchemy import select

from catalog import Author, Book, Note


def add_books(session, count):
    ann = session.scalar(select(Author.id).where(Author.name == "ann"))
    session.add_all(Book(author_id=ann, isbn=f"rolled-{n}", price=n) for n in range(count))
    session.commit()


@pytest.mark.parametrize("rolled_back_books", [0, 3, 1])
def test_rolled_back_inserts_move_the_counters(db_session, rolled_back_books):
    add_books(db_session, rolled_back_books)


@pytest.mark.db_commit
def test_the_first_id_of_a_commit_test_is_the_same(db_session):
    ann = db_session.scalar(select(Author.id).where(Author.name == "ann"))
    book = Book(author_id=ann, isbn="committed", price=5)
    author = Author(name="first")
    db_session.add_all([book, author])
    db_session.commit()
    assert (book.id, author.id) == (3, 3)  # two seed books, two seed authors


@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.db_commit
def test_a_table_empty_at_baseline_restarts_its_counter(db_session, attempt):
    note = Note(body=f"attempt {attempt}")
    db_session.add(note)
    db_session.commit()
    assert note.id == 1
