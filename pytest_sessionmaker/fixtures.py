"""The public fixtures: thin wrappers handing the run's and the test's objects to tests."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.errors import SessionmakerError, scrub

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from pytest_sessionmaker.rebind import SessionFactory
    from pytest_sessionmaker.run import DatabaseRun
    from pytest_sessionmaker.transaction import TestTransaction

# db_setup's value while it is set up (see current_run).
RUN_KEY = pytest.StashKey["DatabaseRun"]()
# On a test item: the test's TestTransaction, from its first database use to its end.
TRANSACTION_KEY = pytest.StashKey["TestTransaction"]()
# On a test item: the test uses the database (decided once, at collection).
DATABASE_ITEM_KEY = pytest.StashKey[bool]()
# On a test item: why its transaction could not begin (raised again by the plugin's fixtures).
BEGIN_FAILURE_KEY = pytest.StashKey[BaseException]()

TRANSACTION_FIXTURE = "_db_transaction"
# Function-scoped fixtures of the plugin (each begins the test's transaction if need be).
FUNCTION_FIXTURES = frozenset(
    {
        "db_session",
        "db_sessionmaker",
        "db_connection",
        "db_rebind",
        "db_queries",
        "db_assert_num_queries",
        "db_assert_max_num_queries",
        "_db_transaction",
    }
)
# Fixtures whose use makes a test a database test.
DATABASE_FIXTURES = frozenset(
    {
        "db_session",
        "db_sessionmaker",
        "db_connection",
        "db_rebind",
        "db_queries",
        "db_assert_num_queries",
        "db_assert_max_num_queries",
        "db_engine",
        "db_setup",
        TRANSACTION_FIXTURE,
    }
)
# The plugin's own fixtures: their set-up commits nothing a baseline should take in.
OWN_FIXTURES = DATABASE_FIXTURES | {
    "db_url",
    "db_engine_options",
    "db_session_options",
    "db_application_sessionmakers",
}


def fail_plainly(exc: SessionmakerError, config: pytest.Config) -> NoReturn:
    """Fail a set-up in one sentence, without a traceback through the plugin or a driver.

    pytest prints the arguments of every frame of a traceback (a driver's conninfo among
    them), so the plugin's errors reach the user as a plain message. With ``--tb=long`` the
    chain of causes follows it (their messages and source lines, never frame arguments),
    scrubbed of passwords.
    """
    message = str(exc)
    if config.getoption("tbstyle", "auto") == "long" and exc.__cause__ is not None:
        import traceback

        cause = "".join(traceback.format_exception(exc.__cause__))
        message += "\n\nCaused by:\n" + cause
    pytest.fail(scrub(message), pytrace=False)


@pytest.fixture(scope="session")
def db_url(pytestconfig: pytest.Config) -> URL:
    """The database server URL (override this fixture to compute one, e.g. from a container)."""
    url = pytestconfig.stash[SETTINGS_KEY].parsed_url()
    if url is not None:
        return url
    from pytest_sessionmaker.server import throwaway_postgresql_url

    try:
        return throwaway_postgresql_url(pytestconfig)
    except SessionmakerError as exc:
        fail_plainly(exc, pytestconfig)


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
    from pytest_sessionmaker.rebind import (
        application,
        refuse_engines_elsewhere,
        session_factory_problem,
    )

    for factory in db_application_sessionmakers:
        problem = session_factory_problem(factory)
        if problem is not None:
            pytest.fail(f"db_application_sessionmakers: {factory!r} {problem}.", pytrace=False)
    try:
        run = open_run(pytestconfig, db_url, db_engine_options, db_session_options)
    except SessionmakerError as exc:
        fail_plainly(exc, pytestconfig)
    try:
        refuse_engines_elsewhere(application(pytestconfig).engines, run.engine.url)
    except SessionmakerError as exc:
        run.close()
        fail_plainly(exc, pytestconfig)
    run.application_factories = tuple(db_application_sessionmakers)
    pytestconfig.stash[RUN_KEY] = run
    try:
        yield run
    finally:
        del pytestconfig.stash[RUN_KEY]
        run.close()


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


def transaction_of(request: pytest.FixtureRequest) -> TestTransaction:
    """The test's TestTransaction: begun by its first database use, ended after its last
    function-scoped fixture."""
    item: pytest.Item = request.node
    transaction = item.stash.get(TRANSACTION_KEY, None)
    if transaction is None:
        failure = item.stash.get(BEGIN_FAILURE_KEY, None)
        if failure is not None:
            raise failure
        transaction = begin_test_transaction(request)
    return transaction


def begin_before_fixtures(request: pytest.FixtureRequest) -> None:
    """From the fixture set-up hook: begin the test's transaction before its first
    function-scoped fixture.

    A failure is kept for the plugin's own fixtures to raise: raised here, in a hook wrapper
    around another fixture's set-up, it would leave that fixture half set up in pytest's
    bookkeeping.
    """
    item: pytest.Item = request.node
    try:
        begin_test_transaction(request)
    except (Exception, pytest.fail.Exception) as exc:
        item.stash[BEGIN_FAILURE_KEY] = exc


def begin_test_transaction(request: pytest.FixtureRequest) -> TestTransaction:
    """Begin the test's database work and schedule its end after every fixture of the test.

    Called before the test's first function-scoped fixture is set up (see plugin.py), so that
    the finalizer registered here runs after all of them are torn down: whatever a fixture of
    the test commits, in its set-up or its teardown, happens inside the test's watch.
    """
    from pytest_sessionmaker.markers import commit_marker_options

    item = request.node
    run = current_run(request)
    try:
        transaction = run.begin_test(commit_marker_options(item))
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)
    item.stash[TRANSACTION_KEY] = transaction
    item.addfinalizer(functools.partial(end_test_transaction, item))
    return transaction


def end_test_transaction(item: pytest.Item) -> None:
    transaction = item.stash[TRANSACTION_KEY]
    del item.stash[TRANSACTION_KEY]
    problem = transaction.end()
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """The run's engine: the one behind every test's connection. Disposed at the end."""
    return current_run(request).engine


@pytest.fixture
def _db_transaction(request: pytest.FixtureRequest) -> Connection:
    """The test's connection; the plugin adds it to tests that use the database without a
    function-scoped fixture of its own (db_engine only, the db_commit marker,
    db_rebind_autouse)."""
    return transaction_of(request).connection


@pytest.fixture
def db_connection(request: pytest.FixtureRequest) -> Connection:
    """A connection in a transaction that is rolled back after the test.

    In a test marked ``db_commit`` it is a plain connection whose commits are real; the tables
    are restored afterwards.
    """
    return transaction_of(request).direct_connection()


@pytest.fixture
def db_sessionmaker(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """This test's sessionmaker, producing sessions bound to the test's connection."""
    return transaction_of(request).sessionmaker


@pytest.fixture
def db_session(request: pytest.FixtureRequest) -> Session:
    """A session whose commits are savepoints of the test's transaction; closed afterwards."""
    return transaction_of(request).session()


