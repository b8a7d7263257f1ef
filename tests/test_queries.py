"""Query assertions (issue 16): db_queries, db_assert_num_queries, db_assert_max_num_queries and
the db_max_queries marker, run as users run them on every backend.

The inner test modules live in tests/examples/queries/; their models (blog.py) give authors a
lazily loaded relationship to their posts, the shape of an N+1 query.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from pytest_sessionmaker.queries import ConnectionRecording, QueryRecorder, statement_origin

if TYPE_CHECKING:
    from helpers import Project

README = Path(__file__).resolve().parents[1] / "README.rst"
EXAMPLES = Path(__file__).resolve().parent / "examples" / "queries"


def blog_project(project: Project, *tests: str, **ini: str) -> None:
    project.pytester.copy_example("queries/blog.py")
    for name in tests:
        project.pytester.copy_example(f"queries/{name}")
    project.write_ini(db_metadata="blog:Base", **ini)


def line_of(example: str, text: str, below: int = 0) -> int:
    """The number of the line ``below`` lines under the first one holding ``text``."""
    lines = (EXAMPLES / example).read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line) + below


def test_what_each_recorder_sees(any_project: Project) -> None:
    any_project.pytester.copy_example("queries/blog_app.py")
    blog_project(any_project, "test_recorder.py", db_sessionmakers="blog_app:SessionLocal")
    any_project.run().assert_outcomes(passed=13)
    # Every statement went through the test's connection: the application's own engine
    # (a SQLite file beside it) was never opened.
    assert not (any_project.pytester.path / "app.db").exists()


def test_a_db_commit_test_s_sessions_are_recorded(any_project: Project) -> None:
    blog_project(any_project, "test_commit_mode.py")
    any_project.run().assert_outcomes(passed=2)


def test_a_failed_count_lists_the_statements(project: Project) -> None:
    blog_project(project, "test_failures.py")
    result = project.run()
    result.assert_outcomes(failed=4)
    param = "%(name_1)s" if project.backend.name == "postgresql" else "?"
    loop = line_of("test_failures.py", "db_session.execute(select(Author)")
    first = line_of("test_failures.py", 'text("SELECT 1")')
    result.stdout.fnmatch_lines(
        [
            "*def test_exact_count_differs*",
            ">*with db_assert_num_queries(1):",
            "E*Failed: Expected 1 statement, 2 ran (savepoints and transaction control not "
            "counted):",
            "E*1. SELECT authors.id, authors.name",
            "E*   FROM authors",
            f"E*   WHERE authors.name = {param}*",
            "E*   parameters: *'ann'*",
            f"E*   at test_failures.py:{loop} (* ms)",
            "E*2. (the SQL of statement 1)",
            "E*   parameters: *'bob'*",
            f"E*   at test_failures.py:{loop} (* ms)",
            f"E*The same SQL ran 2 times, first at test_failures.py:{loop}: a query in a loop? "
            "Load what the loop needs up front (selectinload(), joinedload(), or one query for all "
            "of it).",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*Failed: Expected at most 1 statement, 2 ran (*):",
            "E*1. SELECT 1",
            f"E*   at test_failures.py:{first} (* ms)",
            "E*2. SELECT 2",
            f"E*   at test_failures.py:{first + 1} (* ms)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E*Failed: Expected 1 statement, 0 ran (*). Only statements on the test's "
            "connection are counted: *",
            "E*TypeError: db_assert_num_queries takes a number of statements (an int >= 0), "
            "not '2'",
        ]
    )


def test_the_marker_limits_each_test_s_body(project: Project) -> None:
    blog_project(project, "test_marker.py")
    result = project.run()
    result.assert_outcomes(passed=4, failed=4)
    body = line_of("test_marker.py", "def test_a_second_query_fails_the_test", below=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_a_second_query_fails_the_test _*",
            "db_max_queries(1): the test's body may run at most 1 statement, 2 ran "
            "(savepoints and transaction control not counted):",
            "1. SELECT authors.id, authors.name",
            "   FROM authors",
            f"   at test_marker.py:{body} (* ms)",
            "2. SELECT posts.id, posts.author_id, posts.title",
            "   FROM posts",
            f"   at test_marker.py:{body + 1} (* ms)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ TestAClass.test_a_class_marker_applies_to_its_tests _*",
            "db_max_queries(0): the test's body may run at most 0 statements, 1 ran *",
            "*_ test_a_bad_limit _*",
            "Bad @pytest.mark.db_max_queries: db_max_queries takes a number of statements (an "
            "int >= 0), not '3'.",
            "*_ test_a_missing_limit _*",
            "Bad @pytest.mark.db_max_queries: db_max_queries() missing 1 required positional "
            "argument: 'limit'.",
        ]
    )


def test_an_async_connection_is_recorded_through_its_sync_connection(tmp_path: Path) -> None:
    """What the async fixtures do: record ``sync_connection``; the origin is the coroutine's
    line, found across the greenlet SQLAlchemy runs the statement in."""
    recorder = QueryRecorder()

    async def run() -> int:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
        try:
            async with engine.connect() as connection:
                assert connection.sync_connection is not None
                recording = ConnectionRecording([connection.sync_connection], tmp_path)
                with recording.recording(recorder):
                    line = sys._getframe().f_lineno + 1
                    await connection.execute(text("SELECT 1"))
                await connection.execute(text("SELECT 2"))
                return line
        finally:
            await engine.dispose()

    line = asyncio.run(run())
    assert [statement.sql for statement in recorder] == ["SELECT 1"]
    assert recorder[0].filename == __file__
    assert recorder[0].lineno == line


def test_the_origin_skips_sqlalchemy_and_the_standard_library(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, event

    engine = create_engine(f"sqlite:///{tmp_path / 'origin.db'}")
    origins: list[tuple[str, int]] = []

    def before(*args: object) -> None:
        origins.append(statement_origin(sys._getframe(1)))

    with engine.connect() as connection:
        event.listen(connection, "before_cursor_execute", before)
        line = sys._getframe().f_lineno + 1
        connection.execute(select(1))
    engine.dispose()
    assert origins == [(__file__, line)]
