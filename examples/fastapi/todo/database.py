"""The application's engine, made at import from the environment, and its session dependency:
no factory to rebind."""

from __future__ import annotations

import os
from collections.abc import Iterator

from sqlmodel import Session, create_engine

engine = create_engine(os.environ.get("TODO_DATABASE_URL", "sqlite:///todo.db"))


def get_db() -> Iterator[Session]:
    with Session(engine) as session:
        yield session