@pytest.fixture(scope="session")
def db_application_sessionmakers(pytestconfig: pytest.Config) -> Sequence[SessionFactory]:
    """The application's sessionmaker / scoped_session objects that join each test.

    Default: those named by the db_sessionmakers ini key. Override it to name them in code.
    """
    from pytest_sessionmaker.rebind import application

    return application(pytestconfig).sessionmakers


@pytest.fixture
def db_rebind(request: pytest.FixtureRequest) -> Sequence[SessionFactory]:
    """The application's session factories, bound to this test's connection; restored after.

    In a test marked ``db_commit`` they are bound to the run's engine instead. Every test that
    uses the database gets this binding; request db_rebind from a fixture (an application's test
    client, say) that uses the database only through the application.
    """
    return transaction_of(request).run.application_factories


def mark_database_items(items: list[pytest.Item], config: pytest.Config) -> None:
    """Decide once, at collection, which tests use the database.

    Those are the tests requesting one of the plugin's database fixtures (directly or through
    other fixtures), the tests marked db_commit or db_max_queries, and with db_rebind_autouse
    every test. Done here
    rather than by an autouse fixture, which would cost every test of the suite a fixture set-up.
    A database test with no function-scoped fixture of the plugin gets ``_db_transaction``
    appended to a list of its own (parametrized siblings share pytest's list, so it is never
    changed in place): its transaction then begins and ends like any other. The transaction
    itself begins before the test's first function-scoped fixture, wherever that is in the
    list (plugin.pytest_fixture_setup).
    """
    from pytest_sessionmaker.markers import COMMIT_MARKER
    from pytest_sessionmaker.query_limits import note_query_limit

    every_test = config.stash[SETTINGS_KEY].rebind_autouse
    for item in items:
        names: list[str] | None = getattr(item, "fixturenames", None)
        if names is None:
            continue
        limits_queries = note_query_limit(item)
        uses_database = (
            every_test
            or limits_queries
            or not DATABASE_FIXTURES.isdisjoint(names)
            # item.keywords holds marker names (and node names): a cheap filter first.
            or (COMMIT_MARKER in item.keywords and item.get_closest_marker(COMMIT_MARKER))
        )
        if not uses_database:
            continue
        item.stash[DATABASE_ITEM_KEY] = True
        if FUNCTION_FIXTURES.isdisjoint(names):
            item.fixturenames = [*names, TRANSACTION_FIXTURE]  # type: ignore[attr-defined]
