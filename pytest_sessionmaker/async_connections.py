"""The connection kept between async tests of one event loop (asyncio_loops.py).

No SQLAlchemy import: pytest-asyncio's runs load this module whether or not a test uses the
database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


class AsyncConnectionKeeper:
    """The connection kept between async tests that share an event loop wider than one test
    (pytest-asyncio's class, module, package or session loop scope).

    A test whose ROLLBACK undid everything it did leaves a connection the next test of the same
    loop can take, as the sync side keeps one (run.py): no connect per test. It is closed in its
    own loop when the loop's scope ends (asyncio_loops.py), before the loop is.
    """

    def __init__(self) -> None:
        self._idle: AsyncConnection | None = None

    def take(self) -> AsyncConnection | None:
        connection, self._idle = self._idle, None
        if connection is None or connection.closed or connection.invalidated:
            return None
        return connection

    def keep(self, connection: AsyncConnection) -> None:
        self._idle = connection

    async def close(self) -> None:
        connection, self._idle = self._idle, None
        if connection is not None:
            await connection.close()
