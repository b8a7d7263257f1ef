"""The public fixtures: thin wrappers handing the run's and the test's objects to tests."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.errors import SessionmakerError, scrub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.orm import Session, sessionmaker

    from pytest_sessionmaker.application import ApplicationSessions  # noqa: F401  (StashKey)
    from pytest_sessionmaker.async_transaction import AsyncTestTransaction
    from pytest_sessionmaker.blocker import DatabaseBlocker
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
# The application's guarded factories and engines, and the blocker (application.py).
APPLICATION_SESSIONS_KEY = pytest.StashKey["ApplicationSessions"]()
BLOCKER_KEY = pytest.StashKey["DatabaseBlocker"]()
# The run whose db_application_engines were checked.
ENGINES_CHECKED_KEY = pytest.StashKey["DatabaseRun"]()
# The throwaway server's start as this process waited for it, and the run's one-time costs
# (shown with -v at the end of the run; xdist workers send theirs to the controller).
SERVER_START_KEY = pytest.StashKey[tuple[float, str]]()  # seconds, and where it runs
COSTS_KEY = pytest.StashKey[list[str]]()

TRANSACTION_FIXTURE = "_db_transaction"
# Function-scoped fixtures of the plugin (each begins the test's transaction if need be).
FUNCTION_FIXTURES = frozenset(
    {
        "db_session",
        "db_sessionmaker",
        "db_connection",
        "db_rebind",
        "db_session_dependency",
        "db_queries",
        "db_assert_num_queries",
        "db_assert_max_num_queries",
        "_db_transaction",
    }
)
# Fixtures whose use makes a test a database test: those, and the run-wide ones.
DATABASE_FIXTURES = FUNCTION_FIXTURES | {"db_engine", "db_setup"}
# On a test item: the test uses an async fixture of the plugin's (async_fixtures.py).
ASYNC_ITEM_KEY = pytest.StashKey[bool]()
# On a test item: its sync fixtures share the async fixtures' transaction (shared.py).
SHARED_ITEM_KEY = pytest.StashKey[bool]()
# The async fixtures; an async test's transaction begins in its own loop, not from the set-up
# hook, so these do not make a test a (sync) database test.
ASYNC_DATABASE_FIXTURES = frozenset(
    {"db_async_connection", "db_async_sessionmaker", "db_async_session"}
)
ASYNC_TRANSACTION_FIXTURE = "_db_async_transaction"
ASYNC_TRANSACTION_FIXTURES = frozenset(
    {
        ASYNC_TRANSACTION_FIXTURE,
        "_db_async_transaction_function",
        "_db_async_transaction_class",
        "_db_async_transaction_module",
        "_db_async_transaction_package",
        "_db_async_transaction_session",
        "_db_async_transaction_anyio",
        "_db_async_keeper_class",
        "_db_async_keeper_module",
        "_db_async_keeper_package",
        "_db_async_keeper_session",
    }
)
# The plugin's own fixtures: their set-up commits nothing a baseline should take in.
OWN_FIXTURES = (
    DATABASE_FIXTURES
    | ASYNC_DATABASE_FIXTURES
    | ASYNC_TRANSACTION_FIXTURES
    | {
        "db_async_engine",
        "db_async_session_options",
        "db_url",
        "db_engine_options",
        "db_session_options",
        "db_application_sessionmakers",
        "db_application_engines",
        "db_blocker",
    }
)


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
    # "from None": pytest would print the chained exceptions' messages, unscrubbed.
    raise pytest.fail.Exception(scrub(message), pytrace=False) from None


@pytest.fixture(scope="session")
def db_url(pytestconfig: pytest.Config) -> URL:
    """The database server URL (override this fixture to compute one, e.g. from a container)."""
    url = pytestconfig.stash[SETTINGS_KEY].parsed_url()
    if url is not None:
        return url
    import time

    from pytest_sessionmaker.server import throwaway_postgresql_url, throwaway_server_place

    try:
        started = time.perf_counter()
        url = throwaway_postgresql_url(pytestconfig)
        pytestconfig.stash[SERVER_START_KEY] = (
            time.perf_counter() - started,
            str(throwaway_server_place(pytestconfig)),
        )
        return url
    except SessionmakerError as exc:
        report_run_failure(pytestconfig)
        fail_plainly(exc, pytestconfig)


def report_run_failure(config: pytest.Config) -> None:
    """The run's database cannot be had: later database tests refer to this failure."""
    from pytest_sessionmaker.setup_failure import report_once

    report_once(config, DATABASE_ITEM_KEY)


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
    request: pytest.FixtureRequest,
    pytestconfig: pytest.Config,
    db_url: URL,
    db_engine_options: dict[str, Any],
    db_session_options: dict[str, Any],
    db_application_sessionmakers: Sequence[SessionFactory],
) -> Iterator[DatabaseRun]:
    """Prepare the run's database once: test database, engine, tables, change log."""
    from pytest_sessionmaker.errors import remember_secrets
    from pytest_sessionmaker.redaction import hide_secrets_in_reports

    remember_secrets(db_url)
    hide_secrets_in_reports(pytestconfig)
    try:
        run = open_database_run(
            request,
            db_url,
            db_engine_options,
            db_session_options,
            db_application_sessionmakers,
        )
    except (Exception, pytest.fail.Exception):
        report_run_failure(pytestconfig)
        raise
    pytestconfig.stash[RUN_KEY] = run
    server_start = pytestconfig.stash.get(SERVER_START_KEY, (None, None))
    run.costs.server, run.costs.server_place = server_start
    pytestconfig.stash.setdefault(COSTS_KEY, []).append(run.costs.line())
    try:
        yield run
    finally:
        del pytestconfig.stash[RUN_KEY]
        try:
            if run.application is not None:
                run.application.end_run()
        finally:
            run.close()


