"""The application's named session factories and engines, for the whole run.

Where the factories point, at every moment of the run:

- before db_setup (imports, fixtures that do not request it): blocked;
- between tests, once db_setup has run (session-scoped seeding, conftest fixtures): bound to the
  run's engine, so seed data written through the application lands in the test database;
- in a database test: bound to the test's connection (rebind.bound_to), commits becoming
  savepoints;
- in a test that uses no database fixture: blocked, as pytest-django blocks unmarked tests;
- after db_setup is torn down: blocked.

To make this hold whatever the application's session class does, each named ``sessionmaker``
gets, for the run, a class derived from its own (``sessionmaker.class_`` is the public attribute
it builds sessions from; the original is put back at the end). The derived class checks the
blocker before a session is made or used, returns the plugin's bind from ``get_bind()`` (so
classes that choose their engine themselves, such as Flask-SQLAlchemy's, follow the test too),
notes every session made during a test so that the end of the test closes it, in whatever thread
it lives, and notices when another thread (a test client's worker, a live server) uses the test's
connection. A session kept from an earlier test (in another thread's scoped_session, say) is
moved to the current bind the next time it is used.

The named engines (``db_engines``, ``db_application_engines``, Flask-SQLAlchemy's) are checked:
one that points at another database than the test database stops the run before anything is
written through it, and outside the allowed windows they refuse to connect.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, scoped_session

from pytest_sessionmaker.blocker import (
    AFTER_RUN,
    BEFORE_SETUP,
    IN_PLAIN_TEST,
    DatabaseBlocked,
    DatabaseBlocker,
)
from pytest_sessionmaker.errors import ConfigurationError, SessionmakerError, scrub
from pytest_sessionmaker.fixtures import APPLICATION_SESSIONS_KEY, BLOCKER_KEY

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import sessionmaker

    from pytest_sessionmaker.frameworks.flask_sqlalchemy import EngineWatch
    from pytest_sessionmaker.rebind import SessionFactory, bound_to
    from pytest_sessionmaker.run import DatabaseRun
    from pytest_sessionmaker.transaction import TestTransaction

# On a plain (non-database) test item: the blocker's unblock count when its window began.
PLAIN_WINDOW_KEY = pytest.StashKey[int]()


class ApplicationElsewhere(ConfigurationError):
    """An application engine points at another database than the test database."""


class Binding(NamedTuple):
    """What the application's sessions bind to now."""

    bind: Engine | Connection
    savepoints: bool


def maker_of(factory: SessionFactory) -> sessionmaker[Any]:
    return factory.session_factory if isinstance(factory, scoped_session) else factory


