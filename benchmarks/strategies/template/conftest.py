"""pytest-postgresql: a database per test, created from a template database that holds the
schema, on the running server of ``$BENCH_URL`` (``postgresql_noproc``). The ORM session uses
the ``postgresql`` fixture's own connection, so a test opens no second one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from pytest_postgresql import factories
from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from models import Base

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

URL = make_url(os.environ["BENCH_URL"])


def load_schema(
    host: str, port: int, user: str, dbname: str, password: str | None, **_: object
) -> None:
    engine = create_engine(
        URL.set(host=host, port=int(port), username=user, password=password, database=dbname),
        poolclass=NullPool,
    )
    Base.metadata.create_all(engine)
    engine.dispose()


postgresql_noproc = factories.postgresql_noproc(
    host=URL.host,
    port=URL.port or 5432,
    user=URL.username,
    password=URL.password,
    dbname=URL.database,
    load=[load_schema],
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def template_session(postgresql: psycopg.Connection[object]) -> Iterator[Session]:
    engine = create_engine(URL, creator=lambda: postgresql, poolclass=StaticPool)
    with Session(engine) as session:
        yield session
    engine.dispose()
