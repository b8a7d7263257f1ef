"""The application's async session factories (async_sessionmaker, async_scoped_session) join
each async test, as rebind.py makes the sync ones join each test.

Between tests they are bound to db_async_engine (so async seed fixtures write to the test
database); in an async test, to the test's AsyncConnection with
``join_transaction_mode="create_savepoint"``, through the public ``configure()``; afterwards
their keywords are put back exactly (rebind.bound_to). An async_scoped_session's session of the
current scope is removed (awaited) when the test begins and when it ends.

Unlike the sync factories they are not blocked outside database tests, and a sync test leaves
them bound to db_async_engine, whose commits are real (the README says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from pytest_sessionmaker.rebind import bound_to


class AsyncTestBinding:
    """The application's async factories bound to one async test."""

    __test__ = False

    def __init__(self, factories: Sequence[Any], bind: AsyncConnection | AsyncEngine) -> None:
        from sqlalchemy.ext.asyncio import async_scoped_session

        self.factories = factories
        self.bind = bind
        self.registries = [f for f in factories if isinstance(f, async_scoped_session)]
        self._bound: bound_to | None = None

    async def enter(self, *, savepoints: bool) -> None:
        from pytest_sessionmaker.rebind import bound_to

        await self._remove_current()
        self._bound = bound_to(
            self.factories,
            self.bind,  # type: ignore[arg-type]  # the async factories configure alike
            savepoints=savepoints,
            clear=False,
        ).__enter__()

    async def leave(self) -> list[str]:
        """Close the current scope's sessions and restore the factories; what went wrong."""
        try:
            await self._remove_current()
        finally:
            bound, self._bound = self._bound, None
            if bound is not None:
                bound.__exit__(None, None, None)
        return bound.problems if bound is not None else []

    async def _remove_current(self) -> None:
        for registry in self.registries:
            if registry.registry.has():
                await registry.remove()
