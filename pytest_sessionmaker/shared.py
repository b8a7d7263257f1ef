"""One transaction for the sync and async code of one test.

A test that asks for db_session (or db_sessionmaker, db_connection) and for an async fixture gets
sync sessions bound to the async connection's ``sync_connection``: one connection, one
transaction, so rows added through either side are seen by the other, and all of it is rolled
back. A sync call on that connection must run inside SQLAlchemy's greenlet (its async driver
awaits underneath), so:

- the test body (a coroutine) is driven step by step from inside ``greenlet_spawn``: each
  future it waits for is awaited through ``await_only`` by the greenlet's parent, in the test's
  task, and sync calls the body makes in between find the greenlet they need;
- the test's sync function-scoped fixtures that ask for db_session, db_sessionmaker or
  db_connection (or for such a fixture: seeding with db_session, factory_boy ...) run inside
  ``greenlet_spawn`` on the test's event loop, which is idle between fixtures. A fixture that
  reaches them only through ``request.getfixturevalue`` is not seen, and cannot use them.

asyncio only (the loop's futures are awaited as they are); not with anyio's trio backend.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

# Sync fixtures that join the async transaction instead of opening a connection of their own.
SHARED_SYNC_FIXTURES = frozenset({"db_session", "db_sessionmaker", "db_connection"})
_END = object()


def drive(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to its end from inside a greenlet of ``greenlet_spawn``."""
    from sqlalchemy.util import await_only

    error: BaseException | None = None
    while True:
        try:
            yielded = coroutine.send(None) if error is None else coroutine.throw(error)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            await_only(_until_done(yielded))
        except BaseException as exc:  # the test's task was cancelled, say: the body decides
            error = exc


async def _until_done(yielded: object) -> None:
    """What a coroutine yields to asyncio's Task: nothing (a bare yield) or a future."""
    if yielded is None:
        await asyncio.sleep(0)
    elif asyncio.isfuture(yielded):
        # The coroutine reads the outcome itself (future.result()) when it is resumed.
        await asyncio.wait({yielded})
    else:
        raise RuntimeError(
            f"pytest-sessionmaker cannot run this test's body in SQLAlchemy's greenlet: it "
            f"waited for {yielded!r}, which is not an asyncio future (only asyncio is supported "
            "when a test uses sync and async fixtures together)."
        )


def body_in_greenlet(function: Callable[..., Any]) -> Callable[..., Any]:
    """The async test function, run so that sync database calls in it work."""

    async def in_greenlet(*args: Any, **kwargs: Any) -> Any:
        from sqlalchemy.util import greenlet_spawn

        return await greenlet_spawn(drive, function(*args, **kwargs))

    return in_greenlet


def fixture_in_loop(
    function: Callable[..., Any], loop_of_test: Callable[[], asyncio.AbstractEventLoop]
) -> Any:
    """A sync fixture function whose set-up and teardown run in SQLAlchemy's greenlet, on the
    loop of the test's connection (idle between the test's fixtures).

    ``loop_of_test`` begins the test's transaction if need be: called when the fixture runs,
    as if the fixture asked for it itself.
    """
    from sqlalchemy.util import greenlet_spawn

    def in_loop(step: Callable[[], Any]) -> Any:
        loop = loop_of_test()
        if loop.is_running() or loop.is_closed():
            raise RuntimeError(
                "pytest-sessionmaker cannot run this fixture on the test's event loop, which "
                "is running or closed; a test sharing one transaction between sync and async "
                "fixtures needs its sync fixtures to be function-scoped and sync."
            )
        return loop.run_until_complete(greenlet_spawn(step))

    if inspect.isgeneratorfunction(function):

        def generator(*args: Any, **kwargs: Any) -> Any:
            steps = function(*args, **kwargs)
            value = in_loop(lambda: next(steps, _END))
            yield value
            in_loop(lambda: next(steps, _END))

        return generator

    def plain(*args: Any, **kwargs: Any) -> Any:
        return in_loop(lambda: function(*args, **kwargs))

    return plain
