"""Counting the statements of a block or a test: ``db_assert_num_queries``,
``db_assert_max_num_queries`` and the ``db_max_queries`` marker, and their failure messages.

Each counts with a :class:`~pytest_sessionmaker.queries.QueryRecorder` of its own, fed by the
test's recording (queries.py) for the length of the block or of the test's body.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from pytest_sessionmaker.errors import scrub
from pytest_sessionmaker.fixtures import TRANSACTION_KEY, transaction_of
from pytest_sessionmaker.queries import QueryRecorder, list_statements, plural, recording_of

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from pytest_sessionmaker.queries import ConnectionRecording, Ignore

MAX_QUERIES_MARKER = "db_max_queries"
MAX_QUERIES_MARKER_HELP = (
    f"{MAX_QUERIES_MARKER}(limit, *, ignore=None, transaction_control=False): fail the test "
    "when its body runs more than `limit` SQL statements on the test's connection. Savepoints "
    "and transaction control count only with transaction_control=True; `ignore` takes a "
    "statement and returns True to leave it out as well. On a test, a class or a module "
    "(pytestmark); the closest one applies."
)
# On a test item: it carries the db_max_queries marker (decided once, at collection).
QUERY_LIMIT_KEY = pytest.StashKey[bool]()


# -- failure messages ------------------------------------------------------------------------


def what_is_counted(recorder: QueryRecorder) -> str:
    left_out = [] if recorder.transaction_control else ["savepoints", "transaction control"]
    if recorder.ignore is not None:
        name = getattr(recorder.ignore, "__name__", "<lambda>")
        left_out.append(
            "what the ignore filter accepts" if name == "<lambda>" else f"what {name}() accepts"
        )
    if not left_out:
        return "every statement counted"
    if len(left_out) > 1:
        left_out[-2:] = [f"{left_out[-2]} and {left_out[-1]}"]
    return ", ".join(left_out) + " not counted"


def count_failure(expected: str, recorder: QueryRecorder) -> str:
    count = len(recorder)
    head = f"{expected}, {count} ran ({what_is_counted(recorder)})"
    if not count:
        return scrub(
            f"{head}. Only statements on the test's connection are counted: those of db_session, "
            "db_sessionmaker's sessions, db_connection, and the application's session "
            "factories rebound to the test."
        )
    return scrub(f"{head}:\n{list_statements(recorder.statements)}")


# -- counting a block: db_assert_num_queries / db_assert_max_num_queries ---------------------


def checked_limit(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{what} takes a number of statements (an int >= 0), not {value!r}")
    return value


class AssertNumQueries:
    """The value of ``db_assert_num_queries`` (``exact``) and ``db_assert_max_num_queries``.

    ``with db_assert_num_queries(2) as queries:`` fails the test when the block runs another
    number of statements on the test's connection, listing them; ``queries`` is the block's
    :class:`QueryRecorder`.
    """

    def __init__(self, recording: ConnectionRecording, *, exact: bool) -> None:
        self.recording = recording
        self.exact = exact

    def __call__(
        self, num: int, *, ignore: Ignore = None, transaction_control: bool = False
    ) -> QueryCountCheck:
        name = "db_assert_num_queries" if self.exact else "db_assert_max_num_queries"
        recorder = QueryRecorder(ignore, transaction_control=transaction_control)
        return QueryCountCheck(self.recording, checked_limit(num, name), recorder, exact=self.exact)


class QueryCountCheck:
    """One ``with`` block whose statements are counted."""

    def __init__(
        self, recording: ConnectionRecording, num: int, recorder: QueryRecorder, *, exact: bool
    ) -> None:
        self.recording = recording
        self.num = num
        self.recorder = recorder
        self.exact = exact

    def __enter__(self) -> QueryRecorder:
        self.recording.start(self.recorder)
        return self.recorder

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.recording.stop(self.recorder)
        if exc_type is not None:
            return
        count = len(self.recorder)
        if self.exact and count != self.num:
            pytest.fail(count_failure(f"Expected {self.num} {plural(self.num)}", self.recorder))
        if not self.exact and count > self.num:
            expected = f"Expected at most {self.num} {plural(self.num)}"
            pytest.fail(count_failure(expected, self.recorder))


# -- counting a test's body: the db_max_queries marker -----------------------------------------


class QueryLimit:
    """The db_max_queries marker's arguments."""

    __slots__ = ("ignore", "limit", "transaction_control")

    def __init__(self, limit: int, ignore: Ignore, transaction_control: bool) -> None:
        self.limit = limit
        self.ignore = ignore
        self.transaction_control = transaction_control


def db_max_queries(
    limit: int, /, *, ignore: Ignore = None, transaction_control: bool = False
) -> QueryLimit:
    return QueryLimit(checked_limit(limit, MAX_QUERIES_MARKER), ignore, transaction_control)


def note_query_limit(item: pytest.Item) -> bool:
    """At collection: whether the test, its class or its module carries db_max_queries (noted
    in the item's stash for the call hook)."""
    # item.keywords holds marker names (and node names): a cheap filter first.
    limited = MAX_QUERIES_MARKER in item.keywords and bool(
        item.get_closest_marker(MAX_QUERIES_MARKER)
    )
    if limited:
        item.stash[QUERY_LIMIT_KEY] = True
    return limited


@contextlib.contextmanager
def query_limit_of_body(item: pytest.Item) -> Iterator[None]:
    """Around a marked test's call: count what its body runs, fail it above the limit.

    Only the body: a fixture that inserts the rows a test reads is set-up, not the code whose
    queries the limit is about.
    """
    __tracebackhide__ = True
    marker = item.get_closest_marker(MAX_QUERIES_MARKER)
    transaction = item.stash.get(TRANSACTION_KEY, None)
    if marker is None or transaction is None:
        yield
        return
    options: QueryLimit | str
    try:
        options = db_max_queries(*marker.args, **marker.kwargs)
    except TypeError as exc:
        options = str(exc)  # failed outside the handler: no "during handling" chain shown
    if isinstance(options, str):
        pytest.fail(f"Bad @pytest.mark.{MAX_QUERIES_MARKER}: {options}.", pytrace=False)
    recorder = QueryRecorder(options.ignore, transaction_control=options.transaction_control)
    with recording_of(transaction, item.config.rootpath).recording(recorder):
        yield
    if len(recorder) > options.limit:
        expected = f"{MAX_QUERIES_MARKER}({options.limit}): the test's body may run at most "
        expected += f"{options.limit} {plural(options.limit)}"
        pytest.fail(count_failure(expected, recorder), pytrace=False)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def db_assert_num_queries(request: pytest.FixtureRequest) -> AssertNumQueries:
    """``with db_assert_num_queries(n): ...`` fails unless the block runs exactly n statements."""
    recording = recording_of(transaction_of(request), request.config.rootpath)
    return AssertNumQueries(recording, exact=True)


@pytest.fixture
def db_assert_max_num_queries(request: pytest.FixtureRequest) -> AssertNumQueries:
    """``with db_assert_max_num_queries(n): ...`` fails if the block runs more than n
    statements."""
    recording = recording_of(transaction_of(request), request.config.rootpath)
    return AssertNumQueries(recording, exact=False)
