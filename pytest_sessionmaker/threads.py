"""One test's connection shared with other threads, one statement at a time.

A FastAPI ``TestClient`` runs sync endpoints in worker threads, a Flask live server handles each
request in a thread of its own; in a rolled-back test all of them must work on the test's one
connection, which no DBAPI driver lets two threads use at once (PyMySQL interleaves its protocol,
psycopg and sqlite3 serialise only part of it). So when a thread other than the test's first
uses the connection through the plugin, statements on it are serialised: a lock is taken before
each cursor execution and given back after it (or when it fails), and the end of the test takes
it for its ROLLBACK. The lock is per statement, not per transaction: a test that holds a session
open while it waits for a request of its own (read, then call the client) must not deadlock.

The listeners go on the Connection itself (only this test's connection pays for them) and
``handle_error`` on the engine's dialect, once per engine and only once a test shares its
connection; the connection is handed back to the pool afterwards rather than kept, since a
Connection that ever had listeners dispatches events for good.

Limits, said in the README: the driver-level cursor work of one statement is serialised, not a
session's transaction, so two threads writing concurrently through savepoints of the same
connection may still end each other's savepoints; streamed results (``yield_per``, server-side
cursors) are read outside the lock.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import ExceptionContext

# The shared connections by id, for the engine-wide error listener.
_shared: dict[int, SharedConnection] = {}
_listening: weakref.WeakSet[Engine] = weakref.WeakSet()


def _on_error(context: ExceptionContext) -> None:
    connection = context.connection
    shared = _shared.get(id(connection)) if connection is not None else None
    if shared is not None and shared.connection is connection:
        shared.give_back()


class SharedConnection:
    """Serialises the statements of ``connection`` across threads until ``stop``."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.lock = threading.RLock()
        self._depth = threading.local()
        engine = connection.engine
        if engine not in _listening:
            event.listen(engine, "handle_error", _on_error)
            _listening.add(engine)
        _shared[id(connection)] = self
        event.listen(connection, "before_cursor_execute", self._before)
        event.listen(connection, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self.lock.acquire()
        self._depth.value = getattr(self._depth, "value", 0) + 1

    def _after(self, *args: Any) -> None:
        self.give_back()

    def give_back(self) -> None:
        depth = getattr(self._depth, "value", 0)
        if depth:
            self._depth.value = depth - 1
            self.lock.release()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No other thread runs a statement on the connection inside the block."""
        with self.lock:
            yield

    def stop(self) -> None:
        _shared.pop(id(self.connection), None)
        event.remove(self.connection, "before_cursor_execute", self._before)
        event.remove(self.connection, "after_cursor_execute", self._after)
