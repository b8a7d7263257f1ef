"""The application's own session factories join each test; its own engines are watched.

Applications rarely take a session as a parameter: they call a module-level
``SessionLocal = sessionmaker(engine)`` or a ``scoped_session``. SQLAlchemy's public
``sessionmaker.configure()`` exists to re-point such a factory, so for the length of a test each
named factory is configured to bind to the test's connection with
``join_transaction_mode="create_savepoint"`` (the application's commits then release savepoints of
the test's transaction), and afterwards its keywords are put back exactly as they were. Nothing is
mocked and no SQLAlchemy internals are patched.

SQLAlchemy is imported only when a key is set or a test uses the database, so a run that never
touches the database does not pay for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import pytest

from pytest_sessionmaker.config import SETTINGS_KEY
from pytest_sessionmaker.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import TracebackType
    from typing import TypeAlias

    from sqlalchemy import URL, Connection, Engine
    from sqlalchemy.orm import scoped_session, sessionmaker

    from pytest_sessionmaker.config import Settings

    SessionFactory: TypeAlias = "sessionmaker[Any] | scoped_session[Any]"

SESSIONMAKERS_KEY = "db_sessionmakers"
ENGINES_KEY = "db_engines"


class Application(NamedTuple):
    """The application's session factories and engines named in the ini file."""

    sessionmakers: tuple[SessionFactory, ...] = ()
    engines: tuple[tuple[str, Engine], ...] = ()
    # How messages name each of ``sessionmakers`` (the ini value).
    labels: tuple[str, ...] = ()
    # Flask-SQLAlchemy extension objects named (their engines are found per app).
    extensions: tuple[object, ...] = ()


APPLICATION_KEY = pytest.StashKey[Application]()


def _describe(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def session_factory_problem(obj: object) -> str | None:
    """Why ``obj`` cannot be rebound (a phrase starting with "is"), or None if it can."""
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, scoped_session, sessionmaker

    if isinstance(obj, sessionmaker):
        return None
    if isinstance(obj, scoped_session):
        if isinstance(obj.session_factory, sessionmaker):
            return None
        return (
            "is a scoped_session whose session_factory is not a sessionmaker, so it cannot be "
            "configured; build it as scoped_session(sessionmaker(...))"
        )
    if is_async_factory(obj):
        asyncio = sys.modules["sqlalchemy.ext.asyncio"]
        if isinstance(obj, asyncio.async_sessionmaker) or isinstance(
            obj.session_factory,  # type: ignore[attr-defined]
            asyncio.async_sessionmaker,
        ):
            return None
        return (
            "is an async_scoped_session whose session_factory is not an async_sessionmaker, "
            "so it cannot be configured; build it as async_scoped_session(async_sessionmaker("
            "...), scopefunc=...)"
        )
    if isinstance(obj, Engine):
        return (
            "is an Engine, not a sessionmaker or scoped_session; name the sessionmaker built on "
            "it here, and the engine itself in db_engines"
        )
    if isinstance(obj, type) and issubclass(obj, Session):
        return (
            f"is the class {obj.__name__}, not a sessionmaker or scoped_session; name the "
            "application's sessionmaker(...) object"
        )
    return f"is {_describe(obj)}, not a sessionmaker or scoped_session"


def is_async_factory(obj: object) -> bool:
    """An async_sessionmaker or async_scoped_session (rebound by async_rebind.py)."""
    # An application using async factories has imported the module itself; importing it here
    # would cost sync runs the asyncio extension (and fail without greenlet).
    asyncio = sys.modules.get("sqlalchemy.ext.asyncio")
    return asyncio is not None and isinstance(
        obj, (asyncio.async_sessionmaker, asyncio.async_scoped_session)
    )


def _import(path: str, key: str) -> object:
    from pytest_sessionmaker.schema import import_object

    try:
        return import_object(path, key)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"{key} = {path!r}: importing it raised {type(exc).__name__}: {exc}"
        ) from exc


def load_application(settings: Settings) -> Application:
    """Import the objects named by db_sessionmakers and db_engines; ConfigurationError naming
    the key."""
    factories: list[SessionFactory] = []
    labels: list[str] = []
    extensions: list[object] = []
    for path in settings.sessionmaker_paths:
        obj = _import(path, SESSIONMAKERS_KEY)
        if is_flask_sqlalchemy(obj):
            extensions.append(obj)
            obj = flask_sqlalchemy_session(obj)
        problem = session_factory_problem(obj)
        if problem is not None:
            raise ConfigurationError(f"{SESSIONMAKERS_KEY} = {path!r} {problem}.")
        if not any(obj is known for known in factories):
            factories.append(obj)  # type: ignore[arg-type]  # checked just above
            labels.append(f"{path} ({SESSIONMAKERS_KEY})")
    engines: list[tuple[str, Engine]] = []
    for path in settings.engine_paths:
        engine = _as_engine(_import(path, ENGINES_KEY))
        if engine is None:
            raise ConfigurationError(f"{ENGINES_KEY} = {path!r} is not an Engine.")
        if not any(engine is known for _, known in engines):
            engines.append((f"engine {path} ({ENGINES_KEY})", engine))
    return Application(tuple(factories), tuple(engines), tuple(labels), tuple(extensions))


def is_flask_sqlalchemy(obj: object) -> bool:
    from pytest_sessionmaker.frameworks.flask_sqlalchemy import is_extension

    return is_extension(obj)


