"""The public fixtures: thin wrappers handing the run's objects to tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.errors import SessionmakerError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from pytest_sessionmaker.rebind import SessionFactory
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
        from pytest_sessionmaker.rebind import APPLICATION_KEY, watch_application_engines

        watch_application_engines(run.guard, pytestconfig.stash[APPLICATION_KEY])
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
        try:
            connection = db_setup.begin_commit_test(options)
        except SessionmakerError as exc:
            pytest.fail(str(exc), pytrace=False)
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
    db_setup.sessionmaker.configure(bind=db_setup.session_bind or db_connection)
    return db_setup.sessionmaker


@pytest.fixture
def db_session(db_sessionmaker: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose commits are savepoints of the test's transaction; closed afterwards."""
    with db_sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
def db_application_sessionmakers(pytestconfig: pytest.Config) -> Sequence[SessionFactory]:
    """The application's sessionmaker / scoped_session objects that join each test.

    Default: those named by the db_sessionmakers ini key. Override it to name them in code.
    """
    from pytest_sessionmaker.rebind import APPLICATION_KEY

    return pytestconfig.stash[APPLICATION_KEY].sessionmakers


@pytest.fixture
def db_rebind(
    db_setup: DatabaseRun,
    db_connection: Connection,
    db_application_sessionmakers: Sequence[SessionFactory],
) -> Iterator[Sequence[SessionFactory]]:
    """The application's session factories, bound to this test's connection; restored after.

    In a test marked ``db_commit`` they are bound to the run's engine instead.
    """
    from pytest_sessionmaker.rebind import bound_to, session_factory_problem

    for factory in db_application_sessionmakers:
        problem = session_factory_problem(factory)
        if problem is not None:
            pytest.fail(f"db_application_sessionmakers: {factory!r} {problem}.", pytrace=False)
    committing = db_setup.session_bind is not None
    bind = db_setup.session_bind if db_setup.session_bind is not None else db_connection
    with bound_to(db_application_sessionmakers, bind, savepoints=not committing) as binding:
        yield db_application_sessionmakers
    if binding.problems:
        pytest.fail(" ".join(binding.problems), pytrace=False)


@pytest.fixture(autouse=True)
def _db_rebind_autouse(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> None:
    """Every test that uses the database gets db_rebind; with db_rebind_autouse, every test.

    A test uses the database when it requests a fixture built on db_setup (db_engine,
    db_connection, db_session, ...) or is marked db_commit; other tests pay for one membership
    test and a marker lookup.
    """
    from pytest_sessionmaker.markers import COMMIT_MARKER

    if (
        "db_setup" in request.fixturenames
        or pytestconfig.stash[SETTINGS_KEY].rebind_autouse
        or request.node.get_closest_marker(COMMIT_MARKER) is not None
    ):
        request.getfixturevalue("db_rebind")
