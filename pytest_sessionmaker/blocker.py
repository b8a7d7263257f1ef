"""Blocking the application's database outside database tests, as pytest-django does.

A test that requests no database fixture gets no rolled-back transaction; if it called the
application's ``SessionLocal()`` anyway, the write would land wherever the factory points. So
while such a test runs (its function-scoped fixtures, its call and their teardown), and before
the test database is ready, the factories named in ``db_sessionmakers`` and the engines named in
``db_engines`` or found by the plugin raise :class:`DatabaseBlocked` instead of connecting. The
one documented exception is ``db_blocker.unblock()``; ``db_blocking = false`` turns it all off.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from pytest_sessionmaker.errors import SessionmakerError

if TYPE_CHECKING:
    from collections.abc import Iterator

BEFORE_SETUP = (
    "before the test database was ready (at import time, or in a fixture that does not "
    "request db_setup): request db_setup or db_engine from that fixture so that it runs "
    "against the test database"
)
IN_PLAIN_TEST = (
    "in a test that uses no database fixture: request db_session or db_rebind (for a client "
    "fixture, say), mark the test @pytest.mark.db_commit, or set db_rebind_autouse = true"
)
AFTER_RUN = "after the test database was closed: use it only while db_setup is set up"
UNBLOCK_HINT = (
    "; to reach it deliberately, wrap the call in `with db_blocker.unblock():`, or set "
    "db_blocking = false to turn blocking off."
)


class DatabaseBlocked(SessionmakerError):
    """The application's database was used where the plugin cannot isolate it."""


class DatabaseBlocker:
    """Whether the application's named factories and engines may be used now.

    The plugin moves it between states (``block_for``, ``allow``); ``unblock()`` and ``block()``
    are for users, as in pytest-django's ``django_db_blocker``. The state is read from any
    thread, and changed only by the thread running the tests.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._reason: str | None = BEFORE_SETUP
        self._unblocked = 0
        self._forced = 0
        # How many unblock() blocks were entered so far (see the plugin's use of it).
        self.unblock_count = 0

    @property
    def is_blocked(self) -> bool:
        if self._forced:
            return True
        return self.enabled and self._reason is not None and not self._unblocked

    def check(self, what: str) -> None:
        """Raise DatabaseBlocked naming ``what`` when the database is blocked now."""
        __tracebackhide__ = True
        if self.is_blocked:
            reason = self._reason or "inside db_blocker.block()"
            raise DatabaseBlocked(f"{what} was used {reason}{UNBLOCK_HINT}")

    # -- the plugin's side --------------------------------------------------------------------

    def block_for(self, reason: str | None) -> str | None:
        """Block for ``reason`` (None: allow); return the previous reason, to put back."""
        previous, self._reason = self._reason, reason
        return previous

    def allow(self, previous: str | None = None) -> None:
        self._reason = previous

    @contextlib.contextmanager
    def allowed(self) -> Iterator[None]:
        """Unblocked for the block (the plugin's own between-tests windows)."""
        previous = self.block_for(None)
        try:
            yield
        finally:
            self._reason = previous

    # -- the user's side ----------------------------------------------------------------------

    @contextlib.contextmanager
    def unblock(self) -> Iterator[None]:
        """Let the application's factories and engines be used inside the block, wherever
        they point at that moment (the test database once db_setup has run)."""
        self._unblocked += 1
        self.unblock_count += 1
        try:
            yield
        finally:
            self._unblocked -= 1

    @contextlib.contextmanager
    def block(self) -> Iterator[None]:
        """Block them inside the block, even in a database test."""
        self._forced += 1
        try:
            yield
        finally:
            self._forced -= 1
