"""What an active query recorder costs per statement, on PostgreSQL, measured directly.

The same statements run on one connection of the plugin's own engine (with its PostgreSQL
fixes) in three states: no recorder; a recorder listening (what ``db_queries`` and the
assertions do); and a connection that was listened to once and no longer is (SQLAlchemy leaves
such a Connection dispatching events, which is why the plugin hands a recorded connection back
to the pool instead of keeping it for the next test).

The recorder's cost is work in the test's process, so it is counted in instructions under
valgrind's callgrind, which a shared machine's load does not change: each state runs twice with
a different number of statements, and the difference divided by the difference in statements is
the cost of one statement, without the start-up. Milliseconds are estimated from the fastest
CPU time per statement of the plain state over several rounds. Without valgrind installed, only
the CPU times are shown (noisy on a busy machine).

    python benchmarks/query_recorder.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, String, event, literal, make_url, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pytest_sessionmaker.dialects import support_for_url
from pytest_sessionmaker.engines import create_test_engine
from pytest_sessionmaker.queries import ConnectionRecording, QueryRecorder

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection, Engine

STATES = ("plain", "recorded", "listened once")
WORKLOADS = ("core", "orm")


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "bench_query_authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Post(Base):
    __tablename__ = "bench_query_posts"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey(Author.id))
    title: Mapped[str] = mapped_column(String(100))


def prepared(connection: Connection, state: str, workload: str) -> Callable[[int], None]:
    """A function running n statements of ``workload`` on ``connection`` in ``state``."""
    connection.begin()
    if state == "recorded":
        recording = ConnectionRecording([connection], Path.cwd())
        recording.start(QueryRecorder())
    elif state == "listened once":

        def nothing(*args: object) -> None:
            pass

        event.listen(connection, "before_cursor_execute", nothing)
        event.remove(connection, "before_cursor_execute", nothing)
    if workload == "core":
        statement = select(literal(1))

        def run_core(count: int) -> None:
            for _ in range(count):
                connection.execute(statement)

        run_core(20)  # SQLAlchemy's compiled cache and psycopg's prepared statements, warm
        return run_core
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    session.add(Author(id=1, name="ann"))
    session.flush()
    query = select(Post).where(Post.author_id == 1)

    def run_orm(count: int) -> None:
        for _ in range(count):
            session.scalars(query).all()

    run_orm(20)
    return run_orm


def child(url: str, state: str, workload: str, count: int) -> None:
    engine = create_test_engine(make_url(url), {}, support_for_url(make_url(url)))
    try:
        with engine.connect() as connection:
            prepared(connection, state, workload)(count)
    finally:
        engine.dispose()


def instructions(url: str, state: str, workload: str, count: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    command += [__file__, "--url", url, "--child", state, workload, str(count)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    found = [line for line in result.stderr.splitlines() if "Collected :" in line]
    return int(found[-1].split(":")[-1])


def fastest_cpu_us(engine: Engine, workload: str, count: int, rounds: int) -> float:
    """The fastest CPU time per statement of the plain state over ``rounds`` rounds."""
    best = float("inf")
    # Closed afterwards: its transaction holds the row the instruction counts' runs insert.
    with engine.connect() as connection:
        run = prepared(connection, "plain", workload)
        for _ in range(rounds):
            started = time.process_time()
            run(count)
            best = min(best, (time.process_time() - started) / count)
    return best * 1e6


def hand_back_us(engine: Engine, rounds: int) -> float:
    """Wall time a test pays when its connection goes back to the pool (check-in with the
    plugin's reset, a check-out for the next test) instead of being kept: fastest of rounds."""

    def cycle(kept: Connection | None) -> float:
        started = time.perf_counter()
        for _ in range(20):
            connection = kept or engine.connect()
            connection.begin()
            connection.rollback()
            if kept is None:
                connection.close()
        return (time.perf_counter() - started) / 20

    with engine.connect() as kept:
        best_kept = min(cycle(kept) for _ in range(rounds))
    best_pool = min(cycle(None) for _ in range(rounds))
    return (best_pool - best_kept) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--statements", type=int, default=1000, help="the larger of the two runs")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of CPU time")
    parser.add_argument("--child", nargs=3, metavar=("STATE", "WORKLOAD", "COUNT"))
    args = parser.parse_args()
    if args.child:
        state, workload, count = args.child
        child(args.url, state, workload, int(count))
        return

    url = make_url(args.url)
    engine = create_test_engine(url, {}, support_for_url(url))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        report(args, engine)
    finally:
        Base.metadata.drop_all(engine)
        engine.dispose()


def report(args: argparse.Namespace, engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    handing_back = hand_back_us(engine, args.rounds)
    print(f"A connection handed back to the pool instead of kept: +{handing_back:.0f} us per test")
    small, large = args.statements // 5, args.statements
    for workload in WORKLOADS:
        cpu = fastest_cpu_us(engine, workload, large, args.rounds)
        label = "select(literal(1))" if workload == "core" else "an ORM select of posts"
        print(f"{label}: plain, fastest CPU time per statement {cpu:.1f} us")
        if shutil.which("valgrind") is None:
            print("  valgrind is not installed: no instruction counts")
            continue
        per_statement: dict[str, float] = {}
        for state in STATES:
            difference = instructions(url, state, workload, large) - instructions(
                url, state, workload, small
            )
            per_statement[state] = difference / (large - small)
        plain = per_statement["plain"]
        for state, count in per_statement.items():
            extra = count - plain
            shown = (
                "" if state == "plain" else f"  +{extra:,.0f} (about +{extra / plain * cpu:.1f} us)"
            )
            print(f"  {state:14s} {count:9,.0f} instructions per statement{shown}")


if __name__ == "__main__":
    main()
