"""Real commits, then every table emptied after each test (what pytest-django's
TransactionTestCase does): one ``TRUNCATE`` of all tables on PostgreSQL, one per table with
foreign key checks off on MySQL/MariaDB, ``DELETE`` on SQLite.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from models import Base

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Engine, TextClause


def emptying_statements(engine: Engine) -> list[TextClause]:
    names = [
        engine.dialect.identifier_preparer.quote(table.name)
        for table in Base.metadata.sorted_tables
    ]
    if engine.dialect.name == "postgresql":
        return [text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")]
    if engine.dialect.name in ("mysql", "mariadb"):
        return [
            text("SET FOREIGN_KEY_CHECKS = 0"),
            *(text(f"TRUNCATE TABLE {name}") for name in names),
            text("SET FOREIGN_KEY_CHECKS = 1"),
        ]
    return [text(f"DELETE FROM {name}") for name in reversed(names)]


@pytest.fixture(scope="session")
def truncate_engine() -> Iterator[tuple[Engine, list[TextClause]]]:
    engine = create_engine(os.environ["BENCH_URL"])
    Base.metadata.create_all(engine)
    yield engine, emptying_statements(engine)
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def truncate_session(truncate_engine: tuple[Engine, list[TextClause]]) -> Iterator[Session]:
    engine, statements = truncate_engine
    with Session(engine) as session:
        yield session
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)