def open_database_run(
    request: pytest.FixtureRequest,
    url: URL,
    engine_options: dict[str, Any],
    session_options: dict[str, Any],
    application_sessionmakers: Sequence[SessionFactory],
) -> DatabaseRun:
    from pytest_sessionmaker.application import split_extensions, start_application
    from pytest_sessionmaker.async_engines import sync_url
    from pytest_sessionmaker.databases import open_run
    from pytest_sessionmaker.rebind import is_async_factory, session_factory_problem

    config = request.config
    factories, extensions = split_extensions(application_sessionmakers)
    for factory in factories:
        problem = session_factory_problem(factory)
        if problem is not None:
            pytest.fail(f"db_application_sessionmakers: {factory!r} {problem}.", pytrace=False)
    # Async factories join async tests (async_rebind.py), the rest every test.
    async_factories = [f for f in factories if is_async_factory(f)]
    factories = [f for f in factories if not is_async_factory(f)]
    try:
        # A URL naming an async driver: the sync side uses the backend's sync driver.
        run = open_run(config, sync_url(url), engine_options, session_options)
    except SessionmakerError as exc:
        fail_plainly(exc, config)
    run.given_url = url
    try:
        # Stops the run when an application engine points at another database.
        run.application = start_application(
            request,
            run,
            factories,  # type: ignore[arg-type]  # checked just above
            extensions,
        )
    except SessionmakerError as exc:
        run.close()
        fail_plainly(exc, config)
    except BaseException:
        run.close()
        raise
    run.application_factories = tuple(factories)  # type: ignore[arg-type]
    if async_factories:
        try:
            run.bind_async_factories(async_factories)
        except SessionmakerError as exc:
            run.close()
            fail_plainly(exc, config)
    return run


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
    """The test's TestTransaction, for one of the plugin's function-scoped fixtures.

    The first of those fixtures to be set up in a test schedules the rollback for its own
    teardown: after every fixture that depends on it (a fixture using db_session at teardown
    still finds its transaction), before the fixtures set up earlier (which then find no lock
    of the test's held, and whose commits the end of the test looks for).
    """
    item: pytest.Item = request.node
    transaction = item.stash.get(TRANSACTION_KEY, None)
    if transaction is None:
        failure = item.stash.get(BEGIN_FAILURE_KEY, None)
        if failure is not None:
            raise failure
        transaction = begin_test_transaction(request)
    if not transaction.rollback_scheduled:
        transaction.rollback_scheduled = True
        request.addfinalizer(functools.partial(roll_back, transaction))
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
    the item finalizer registered here runs after all of them are torn down: whatever a
    fixture of the test commits, in its set-up or its teardown, is the test's.
    """
    from pytest_sessionmaker.markers import commit_marker_options

    item = request.node
    run = current_run(request)
    if request.config.stash.get(ENGINES_CHECKED_KEY, None) is not run:
        check_application_engines(request, run)
    try:
        transaction = run.begin_test(commit_marker_options(item))
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)
    item.stash[TRANSACTION_KEY] = transaction
    item.addfinalizer(functools.partial(end_test_transaction, item))
    return transaction


def check_application_engines(request: pytest.FixtureRequest, run: DatabaseRun) -> None:
    """Once per run, before the first test's transaction: check the engines the
    db_application_engines fixture returns (an application created in a fixture makes them
    there, after db_setup; requesting them earlier would be a dependency cycle)."""
    from pytest_sessionmaker.application import check_engines_in_code

    request.config.stash[ENGINES_CHECKED_KEY] = run
    engines = request.getfixturevalue("db_application_engines")
    try:
        check_engines_in_code(request, run, engines)
    except SessionmakerError as exc:
        fail_plainly(exc, request.config)


def roll_back(transaction: TestTransaction) -> None:
    problem = transaction.end()
    if problem:
        pytest.fail(problem, pytrace=False)


def end_test_transaction(item: pytest.Item) -> None:
    """After the test's last fixture: end it if no fixture did, and look for commits made by
    fixtures torn down after the rollback."""
    transaction = item.stash[TRANSACTION_KEY]
    del item.stash[TRANSACTION_KEY]
    problems = [transaction.end(), transaction.after_fixtures()]
    message = " ".join(problem for problem in problems if problem)
    if message:
        pytest.fail(message, pytrace=False)


def watch_fixture(fixturedef: pytest.FixtureDef[object], transaction: TestTransaction) -> None:
    """Note a function-scoped fixture set up before the rollback was scheduled: it is torn
    down after the rollback, so its teardown's commits are looked for at the very end.

    Only fixtures with teardown code of their own count (generator fixtures), and neither the
    plugin's nor pytest's own: for the rest the extra look would be a round trip for nothing.
    A teardown registered with request.addfinalizer is not seen here; its commits are found
    at the end of the next database test (the README says so).
    """
    if transaction.rollback_scheduled or fixturedef.argname in OWN_FIXTURES:
        return
    function = getattr(fixturedef, "func", None)
    if function is None or getattr(function, "__module__", "").startswith("_pytest"):
        return
    import inspect

    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        transaction.look_after_fixtures = True


def shared_transaction(request: pytest.FixtureRequest) -> AsyncTestTransaction:
    """The async transaction a sync fixture of this test joins (shared.py)."""
    from pytest_sessionmaker.async_fixtures import async_transaction_of

    return async_transaction_of(request)


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
    if request.node.stash.get(SHARED_ITEM_KEY, False):
        return shared_transaction(request).connection.sync_connection  # type: ignore[return-value]
    return transaction_of(request).direct_connection()


@pytest.fixture
def db_sessionmaker(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """This test's sessionmaker, producing sessions bound to the test's connection."""
    if request.node.stash.get(SHARED_ITEM_KEY, False):
        return shared_transaction(request).sync_sessionmaker
    return transaction_of(request).sessionmaker


@pytest.fixture
def db_session(request: pytest.FixtureRequest) -> Session:
    """A session whose commits are savepoints of the test's transaction; closed afterwards."""
    if request.node.stash.get(SHARED_ITEM_KEY, False):
        return shared_transaction(request).sync_session()
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