def flask_sqlalchemy_session(obj: object) -> scoped_session[Any]:
    from pytest_sessionmaker.frameworks.flask_sqlalchemy import session_of

    return session_of(obj)


def _as_engine(obj: object) -> Engine | None:
    from sqlalchemy import Engine

    if isinstance(obj, Engine):
        return obj
    # An AsyncEngine's events fire on its synchronous engine.
    sync_engine = getattr(obj, "sync_engine", None)
    return sync_engine if isinstance(sync_engine, Engine) else None


def configure_application(config: pytest.Config) -> None:
    """At start-up, when a key names some: import the application's objects."""
    try:
        config.stash[APPLICATION_KEY] = load_application(config.stash[SETTINGS_KEY])
    except ConfigurationError as exc:
        raise pytest.UsageError(str(exc)) from exc


def application(config: pytest.Config) -> Application:
    """What configure_application loaded; nothing when no key named anything."""
    return config.stash.get(APPLICATION_KEY, Application())


def same_database(first: URL, second: URL) -> bool:
    """Whether two URLs reach the same database (drivers and passwords aside)."""
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        from pathlib import Path

        def where(url: URL) -> str:
            database = str(url.database or "")
            if "mode=memory" in database or database in ("", ":memory:"):
                return database
            return str(Path(database.removeprefix("file:").split("?")[0]).resolve())

        return where(first) == where(second)
    return (first.host, first.port, first.database) == (second.host, second.port, second.database)


def refuse_engines_elsewhere(engines: tuple[tuple[str, Engine], ...], test_url: URL) -> None:
    """Refuse an application engine that points at another database than the test database.

    A commit through such an engine lands in that database, where the plugin can neither see
    it nor undo it; the caller stops the run before anything is written.
    """
    from pytest_sessionmaker.errors import shown_url

    for name, engine in engines:
        if not same_database(engine.url, test_url):
            raise ConfigurationError(
                f"The application's {name} points at {shown_url(engine.url)}, not at the test "
                f"database {shown_url(test_url)}, so what the application commits through it "
                "would stay there: build the application's database URL from the db_engine "
                "fixture (db_engine.url) in a session-scoped fixture, or set the environment "
                "variable it reads its URL from, before the engine is created."
            )


class bound_to:
    """Bind ``factories`` to ``bind`` inside the block, then restore their keywords exactly.

    With ``savepoints`` (a rolled-back test) the factories also get
    ``join_transaction_mode="create_savepoint"``, so the application's ``commit()`` releases a
    savepoint of the test's transaction instead of committing it. ``binds`` is cleared for the
    block because a per-mapper bind would take precedence over ``bind``.

    With ``clear``, a scoped_session's registry is cleared on entry (a session made before the
    test is bound elsewhere) and on exit (its session holds the test's connection, which is
    about to be rolled back), for the current scope only and only where one exists: a
    thread-local registry always has one, Flask-SQLAlchemy's exists inside an application
    context only (its scope function raises RuntimeError outside one). Sessions of other
    threads and scopes are closed by the end of the test (application.TestBinding).

    A factory whose ``bind`` is no longer ``bind`` on exit was re-configured during the block;
    ``problems`` then describes it (its keywords are restored all the same).
    """

    def __init__(
        self,
        factories: Iterable[SessionFactory],
        bind: Engine | Connection,
        *,
        savepoints: bool = True,
        clear: bool = True,
    ) -> None:
        from sqlalchemy.orm import scoped_session

        factories = list(factories)
        self.bind = bind
        self.savepoints = savepoints
        self.registries = [f for f in factories if isinstance(f, scoped_session)] if clear else []
        self.makers: list[sessionmaker[Any]] = []
        for factory in factories:
            # scoped_session and async_scoped_session configure their session_factory.
            maker = cast("sessionmaker[Any]", getattr(factory, "session_factory", factory))
            if not any(maker is known for known in self.makers):
                self.makers.append(maker)
        self.saved: list[dict[str, Any]] = []
        self.problems: list[str] = []

    def __enter__(self) -> bound_to:
        for registry in self.registries:
            _remove_current(registry)
        self.saved = [dict(maker.kw) for maker in self.makers]
        options: dict[str, Any] = {"bind": self.bind, "binds": None}
        if self.savepoints:
            options["join_transaction_mode"] = "create_savepoint"
        for maker in self.makers:
            maker.configure(**options)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            for registry in self.registries:
                _remove_current(registry)
        finally:
            for maker, saved in zip(self.makers, self.saved, strict=True):
                if maker.kw.get("bind") is not self.bind:
                    self.problems.append(
                        f"{maker!r} was re-configured during the test, so the sessions it made "
                        "afterwards did not join the test's transaction. Configure the "
                        "application's session factories before the tests (at import or in a "
                        "session-scoped fixture), not inside a test."
                    )
                # configure() can only add keywords; restoring must also remove the ones the
                # application never set, so the dict is rewritten in place.
                maker.kw.clear()
                maker.kw.update(saved)


def _remove_current(registry: scoped_session[Any]) -> None:
    """Remove the current scope's session, if there is a scope and a session in it."""
    try:
        held = registry.registry.has()
    except RuntimeError:
        # Flask's "Working outside of application context": no scope, so no session in it.
        return
    if held:
        registry.remove()
