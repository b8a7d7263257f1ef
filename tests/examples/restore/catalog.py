"""A schema with what exact restore must handle: foreign keys (also to the same table), a
composite key, unique values, a computed column, a GENERATED ALWAYS identity column, a table
without a primary key, and on PostgreSQL a standalone sequence read by a server default."""

from sqlalchemy import (
    DDL,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Integer,
    String,
    Table,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(Identity(always=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    mentor_id: Mapped[int | None] = mapped_column(ForeignKey("authors.id"))


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    isbn: Mapped[str] = mapped_column(String(20), unique=True)
    price: Mapped[int] = mapped_column(Integer)
    price_with_tax: Mapped[int] = mapped_column(Integer, Computed("price * 2", persisted=True))
    note: Mapped[str | None] = mapped_column(String(50))
    ticket: Mapped[int] = mapped_column(Integer, server_default="0")


class Tag(Base):
    __tablename__ = "tags"
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"), primary_key=True)
    label: Mapped[str] = mapped_column(String(20), primary_key=True)


class Note(Base):
    """Empty at baseline; on SQLite an AUTOINCREMENT table (its counter in sqlite_sequence)."""

    __tablename__ = "notes"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy reads it
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(50))


events = Table(
    "events",
    Base.metadata,
    Column("message", String(50)),
    Column("book_id", Integer),
)

# PostgreSQL only: books.ticket reads a sequence that belongs to no table.
event.listen(
    Base.metadata,
    "before_create",
    DDL("CREATE SEQUENCE IF NOT EXISTS ticket_numbers").execute_if(dialect="postgresql"),
)
event.listen(
    Book.__table__,
    "after_create",
    DDL("ALTER TABLE books ALTER COLUMN ticket SET DEFAULT nextval('ticket_numbers')").execute_if(
        dialect="postgresql"
    ),
)
event.listen(
    Base.metadata,
    "after_drop",
    DDL("DROP SEQUENCE IF EXISTS ticket_numbers").execute_if(dialect="postgresql"),
)