def guarded_class(base: type[Session], sessions: ApplicationSessions, label: str) -> type[Session]:
    """A class derived from the application's session class that follows the plugin."""

    class GuardedSession(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            __tracebackhide__ = True
            sessions.admit(label)
            super().__init__(*args, **kwargs)
            sessions.made(self)

        def get_bind(
            self, mapper: Any = None, clause: Any = None, bind: Any = None, **kwargs: Any
        ) -> Engine | Connection:
            __tracebackhide__ = True
            if bind is None:
                chosen = sessions.bind_for(self, label)
                if chosen is not None:
                    return chosen
            result: Engine | Connection = super().get_bind(
                mapper, clause=clause, bind=bind, **kwargs
            )
            return result

    GuardedSession.__name__ = base.__name__
    GuardedSession.__qualname__ = base.__qualname__
    GuardedSession.__module__ = base.__module__
    return GuardedSession


class TestBinding:
    """The application's factories bound to one test; ``leave`` ends it."""

    __test__ = False

    def __init__(
        self, sessions: ApplicationSessions, transaction: TestTransaction, bound: bound_to
    ) -> None:
        self.sessions = sessions
        self.transaction = transaction
        self.bound = bound
        self.thread = threading.get_ident()
        self.made: weakref.WeakSet[Session] = weakref.WeakSet()

    def note(self, session: Session) -> None:
        self.made.add(session)
        if threading.get_ident() != self.thread:
            self.transaction.share_with_threads()

    def leave(self) -> list[str]:
        """Close every session the factories made during the test, in any thread, and
        put the factories back as they were between tests."""
        try:
            for session in list(self.made):
                session.close()
        finally:
            self.bound.__exit__(None, None, None)
            self.sessions.test_ended(self)
        return self.bound.problems


class ApplicationSessions:
    """The application's named factories and engines, guarded for the whole run."""

    def __init__(self, blocker: DatabaseBlocker) -> None:
        self.blocker = blocker
        self.factories: list[SessionFactory] = []
        self._originals: list[tuple[sessionmaker[Any], type[Session]]] = []
        self.engines: list[tuple[str, Engine]] = []
        self._engine_listeners: list[tuple[Engine, str, Any]] = []
        self._elsewhere: dict[int, str] = {}
        self._watch: EngineWatch | None = None
        self.run: DatabaseRun | None = None
        # The pytest session, to stop it (set when the run starts).
        self.session: pytest.Session | None = None
        # Bindings to the run's engine: the ini's factories, then any named in code.
        self._run_bindings: list[bound_to] = []
        self._run_state = "before"
        self._in_plain_test = False
        self.current: Binding | None = None
        self.test: TestBinding | None = None
        self._refresh()

    # -- what is guarded --------------------------------------------------------------------

    def add_factories(self, factories: Iterable[tuple[str, SessionFactory]]) -> None:
        """Guard each factory's sessionmaker (once), and bind it if the run is on."""
        from pytest_sessionmaker.rebind import bound_to

        added: list[SessionFactory] = []
        for label, factory in factories:
            if any(factory is known for known in self.factories):
                continue
            self.factories.append(factory)
            added.append(factory)
            maker = maker_of(factory)
            if any(maker is known for known, _ in self._originals):
                continue
            self._originals.append((maker, maker.class_))
            maker.class_ = guarded_class(maker.class_, self, f"session factory {label}")
        if added and self.run is not None and self.test is None:
            # Factories named in code join the run's binding when db_setup hands them over.
            binding = bound_to(added, self.run.engine, savepoints=False, clear=False)
            self._run_bindings.append(binding.__enter__())

    def watch_flask_sqlalchemy(self, extensions: Sequence[object]) -> None:
        if extensions and self._watch is None:
            from pytest_sessionmaker.frameworks.flask_sqlalchemy import EngineWatch

            self._watch = EngineWatch(extensions, self.add_engine)

    def add_engine(self, label: str, engine: Engine) -> None:
        """Guard an application engine; stop the run if it points elsewhere."""
        if self.run is not None and engine is self.run.engine:
            return
        if any(engine is known for _, known in self.engines):
            return
        self.engines.append((label, engine))

        def refuse(*args: Any) -> None:
            __tracebackhide__ = True
            self.check_engine(label, engine)

        for name in ("do_connect", "checkout"):
            event.listen(engine, name, refuse)
            self._engine_listeners.append((engine, name, refuse))
        if self.run is not None:
            self._check_elsewhere([(label, engine)])

    def check_engine(self, label: str, engine: Engine) -> None:
        __tracebackhide__ = True
        elsewhere = self._elsewhere.get(id(engine))
        if elsewhere is not None:
            raise DatabaseBlocked(elsewhere)
        self.blocker.check(f"The application's {label}")

    def _check_elsewhere(self, engines: Iterable[tuple[str, Engine]]) -> None:
        """Stop the run, before anything is written, at an engine pointing elsewhere.

        The run stops through ``session.shouldstop`` (after the test that found it, which fails
        with the sentence) rather than ``pytest.exit``, which pytest-xdist's workers turn into an
        internal error that loses the sentence. The engine refuses to connect from then on.
        """
        from pytest_sessionmaker.rebind import refuse_engines_elsewhere

        assert self.run is not None
        engines = list(engines)
        try:
            refuse_engines_elsewhere(tuple(engines), self.run.engine.url)
        except SessionmakerError as exc:
            message = scrub(str(exc))
            for _, engine in engines:
                self._elsewhere[id(engine)] = message
            if self.session is not None:
                self.session.shouldstop = message
            raise ApplicationElsewhere(message) from None

    # -- the run's states -------------------------------------------------------------------

    def start_run(self, run: DatabaseRun, session: pytest.Session) -> None:
        """db_setup is ready: check the engines, then bind the factories to the test database."""
        from pytest_sessionmaker.rebind import bound_to

        self.run = run
        self.session = session
        try:
            self._check_elsewhere(self.engines)
        except ApplicationElsewhere:
            self.run = None
            raise
        binding = bound_to(self.factories, run.engine, savepoints=False, clear=False)
        self._run_bindings.append(binding.__enter__())
        self.current = Binding(run.engine, savepoints=False)
        self._run_state = "between"
        self._refresh()

    def end_run(self) -> None:
        self._run_state = "after"
        self._refresh()
        self.current = None
        bindings, self._run_bindings = self._run_bindings, []
        for binding in reversed(bindings):
            binding.__exit__(None, None, None)
        self.run = None

    def close(self) -> None:
        """At the end of pytest: put every class back and remove every listener."""
        if self._watch is not None:
            self._watch.close()
        for maker, original in self._originals:
            maker.class_ = original
        self._originals = []
        for engine, name, listener in self._engine_listeners:
            event.remove(engine, name, listener)
        self._engine_listeners = []

    def _refresh(self) -> None:
        if self._in_plain_test and self._run_state != "after":
            reason: str | None = IN_PLAIN_TEST
        else:
            reason = {"before": BEFORE_SETUP, "after": AFTER_RUN}.get(self._run_state)
        self.blocker.block_for(reason)

    # -- tests ------------------------------------------------------------------------------

    def join_test(self, transaction: TestTransaction) -> TestBinding:
        from pytest_sessionmaker.rebind import bound_to

        bound = bound_to(
            self.factories, transaction.bind, savepoints=not transaction.commit_mode
        ).__enter__()
        self.test = TestBinding(self, transaction, bound)
        self.current = Binding(transaction.bind, savepoints=not transaction.commit_mode)
        return self.test

    def test_ended(self, binding: TestBinding) -> None:
        if self.test is binding:
            self.test = None
            self.current = Binding(self.run.engine, False) if self.run is not None else None

    def enter_plain_test(self, item: pytest.Item) -> None:
        """A test that uses no database fixture begins its function-scoped part: block until
        its last function-scoped fixture is torn down (an item finalizer registered now runs
        after theirs, before wider-scoped fixtures are torn down)."""
        if PLAIN_WINDOW_KEY in item.stash:
            return
        item.stash[PLAIN_WINDOW_KEY] = self.blocker.unblock_count
        self._in_plain_test = True
        self._refresh()
        item.addfinalizer(lambda: self._leave_plain_test(item))

    def _leave_plain_test(self, item: pytest.Item) -> None:
        self._in_plain_test = False
        self._refresh()
        # What the test wrote under db_blocker.unblock() (or with blocking off) was committed
        # to the test database; it becomes the baseline rather than an escape blamed on the
        # next database test.
        unblocked = item.stash[PLAIN_WINDOW_KEY] != self.blocker.unblock_count
        if self.run is not None and (unblocked or not self.blocker.enabled):
            self.run.accept_baseline()

    def between_tests(self) -> _BetweenTests:
        """Wider-scoped fixtures set up during a plain test run as between tests."""
        return _BetweenTests(self)

    # -- called by the guarded session classes ---------------------------------------------------

    def admit(self, label: str) -> None:
        __tracebackhide__ = True
        self.blocker.check(f"The application's {label}")

    def made(self, session: Session) -> None:
        test = self.test
        if test is not None:
            test.note(session)

    def bind_for(self, session: Session, label: str) -> Engine | Connection | None:
        __tracebackhide__ = True
        self.blocker.check(f"The application's {label}")
        current = self.current
        if current is None:
            return None
        test = self.test
        if test is not None:
            test.note(session)
        if session.bind is not current.bind:
            # Made for an earlier test or between tests, and kept (another thread's scoped
            # session, a module global): it follows the current test from now on. The end of
            # each test closed the sessions made during it, so what such a session holds is
            # at most an autobegun transaction without a connection (add() autobegins); one
            # holding a connection of the run's engine makes SQLAlchemy refuse loudly ("already
            # has a Connection associated for the given Connection's Engine").
            session.bind = current.bind
            if current.savepoints:
                session.join_transaction_mode = "create_savepoint"
        return current.bind


class _BetweenTests:
    def __init__(self, sessions: ApplicationSessions) -> None:
        self.sessions = sessions
        self.was_plain = False

    def __enter__(self) -> None:
        self.was_plain = self.sessions._in_plain_test
        if self.was_plain:
            self.sessions._in_plain_test = False
            self.sessions._refresh()

    def __exit__(self, *exc: object) -> None:
        if self.was_plain:
            self.sessions._in_plain_test = True
            self.sessions._refresh()


def blocker_for(config: pytest.Config) -> DatabaseBlocker:
    """The run's one blocker (db_blocker), made on first use."""
    blocker = config.stash.get(BLOCKER_KEY, None)
    if blocker is None:
        from pytest_sessionmaker.config import SETTINGS_KEY

        blocker = DatabaseBlocker(enabled=config.stash[SETTINGS_KEY].blocking)
        config.stash[BLOCKER_KEY] = blocker
    return blocker


def sessions_for(config: pytest.Config) -> ApplicationSessions:
    sessions = config.stash.get(APPLICATION_SESSIONS_KEY, None)
    if sessions is None:
        sessions = ApplicationSessions(blocker_for(config))
        config.stash[APPLICATION_SESSIONS_KEY] = sessions
    return sessions


def guard_application(config: pytest.Config) -> None:
    """At start-up, once the ini's objects are imported: guard them for the whole run."""
    from pytest_sessionmaker.rebind import application, is_async_factory

    named = application(config)
    sessions = sessions_for(config)
    sessions.add_factories(
        (label, factory)
        for label, factory in zip(named.labels, named.sessionmakers, strict=True)
        # Async factories are bound per async test instead (async_rebind.py).
        if not is_async_factory(factory)
    )
    for label, engine in named.engines:
        sessions.add_engine(label, engine)
    sessions.watch_flask_sqlalchemy(named.extensions)


def split_extensions(objects: Iterable[object]) -> tuple[list[object], list[object]]:
    """Flask-SQLAlchemy extension objects become their ``db.session``; (factories, extensions)."""
    from pytest_sessionmaker.rebind import flask_sqlalchemy_session, is_flask_sqlalchemy

    factories: list[object] = []
    extensions: list[object] = []
    for obj in objects:
        if is_flask_sqlalchemy(obj):
            extensions.append(obj)
            obj = flask_sqlalchemy_session(obj)
        factories.append(obj)
    return factories, extensions


def start_application(
    request: pytest.FixtureRequest,
    run: DatabaseRun,
    factories: Sequence[SessionFactory],
    extensions: Sequence[object],
) -> ApplicationSessions | None:
    """db_setup: point the application's factories at the test database between tests.

    Raises ApplicationElsewhere (and stops the run) when an application engine points at
    another database.
    """
    config = request.config
    if config.stash.get(APPLICATION_SESSIONS_KEY, None) is None and not factories:
        return None
    sessions = sessions_for(config)
    sessions.add_factories(
        (f"{factory!r} (db_application_sessionmakers)", factory) for factory in factories
    )
    sessions.watch_flask_sqlalchemy(extensions)
    sessions.start_run(run, request.session)
    return sessions


def check_engines_in_code(
    request: pytest.FixtureRequest, run: DatabaseRun, engines: Iterable[object]
) -> None:
    """The engines db_application_engines returns: guarded, and checked like db_engines."""
    from pytest_sessionmaker.rebind import _as_engine

    engines = list(engines)
    if not engines:
        return
    sessions = sessions_for(request.config)
    if sessions.run is None:
        sessions.start_run(run, request.session)
        run.application = sessions
    for obj in engines:
        engine = _as_engine(obj)
        if engine is None:
            raise SessionmakerError(
                f"db_application_engines returned {obj!r}, which is not an Engine; return the "
                "application's Engine objects."
            )
        sessions.add_engine(f"engine {engine!r} (db_application_engines)", engine)
