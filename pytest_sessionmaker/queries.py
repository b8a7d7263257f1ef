"""The SQL a test runs on its connection, recorded: ``db_queries`` and what it is made of.

A :class:`QueryRecorder` collects statements; the test's :class:`ConnectionRecording` feeds the
recorders active at the moment: ``db_queries`` for a whole test, and those of the assertions and
the ``db_max_queries`` marker (query_limits.py). It listens to the test's own connection (and,
in a ``db_commit`` test, to the engine its sessions use), and only while a recorder is active: a
Connection that has had a listener dispatches events around every later statement, so a
connection that was recorded is handed back to the pool at the end of its test instead of being
kept for the next one (see ``TestTransaction._hand_back``).

Nothing here imports SQLAlchemy at module level: the plugin imports this module at start-up.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, overload

import pytest

from pytest_sessionmaker.fixtures import transaction_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path
    from types import FrameType

    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext

    from pytest_sessionmaker.transaction import TestTransaction

    Ignore = Callable[["RecordedStatement"], bool] | None

# SAVEPOINT, RELEASE [SAVEPOINT], ROLLBACK [TO SAVEPOINT], COMMIT, BEGIN, START TRANSACTION, END:
# what sessions joined to the test's transaction send for their commits and rollbacks, and what
# SQLAlchemy sends as SQL where the driver does not (SQLite's BEGIN). Counting them would make a
# count depend on the backend and on whether the code commits, not on the queries it runs.
TRANSACTION_CONTROL = r"\s*(SAVEPOINT|RELEASE|ROLLBACK|COMMIT|BEGIN|START\s+TRANSACTION|END)\b"
# A failure message lists this many statements; db_queries and the recorder keep them all.
SHOWN_STATEMENTS = 50
SHOWN_PARAMETERS = 300


class RecordedStatement:
    """One statement sent on the test's connection.

    ``sql`` is the text the driver received (with the driver's placeholders), ``parameters`` what
    was sent with it (a list of them when ``executemany``), ``duration`` the seconds the driver
    took to execute it (None if it raised), ``filename`` and ``lineno`` the code that issued it:
    the innermost frame outside SQLAlchemy, the plugin, the standard library and installed
    packages (the test or the application), else the innermost installed package's.
    """

    __slots__ = ("_rootdir", "duration", "executemany", "filename", "lineno", "parameters", "sql")

    def __init__(
        self,
        sql: str,
        parameters: Any,
        executemany: bool,
        filename: str,
        lineno: int,
        rootdir: Path | None = None,
    ) -> None:
        self.sql = sql
        self.parameters = parameters
        self.executemany = executemany
        self.filename = filename
        self.lineno = lineno
        self.duration: float | None = None
        self._rootdir = rootdir

    @property
    def location(self) -> str:
        """``path:line`` of the code that issued it, the path relative to the rootdir."""
        return f"{shown_path(self.filename, self._rootdir)}:{self.lineno}"

    def __repr__(self) -> str:
        return f"<RecordedStatement {self.sql!r} at {self.location}>"


def is_transaction_control(statement: RecordedStatement) -> bool:
    """The default filter: True for savepoint and transaction-control statements."""
    return _transaction_control().match(statement.sql) is not None


@functools.cache
def _transaction_control() -> re.Pattern[str]:
    # Compiled on first use: every run imports this module, few record.
    return re.compile(TRANSACTION_CONTROL, re.IGNORECASE)


class QueryRecorder:
    """The statements run on the test's connection while this recorder was active.

    A sequence of :class:`RecordedStatement` (``len()``, iteration, indexing); ``clear()`` forgets
    them, ``str()`` lists them numbered. Savepoint and transaction-control statements
    (:func:`is_transaction_control`) are left out unless ``transaction_control`` is True, and so
    are those for which ``ignore`` returns True.
    """

    def __init__(self, ignore: Ignore = None, *, transaction_control: bool = False) -> None:
        self.ignore = ignore
        self.transaction_control = transaction_control
        self.statements: list[RecordedStatement] = []

    def __len__(self) -> int:
        return len(self.statements)

    def __iter__(self) -> Iterator[RecordedStatement]:
        return iter(self.statements)

    @overload
    def __getitem__(self, index: int) -> RecordedStatement: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordedStatement]: ...
    def __getitem__(self, index: int | slice) -> RecordedStatement | list[RecordedStatement]:
        return self.statements[index]

    def clear(self) -> None:
        self.statements.clear()

    def __str__(self) -> str:
        count = len(self.statements)
        if not count:
            return "No statements."
        return f"{count} {plural(count)}:\n" + list_statements(self.statements)

    def __repr__(self) -> str:
        return f"<QueryRecorder: {len(self.statements)} {plural(len(self.statements))}>"


class ConnectionRecording:
    """The listeners that feed one test's active recorders, on that test's connection.

    Listening starts when the first recorder starts and stops when the last one stops, so a test
    pays for the listener only while it records. ``targets`` are the test's connection and, in a
    db_commit test, the engine its sessions use (listeners there reach only that engine's
    connections). An async test records its AsyncConnection's ``sync_connection`` (and its
    AsyncEngine's ``sync_engine``) the same way.

    The plugin's own statements never reach a recorder: it sends them outside any recorder's
    window (the test's BEGIN and MySQL's change-log mark before the first fixture, the end-of-test
    ROLLBACK after the last), inside ``paused()`` (db_connection's SAVEPOINT), or with the
    ``OWN_STATEMENT`` execution option (SQLite's BEGIN).
    """

    def __init__(self, targets: Sequence[Connection | Engine], rootdir: Path | None) -> None:
        from pytest_sessionmaker.dialects.base import OWN_STATEMENT

        self.targets = tuple(targets)
        self.rootdir = rootdir
        # Whether a listener was ever added: such a connection keeps dispatching events.
        self.listened = False
        self._own = OWN_STATEMENT
        self._recorders: list[QueryRecorder] = []
        self._attached = False
        self._paused = 0
        self._current: RecordedStatement | None = None
        self._started = 0.0

    @contextlib.contextmanager
    def recording(self, recorder: QueryRecorder) -> Iterator[QueryRecorder]:
        self.start(recorder)
        try:
            yield recorder
        finally:
            self.stop(recorder)

    def start(self, recorder: QueryRecorder) -> None:
        self._recorders.append(recorder)
        if not self._attached:
            self._attach()

    def stop(self, recorder: QueryRecorder) -> None:
        self._recorders = [each for each in self._recorders if each is not recorder]
        if not self._recorders and self._attached:
            self._detach()

    def close(self) -> None:
        """Stop every recorder: the test is ending."""
        self._recorders = []
        if self._attached:
            self._detach()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Statements sent inside are the plugin's own: no recorder sees them."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def _attach(self) -> None:
        from sqlalchemy import event

        for target in self.targets:
            # retval: SQLAlchemy would otherwise wrap the listener in a function of its own.
            event.listen(target, "before_cursor_execute", self._before, retval=True)
            event.listen(target, "after_cursor_execute", self._after)
        self._attached = self.listened = True

    def _detach(self) -> None:
        from sqlalchemy import event

        self._attached = False
        self._current = None
        for target in self.targets:
            event.remove(target, "before_cursor_execute", self._before)
            event.remove(target, "after_cursor_execute", self._after)

    def _before(
        self,
        connection: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> tuple[str, Any]:
        if self._paused or (context is not None and context.execution_options.get(self._own)):
            self._current = None
            return statement, parameters
        filename, lineno = statement_origin(inspect.currentframe())
        record = RecordedStatement(
            statement, parameters, executemany, filename, lineno, self.rootdir
        )
        control: bool | None = None
        for recorder in self._recorders:
            if not recorder.transaction_control:
                if control is None:
                    control = is_transaction_control(record)
                if control:
                    continue
            if recorder.ignore is None or not recorder.ignore(record):
                recorder.statements.append(record)
        self._current = record
        # Last, so that the time is the driver's alone (statements on one connection do not
        # overlap: "after" belongs to this "before").
        self._started = time.perf_counter()
        return statement, parameters

    def _after(
        self,
        connection: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        finished = time.perf_counter()
        record, self._current = self._current, None
        if record is not None:
            record.duration = finished - self._started


def recording_of(transaction: TestTransaction, rootdir: Path | None) -> ConnectionRecording:
    """The test's recording (made on first use; it listens only while a recorder is active)."""
    if transaction.recording is None:
        targets: list[Connection | Engine] = [transaction.connection]
        if transaction.bind is not transaction.connection:
            targets.append(transaction.bind)
        transaction.recording = ConnectionRecording(targets, rootdir)
    return transaction.recording


# -- where a statement came from -------------------------------------------------------------

_USER, _INSTALLED, _SKIPPED = 0, 1, 2
_KIND_OF_FILE: dict[str, int] = {}


def statement_origin(frame: FrameType | None) -> tuple[str, int]:
    """The file and line that issued the statement being executed, walking out from ``frame``.

    The innermost frame of the user's code (not SQLAlchemy, the plugin, the standard library or
    an installed package) wins; failing that, the innermost installed package's (a library that
    ran the statement for the test). Under SQLAlchemy's asyncio extension the statement runs in
    a greenlet whose stack ends at its start; the walk continues in the greenlet that
    switched to it, where the awaiting coroutine is.
    """
    fallback: tuple[str, int] | None = None
    current_greenlet: Any = None
    while True:
        while frame is not None:
            filename = frame.f_code.co_filename
            kind = _KIND_OF_FILE.get(filename)
            if kind is None:
                kind = _KIND_OF_FILE[filename] = kind_of_file(filename)
            if kind == _USER:
                return filename, frame.f_lineno
            if kind == _INSTALLED and fallback is None:
                fallback = (filename, frame.f_lineno)
            frame = frame.f_back
        greenlet = sys.modules.get("greenlet")
        if greenlet is None:
            break
        current_greenlet = (current_greenlet or greenlet.getcurrent()).parent
        if current_greenlet is None:
            break
        frame = current_greenlet.gr_frame
    return fallback or ("<unknown>", 0)


def kind_of_file(filename: str) -> int:
    if filename.startswith("<"):  # <frozen ...>, <string>: the interpreter's or generated code
        return _SKIPPED
    path = os.path.abspath(filename)
    own, installed, standard = _library_folders()
    if path.startswith(own):
        return _SKIPPED
    if path.startswith(installed):
        return _INSTALLED
    if path.startswith(standard):
        return _SKIPPED
    return _USER


@functools.cache
def _library_folders() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(SQLAlchemy and the plugin, installed packages, the standard library), each folder
    ending in a separator. Installed packages are checked before the standard library, which
    holds site-packages on some installations."""
    import site
    import sysconfig

    import sqlalchemy

    import pytest_sessionmaker

    def folders(paths: Sequence[str | None]) -> tuple[str, ...]:
        return tuple({os.path.join(os.path.abspath(path), "") for path in paths if path})

    own = [os.path.dirname(sqlalchemy.__file__), os.path.dirname(pytest_sessionmaker.__file__)]
    scheme = sysconfig.get_paths()
    installed = [scheme.get("purelib"), scheme.get("platlib"), *site.getsitepackages()]
    if site.ENABLE_USER_SITE:
        installed.append(site.getusersitepackages())
    standard = [scheme.get("stdlib"), scheme.get("platstdlib")]
    return folders(own), folders(installed), folders(standard)


@functools.lru_cache(maxsize=256)
def shown_path(filename: str, rootdir: Path | None) -> str:
    if rootdir is not None:
        root = os.path.join(str(rootdir), "")
        if filename.startswith(root):
            return os.path.relpath(filename, root)
    return filename


# -- messages --------------------------------------------------------------------------------


def plural(count: int) -> str:
    return "statement" if count == 1 else "statements"


def list_statements(statements: Sequence[RecordedStatement]) -> str:
    """The statements numbered, each with its parameters, origin and duration.

    A statement whose SQL repeats an earlier one's says so instead of repeating it: a query run
    in a loop (the N+1 pattern) then reads as one SQL text and a column of parameters.
    """
    lines: list[str] = []
    first_with_sql: dict[str, int] = {}
    shown = statements[:SHOWN_STATEMENTS]
    width = len(str(len(shown)))
    indent = " " * (width + 2)
    for number, statement in enumerate(shown, start=1):
        seen = first_with_sql.setdefault(statement.sql, number)
        if seen == number:
            sql = f"\n{indent}".join(line.strip() for line in statement.sql.strip().splitlines())
        else:
            sql = f"(the SQL of statement {seen})"
        lines.append(f"{number:>{width}}. {sql}")
        if statement.parameters:
            lines.append(f"{indent}parameters: {shorten(repr(statement.parameters))}")
        lines.append(f"{indent}at {statement.location} ({shown_duration(statement.duration)})")
    hidden = len(statements) - len(shown)
    if hidden > 0:
        lines.append(f"... and {hidden} more {plural(hidden)}.")
    repeated = repetition(statements)
    if repeated:
        lines.append(repeated)
    return "\n".join(lines)


def repetition(statements: Sequence[RecordedStatement]) -> str | None:
    """A sentence about the SQL run most often, if any ran more than once."""
    counts: dict[str, int] = {}
    for statement in statements:
        counts[statement.sql] = counts.get(statement.sql, 0) + 1
    sql, most = max(counts.items(), key=lambda item: item[1], default=("", 0))
    if most < 2:
        return None
    first = next(statement for statement in statements if statement.sql == sql)
    sentence = f"The same SQL ran {most} times, first at {first.location}"
    if sql.lstrip()[:6].upper() == "SELECT":
        sentence += (
            ": a query in a loop? Load what the loop needs up front (selectinload(), "
            "joinedload(), or one query for all of it)"
        )
    return sentence + "."


def shorten(text: str) -> str:
    return text if len(text) <= SHOWN_PARAMETERS else text[: SHOWN_PARAMETERS - 3] + "..."


def shown_duration(seconds: float | None) -> str:
    return "raised an error" if seconds is None else f"{seconds * 1000:.2f} ms"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def db_queries(request: pytest.FixtureRequest) -> Iterator[QueryRecorder]:
    """The statements this test runs on its connection, from this fixture's set-up to its
    teardown (savepoints and transaction control left out)."""
    recording = recording_of(transaction_of(request), request.config.rootpath)
    with recording.recording(QueryRecorder()) as recorder:
        yield recorder
