"""Writes the generated db_commit tests make: each succeeds whatever the tables hold."""

from sqlalchemy import delete, func, select, text, update

from catalog import Author, Book, Note, Tag, events


def first_author(session):
    found = session.scalar(select(func.min(Author.id)))
    if found is None:
        session.add(Author(name="fallback"))
        session.flush()
        found = session.scalar(select(func.min(Author.id)))
    return found


def first_book(session):
    found = session.scalar(select(func.min(Book.id)))
    if found is None:
        session.add(Book(author_id=first_author(session), isbn="fallback", price=1))
        session.flush()
        found = session.scalar(select(func.min(Book.id)))
    return found


def add_tag(session, label):
    session.add(Tag(book_id=first_book(session), label=label))


def repoint_books(session):
    last = session.scalar(select(func.max(Author.id)))
    if last is not None:
        session.execute(update(Book).values(author_id=last))


def swap_isbns(session):
    books = session.execute(select(Book.id, Book.isbn).order_by(Book.id).limit(2)).all()
    if len(books) < 2:
        return
    (first, first_isbn), (second, second_isbn) = books
    session.execute(update(Book).where(Book.id == first).values(isbn="swap-in-progress"))
    session.execute(update(Book).where(Book.id == second).values(isbn=first_isbn))
    session.execute(update(Book).where(Book.id == first).values(isbn=second_isbn))


def delete_a_book(session):
    last = session.scalar(select(func.max(Book.id)))
    if last is not None:
        session.execute(delete(Tag).where(Tag.book_id == last))
        session.execute(delete(Book).where(Book.id == last))


def delete_everything(session):
    session.execute(delete(Tag))
    session.execute(delete(events))
    session.execute(delete(Book))
    session.execute(update(Author).values(mentor_id=None))
    session.execute(delete(Author))
    session.execute(delete(Note))


def truncate(connection, table):
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql(f"DELETE FROM {table}")
    else:
        connection.exec_driver_sql(f"TRUNCATE TABLE {table}")


def advance_sequence(session):
    if session.bind.dialect.name == "postgresql":
        session.execute(text("SELECT nextval('ticket_numbers')"))
        session.execute(text("SELECT nextval('ticket_numbers')"))


def ddl(connection, kind, index):
    statements = {
        "add_column": f"ALTER TABLE books ADD COLUMN extra_{index} INTEGER",
        "create_index": f"CREATE INDEX ix_fuzz_{index} ON books (note)",
        "create_table": f"CREATE TABLE fuzz_{index} (x INTEGER)",
        "drop_table": "DROP TABLE tags",
    }
    connection.exec_driver_sql(statements[kind])


def rename_first_author(session, name):
    session.execute(update(Author).where(Author.id == first_author(session)).values(name=name))


def repoint_books_to(session, name):
    author = session.scalar(select(Author.id).where(Author.name == name))
    session.execute(update(Book).values(author_id=author))
