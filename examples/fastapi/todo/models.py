"""The application's one table."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Todo(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200, unique=True)
    done: bool = False
