"""Random sequences of what tests do, as hypothesis strategies and generated test modules.

A *program* is a list of generated tests. Each test opens sessions (db_session,
db_sessionmaker's, the application's rebound factory), adds, updates, deletes, flushes, commits,
rolls back, uses savepoints, provokes IntegrityErrors, writes through db_connection, leaves
session state behind, and may end with one of the ways a commit escapes the test's transaction.
``render`` turns a program into an inner test module in which every generated test is followed
by a db_commit test that compares the whole database (rows and counters) with the baseline and
looks for leftover session state. ``expected_errors`` says which generated tests the plugin
must report.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from hypothesis import strategies as st

SESSION_KINDS = ("db_session", "maker", "app")
ROW_ACTIONS = ("add", "add_post", "update_seed", "delete_posts")
SESSION_ACTIONS = (*ROW_ACTIONS, "flush", "commit", "rollback", "integrity_error", "savepoint")
STATE_KINDS = ("prepare", "advisory_lock", "variable", "sql_mode", "get_lock", "pragma")
ESCAPES = (
    "commit_statement_session",
    "commit_statement_connection",
    "dbapi_commit",
    "sqlalchemy_commit",
    "second_engine",
    "truncate",
    "ddl",
)
# Escapes that only MySQL/MariaDB commit (their DDL commits implicitly); elsewhere the
# statements are rolled back with the test and nothing is reported.
MYSQL_ONLY_ESCAPES = ("truncate", "ddl")


@dataclass(frozen=True)
class Block:
    """Actions on one session: db_session itself, or a session opened and closed for them."""

    session: str
    actions: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class GeneratedTest:
    blocks: tuple[Block, ...]
    connection_actions: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    escape: str | None = None


@dataclass
class Program:
    tests: list[GeneratedTest] = field(default_factory=list)


def _session_action() -> st.SearchStrategy[tuple[str, ...]]:
    return st.one_of(
        st.sampled_from([(name,) for name in SESSION_ACTIONS if name != "savepoint"]),
        st.tuples(
            st.just("savepoint"),
            st.sampled_from(["commit", "rollback"]),
            st.lists(st.sampled_from(ROW_ACTIONS), min_size=1, max_size=3).map(
                lambda names: ",".join(names)
            ),
        ),
    )


blocks = st.builds(
    Block,
    session=st.sampled_from(SESSION_KINDS),
    actions=st.lists(_session_action(), min_size=1, max_size=6).map(tuple),
)
generated_tests = st.builds(
    GeneratedTest,
    blocks=st.lists(blocks, max_size=3).map(tuple),
    connection_actions=st.lists(
        st.sampled_from(["raw_insert", "raw_savepoint_rollback"]), max_size=2
    ).map(tuple),
    state=st.lists(st.sampled_from(STATE_KINDS), max_size=2, unique=True).map(tuple),
    escape=st.one_of(st.none(), st.sampled_from(ESCAPES)),
)


def programs(min_tests: int, max_tests: int) -> st.SearchStrategy[Program]:
    return st.lists(generated_tests, min_size=min_tests, max_size=max_tests).map(
        lambda tests: Program(list(tests))
    )


def expected_errors(program: Program, backend: str) -> list[str]:
    """The generated tests the plugin must report as errors at teardown, in order."""
    return [
        f"test_generated_{index}"
        for index, test in enumerate(program.tests)
        if test.escape is not None
        and (test.escape not in MYSQL_ONLY_ESCAPES or backend == "mariadb")
    ]


class _Writer:
    def __init__(self, index: int) -> None:
        self.index = index
        self.lines: list[str] = []
        self.counter = 0

    def unique(self) -> str:
        self.counter += 1
        return f"t{self.index}_{self.counter}"

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    def row_action(self, name: str, session: str, indent: int) -> None:
        if name == "add":
            self.emit(f"{session}.add(User(name={self.unique()!r}))", indent)
        elif name == "add_post":
            self.emit(
                f"{session}.add(Post(user_id={session}.scalar(SEED_ID), title={self.unique()!r}))",
                indent,
            )
        elif name == "update_seed":
            self.emit(
                f"{session}.execute(update(User).where(User.id == SEED_ID.scalar_subquery())"
                f".values(name={self.unique()!r}))",
                indent,
            )
        elif name == "delete_posts":
            self.emit(f"{session}.execute(delete(Post))", indent)

    def session_action(self, action: tuple[str, ...], session: str, indent: int) -> None:
        name = action[0]
        if name in ROW_ACTIONS:
            self.row_action(name, session, indent)
        elif name in ("flush", "commit", "rollback"):
            self.emit(f"{session}.{name}()", indent)
        elif name == "integrity_error":
            duplicate = self.unique()
            self.emit(f"{session}.add(User(name={duplicate!r}))", indent)
            self.emit(f"{session}.flush()", indent)
            self.emit(f"{session}.add(User(name={duplicate!r}))", indent)
            self.emit("with pytest.raises(IntegrityError):", indent)
            self.emit(f"{session}.flush()", indent + 1)
            self.emit(f"{session}.rollback()", indent)
        elif name == "savepoint":
            _, ending, rows = action
            self.emit(f"nested = {session}.begin_nested()", indent)
            for row in rows.split(","):
                self.row_action(row, session, indent)
            self.emit(f"{session}.flush()", indent)
            self.emit(f"nested.{ending}()", indent)


def _render_test(index: int, test: GeneratedTest, backend: str) -> str:
    writer = _Writer(index)
    escape = test.escape
    blocks = test.blocks
    alone = escape == "second_engine" and backend in ("sqlite", "mariadb")
    if alone:
        # A second connection cannot write while the test's holds locks that cover the row:
        # SQLite lets one connection write at a time, and InnoDB's next-key locks (an UPDATE
        # scanning users) cover the gap an INSERT needs. That escape runs alone there.
        blocks = ()
    for block in blocks:
        if block.session == "db_session":
            for action in block.actions:
                writer.session_action(action, "db_session", 1)
            continue
        opener = "db_sessionmaker()" if block.session == "maker" else "app.SessionLocal()"
        writer.emit(f"with {opener} as session:")
        for action in block.actions:
            writer.session_action(action, "session", 2)
    if not alone:
        for name in test.connection_actions:
            if name == "raw_insert":
                writer.emit(f"db_connection.execute(insert(User).values(name={writer.unique()!r}))")
            else:
                writer.emit("savepoint = db_connection.begin_nested()")
                writer.emit(f"db_connection.execute(insert(User).values(name={writer.unique()!r}))")
                writer.emit("savepoint.rollback()")
        for kind in test.state:
            writer.emit(f"leave_state(db_connection, {kind!r})")
    if escape is not None:
        _render_escape(writer, escape)
    if not writer.lines:
        writer.emit("pass")
    body = "\n".join(writer.lines)
    return (
        f"def test_generated_{index}(db_session, db_sessionmaker, db_connection, db_engine):\n"
        f"{body}\n\n\n"
        f"@pytest.mark.db_commit\n"
        f"def test_verify_{index}(db_connection, baseline):\n"
        f"    assert leftover_state(db_connection) == []\n"
        f"    assert dump(db_connection) == baseline\n"
    )


def _render_escape(writer: _Writer, escape: str) -> None:
    row = writer.unique()
    if escape == "commit_statement_session":
        writer.emit(f"db_session.add(User(name={row!r}))")
        writer.emit("db_session.flush()")
        writer.emit('db_session.execute(text("COMMIT"))')
    elif escape == "commit_statement_connection":
        writer.emit(f"db_connection.execute(insert(User).values(name={row!r}))")
        writer.emit('db_connection.exec_driver_sql("COMMIT")')
    elif escape == "dbapi_commit":
        writer.emit(f"db_session.add(User(name={row!r}))")
        writer.emit("db_session.flush()")
        writer.emit("db_session.connection().connection.commit()")
    elif escape == "sqlalchemy_commit":
        writer.emit(f"db_session.add(User(name={row!r}))")
        writer.emit("db_session.flush()")
        writer.emit("db_session.connection().commit()")
    elif escape == "second_engine":
        writer.emit("engine = create_engine(db_engine.url)")
        writer.emit("with engine.begin() as other:")
        writer.emit(f"other.execute(insert(User).values(name={row!r}))", 2)
        writer.emit("engine.dispose()")
    elif escape == "truncate":
        writer.emit("truncate_posts(db_connection)")
    elif escape == "ddl":
        writer.emit(f"db_session.add(User(name={row!r}))")
        writer.emit("db_session.flush()")
        writer.emit(f'db_session.execute(text("CREATE TABLE fuzz_{row} (x INTEGER)"))')
        writer.emit(f'db_session.execute(text("DROP TABLE fuzz_{row}"))')


HEADER = '''\
"""Generated by tests/fuzzing.py."""

import pytest
from sqlalchemy import create_engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

import app
from fuzz_support import dump, leave_state, leftover_state, truncate_posts
from models import Post, User

SEED_ID = select(func.min(User.id))

'''


def render(program: Program, backend: str) -> str:
    tests = [_render_test(index, test, backend) for index, test in enumerate(program.tests)]
    return HEADER + "\n\n" + "\n\n".join(tests)


def describe(program: Program, backend: str) -> str:
    """The generated module, for a failure message."""
    return textwrap.indent(render(program, backend), "    ")