@pytest.fixture(scope="session")
def db_application_engines() -> Sequence[Engine]:
    """The application's engines made in code (inside ``create_app()``, say), which the ini
    file cannot name: each must point at the test database, or the run stops; outside database
    tests they are blocked. Override it (it may request the application's fixtures); the
    engines named by db_engines and Flask-SQLAlchemy's are found without it."""
    return []


@pytest.fixture(scope="session")
def db_blocker(pytestconfig: pytest.Config) -> DatabaseBlocker:
    """The blocker of the application's database outside database tests:
    ``with db_blocker.unblock():`` lets the named factories and engines be used."""
    from pytest_sessionmaker.application import blocker_for

    return blocker_for(pytestconfig)


@pytest.fixture
def db_session_dependency(request: pytest.FixtureRequest) -> Callable[[], Iterator[Session]]:
    """A dependency yielding a session of the test's transaction per call, for FastAPI's
    ``app.dependency_overrides[get_db] = db_session_dependency``; safe from worker threads."""
    return transaction_of(request).session_dependency


def is_async_test(item: pytest.Item) -> bool:
    """Run by pytest-asyncio or anyio (whose tests ask for anyio_backend)."""
    names = getattr(item, "fixturenames", ())
    return item.get_closest_marker("asyncio") is not None or "anyio_backend" in names


def async_transaction_shared(
    item: pytest.Item, names: list[str], limits_queries: bool
) -> bool | None:
    """For an async test in a rolled-back run: whether its sync fixtures of the plugin's
    join its async transaction (shared.py): True with db_session, db_sessionmaker,
    db_connection or db_engine, False with none of them. None when it needs a sync transaction
    of its own: db_commit (both sides then commit for real), or other sync fixtures (db_rebind,
    db_queries ...), which the async fixtures then refuse in a sentence."""
    from pytest_sessionmaker.markers import COMMIT_MARKER
    from pytest_sessionmaker.shared import SHARED_SYNC_FIXTURES

    if limits_queries or item.get_closest_marker(COMMIT_MARKER) is not None:
        return None
    used = DATABASE_FIXTURES.intersection(names) - {"db_setup"}
    if not used <= SHARED_SYNC_FIXTURES | {"db_engine"}:
        return None
    return bool(used)


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
        if not ASYNC_DATABASE_FIXTURES.isdisjoint(names) or (
            "db_async_engine" in names and is_async_test(item)
        ):
            item.stash[ASYNC_ITEM_KEY] = True
            if ASYNC_DATABASE_FIXTURES.isdisjoint(names):
                # Its commits through db_async_engine are looked for like db_engine's.
                names = item.fixturenames = [*names, ASYNC_TRANSACTION_FIXTURE]  # type: ignore[attr-defined]
            shared = async_transaction_shared(item, names, limits_queries)
            if shared is not None:
                if shared:
                    item.stash[SHARED_ITEM_KEY] = True
                # The async transaction is the test's only one (db_rebind_autouse aside).
                continue
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
