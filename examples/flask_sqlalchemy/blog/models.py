"""The blog's models, on db.Model."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blog.extensions import db


class Author(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str] = mapped_column(String(200))
    author: Mapped[Author] = relationship(back_populates="posts")
