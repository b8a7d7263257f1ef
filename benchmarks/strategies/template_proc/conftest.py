"""pytest-postgresql: its own server for the run (``postgresql_proc``), then a database per test
from a template that holds the schema. The ORM session uses the ``postgresql`` fixture's own
connection, so a test opens no second one.

PostgreSQL refuses to run as root; as root (a CI container, the benchmark's machine) pg_ctl is
called through ``pg_ctl_as_postgres`` beside this file, which runs it as the postgres user.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pytest_postgresql import factories
from sqlalchemy import URL, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, StaticPool

from models import Base

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

AS_POSTGRES = str(Path(__file__).with_name("pg_ctl_as_postgres")) if os.geteuid() == 0 else None


def load_schema(
    host: str, port: int, user: str, dbname: str, password: str | None, **_: object
) -> None:
    url = URL.create("postgresql+psycopg", user, password, host, int(port), dbname)
    engine = create_engine(url, poolclass=NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()


postgresql_proc = factories.postgresql_proc(executable=AS_POSTGRES, load=[load_schema])
postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def template_session(postgresql: psycopg.Connection[object]) -> Iterator[Session]:
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: postgresql, poolclass=StaticPool
    )
    with Session(engine) as session:
        yield session
    engine.dispose()
