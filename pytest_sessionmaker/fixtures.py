"""The public fixtures: thin wrappers handing the run's objects to tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.errors import SessionmakerError

if TYPE_CHECKING:
    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from pytest_sessionmaker.run import DatabaseRun


@pytest.fixture(scope="session")
def db_url(pytestconfig: pytest.Config) -> URL:
    """The database server URL (override this fixture to compute one, e.g. from a container)."""
    from pytest_sessionmaker.server import throwaway_postgresql_url

    url = pytestconfig.stash[SETTINGS_KEY].parsed_url()
    if url is not None:
        return url
    try:
        return throwaway_postgresql_url(pytestconfig)
    except SessionmakerError as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def db_engine_options() -> dict[str, Any]:
    """Keyword arguments for create_engine (override to set pool sizes, echo, ...)."""
    return {}


@pytest.fixture(scope="session")
def db_session_options() -> dict[str, Any]:
    """Keyword arguments for the sessionmaker (autoflush, expire_on_commit, class_, info, ...)."""
    return {}


@pytest.fixture(scope="session")
def db_setup(
    pytestconfig: pytest.Config,
    db_url: URL,
    db_engine_options: dict[str, Any],
    db_session_options: dict[str, Any],
) -> Iterator[DatabaseRun]:
    """Prepare the run's database once: test database, engine, tables, change log."""
    from pytest_sessionmaker.databases import open_run

    try:
        run = open_run(pytestconfig, db_url, db_engine_options, db_session_options)
    except (SessionmakerError, ValueError) as exc:
        message = str(exc)
    else:
        yield run
        run.close()
        return
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def db_engine(db_setup: DatabaseRun) -> Engine:
    """The run's engine, created once and disposed at the end."""
    return db_setup.engine


@pytest.fixture
def db_connection(request: pytest.FixtureRequest, db_setup: DatabaseRun) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back after the test.

    In a test marked ``db_commit`` it is a plain connection whose commits are real; the tables
    are restored afterwards.
    """
    from pytest_sessionmaker.markers import commit_marker_options

    options = commit_marker_options(request.node)
    if options is not None:
        connection = db_setup.begin_commit_test(options)
        yield connection
        problem = db_setup.end_commit_test(connection)
    else:
        connection = db_setup.begin_test()
        yield connection
        problem = db_setup.end_test(connection)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def db_sessionmaker(db_setup: DatabaseRun, db_connection: Connection) -> sessionmaker[Session]:
    """The configured sessionmaker, producing sessions bound to this test's connection."""
    db_setup.sessionmaker.configure(bind=db_connection)
    return db_setup.sessionmaker


@pytest.fixture
def db_session(db_sessionmaker: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose commits are savepoints of the test's transaction; closed afterwards."""
    with db_sessionmaker() as session:
        yield session
