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

# db_setup's value while it is set up (see current_run).
RUN_KEY = pytest.StashKey["DatabaseRun"]()


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
    db_application_sessionmakers: Sequence[SessionFactory],
) -> Iterator[DatabaseRun]:
    """Prepare the run's database once: test database, engine, tables, change log."""
    from pytest_sessionmaker.databases import open_run
    from pytest_sessionmaker.rebind import application, session_factory_problem

    for factory in db_application_sessionmakers:
        problem = session_factory_problem(factory)
        if problem is not None:
            pytest.fail(f"db_application_sessionmakers: {factory!r} {problem}.", pytrace=False)
    try:
        run = open_run(pytestconfig, db_url, db_engine_options, db_session_options)
    except (SessionmakerError, ValueError) as exc:
        message = str(exc)
    else:
        from pytest_sessionmaker.rebind import watch_application_engines

        run.application_factories = tuple(db_application_sessionmakers)
        watch_application_engines(run.guard, application(pytestconfig))
        pytestconfig.stash[RUN_KEY] = run
        yield run
        del pytestconfig.stash[RUN_KEY]
        run.close()
        return
    pytest.fail(message, pytrace=False)


def current_run(request: pytest.FixtureRequest) -> DatabaseRun:
    """db_setup's value, without depending on db_setup.

    pytest resolves a fixture's whole dependency tree again each time it is requested, cached
    or not, and makes a new ``request`` fixture definition on every path that reaches one:
    through db_setup (URL, options, the application's factories, pytestconfig) that cost every
    test more than everything else the plugin does. So the per-test fixtures ask for db_setup
    by name, once, and find it in the config's stash afterwards.
    """
    run = request.config.stash.get(RUN_KEY, None)
    if run is None:
        run = request.getfixturevalue("db_setup")
    return run


@pytest.fixture(scope="session")
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """The run's engine, created once and disposed at the end."""
    return current_run(request).engine


TRANSACTION_FIXTURE = "_db_transaction"


@pytest.fixture
def _db_transaction(request: pytest.FixtureRequest) -> Iterator[Connection]:
    """The test's connection, and the application's session factories bound to it.

    Rolled back after the test; in a test marked ``db_commit`` a plain connection whose commits
    are real, the tables restored afterwards. Every fixture built on it (db_connection,
    db_sessionmaker, db_rebind) shares it, and so does db_session when one of those is used too.
    The plugin adds it to tests that use the database otherwise (db_engine, the db_commit
    marker, db_rebind_autouse).
    """
    yield from transaction_for(request, current_run(request))


def transaction_for(request: pytest.FixtureRequest, run: DatabaseRun) -> Iterator[Connection]:
    """Begin the test's transaction (or plain connection), yield it once, then end it."""
    from pytest_sessionmaker.markers import commit_marker_options
    from pytest_sessionmaker.rebind import bound_to

    if run.test_connection is not None:
        # Begun by the other of db_session / _db_transaction, which ends it.
        yield run.test_connection
        return
    options = commit_marker_options(request.node)
    if options is not None:
        try:
            connection = run.begin_commit_test(options)
        except SessionmakerError as exc:
            pytest.fail(str(exc), pytrace=False)
    else:
        connection = run.begin_test(direct="db_connection" in request.fixturenames)
    factories = run.application_factories
    try:
        with bound_to(
            factories, run.session_bind or connection, savepoints=options is None
        ) as bound:
            yield connection
    finally:
        if options is not None:
            problem = run.end_commit_test(connection)
        else:
            problem = run.end_test(connection)
    problems = [*bound.problems, *([problem] if problem else [])]
    if problems:
        pytest.fail(" ".join(problems), pytrace=False)


@pytest.fixture
def db_connection(request: pytest.FixtureRequest, _db_transaction: Connection) -> Connection:
    """A connection in a transaction that is rolled back after the test.

    In a test marked ``db_commit`` it is a plain connection whose commits are real; the tables
    are restored afterwards.
    """
    if current_run(request).session_bind is None and not _db_transaction.in_nested_transaction():
        # Requested with request.getfixturevalue after the transaction began.
        _db_transaction.begin_nested()
    return _db_transaction


@pytest.fixture
def db_sessionmaker(
    request: pytest.FixtureRequest, _db_transaction: Connection
) -> sessionmaker[Session]:
    """The configured sessionmaker, producing sessions bound to this test's connection."""
    run = current_run(request)
    run.sessionmaker.configure(bind=run.session_bind or _db_transaction)
    return run.sessionmaker


@pytest.fixture
def db_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """A session whose commits are savepoints of the test's transaction; closed afterwards.

    It comes from the sessionmaker db_sessionmaker returns, bound the same way. It does not
    request _db_transaction (one fixture set-up per test instead of two): whichever of the two
    is set up first begins the test's transaction, and the other shares it.
    """
    run = current_run(request)
    for connection in transaction_for(request, run):
        yield run.test_session(connection)


@pytest.fixture(scope="session")
def db_application_sessionmakers(pytestconfig: pytest.Config) -> Sequence[SessionFactory]:
    """The application's sessionmaker / scoped_session objects that join each test.

    Default: those named by the db_sessionmakers ini key. Override it to name them in code.
    """
    from pytest_sessionmaker.rebind import application

    return application(pytestconfig).sessionmakers


@pytest.fixture
def db_rebind(
    request: pytest.FixtureRequest, _db_transaction: Connection
) -> Sequence[SessionFactory]:
    """The application's session factories, bound to this test's connection; restored after.

    In a test marked ``db_commit`` they are bound to the run's engine instead. Every test that
    uses the database gets this binding; request db_rebind from a fixture (an application's test
    client, say) that uses the database only through the application.
    """
    return current_run(request).application_factories


def add_transaction_fixture(items: list[pytest.Item], config: pytest.Config) -> None:
    """Give the test transaction to tests that use the database without a fixture built on it.

    Those are tests requesting db_engine (or db_setup) only, tests marked db_commit, and with
    db_rebind_autouse every test: they too get the breach check, the table restore and the
    application's session factories bound. Done once at collection rather than by an autouse
    fixture, which would cost every test of the suite, database or not, a fixture set-up.

    The fixture goes before the item's first function-scoped fixture, where pytest would have
    put an autouse one: after session fixtures (seed data commits before the test begins),
    before the test's own fixtures (an application client made by one already sees the binding).
    """
    from pytest_sessionmaker.markers import COMMIT_MARKER

    every_test = config.stash[SETTINGS_KEY].rebind_autouse
    for item in items:
        names: list[str] | None = getattr(item, "fixturenames", None)
        if names is None or TRANSACTION_FIXTURE in names or "db_session" in names:
            continue
        if (
            every_test
            or "db_engine" in names
            or "db_setup" in names
            # item.keywords holds marker names (and node names): a cheap filter first.
            or (COMMIT_MARKER in item.keywords and item.get_closest_marker(COMMIT_MARKER))
        ):
            names.insert(_first_function_scoped(item, names), TRANSACTION_FIXTURE)


def _first_function_scoped(item: pytest.Item, names: list[str]) -> int:
    """Where pytest's scope ordering of the item's fixtures reaches function scope.

    The scopes come from the item's fixture information, which pytest does not make public;
    without it the fixture goes last.
    """
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", None)
    if not isinstance(definitions, dict):
        return len(names)
    for index, name in enumerate(names):
        found = definitions.get(name)
        if not found or found[-1].scope == "function":
            return index
    return len(names)
