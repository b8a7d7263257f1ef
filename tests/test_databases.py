"""Where tests run: a throwaway PostgreSQL by default, else test databases the plugin owns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

from helpers import COUNTING_TESTS, MODELS, Backend, Project


def leftovers(backend: Backend) -> set[str]:
    stem = make_url(backend.url).database
    assert stem
    stem = Path(stem).stem
    return {name for name in backend.server_databases() if name.startswith(f"{stem}_test")}


# A database per xdist worker, none left afterwards: in test_templates.py
# (test_two_xdist_workers_copy_one_template_into_a_database_each), on SQLite and PostgreSQL.


def test_the_urls_own_database_is_never_read_or_written(project: Project) -> None:
    with project.backend.existing_database() as url:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            connection.exec_driver_sql("INSERT INTO users VALUES (7, 'precious')")
        project.write_tests(COUNTING_TESTS)
        project.run().assert_outcomes(passed=5)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT id, name FROM users").all()
        engine.dispose()
    assert [tuple(row) for row in rows] == [(7, "precious")]
    assert leftovers(project.backend) == set()


def test_as_given_uses_the_database_exactly_and_creates_nothing(project: Project) -> None:
    project.write_ini(db_database="as_given")
    project.write_tests(COUNTING_TESTS)
    with project.backend.existing_database() as url:
        project.run().assert_outcomes(passed=5)
        # Other tests of this suite create databases on the same server concurrently, so only
        # this test's names are compared: the database given, and no derived one.
        name = Path(str(make_url(url).database)).name
        assert name in project.backend.server_databases()
        assert leftovers(project.backend) == set()


def test_a_foreign_database_with_the_test_name_is_left_alone(any_project: Project) -> None:
    backend = any_project.backend
    name = make_url(backend.url).database
    if backend.name == "sqlite":
        assert name
        foreign = Path(name).with_name(Path(name).stem + "_test.db")
        foreign.write_bytes(b"")
    else:
        backend.admin_execute(f"CREATE DATABASE {name}_test")
    try:
        any_project.write_tests(COUNTING_TESTS)
        result = any_project.run()
        result.assert_outcomes(passed=1, errors=4)
        result.stdout.fnmatch_lines(
            ["*already exists*not created by pytest-sessionmaker*db_database = as_given*"]
        )
        assert f"{Path(str(name)).stem}_test" in "".join(leftovers(backend))
    finally:
        if backend.name != "sqlite":
            backend.admin_execute(f"DROP DATABASE {name}_test")


def test_reuse_keeps_the_database_until_the_schema_changes(project: Project) -> None:
    project.write_tests(COUNTING_TESTS)
    project.run("--db-reuse").assert_outcomes(passed=5)
    assert len(leftovers(project.backend)) == 1
    project.run("--db-reuse").assert_outcomes(passed=5)
    project.pytester.makepyfile(
        models=MODELS.replace(
            "title: Mapped[str]",
            "body: Mapped[str] = mapped_column(default='')\n    title: Mapped[str]",
        )
    )
    project.write_tests(
        COUNTING_TESTS
        + """
def test_new_column(db_session):
    from models import Post, User
    user = User(name="x")
    db_session.add(user)
    db_session.flush()
    db_session.add(Post(user_id=user.id, title="t", body="b"))
    db_session.commit()
"""
    )
    # In this process too: pytester imports the changed models module anew for each run.
    project.run("--db-reuse").assert_outcomes(passed=6)
    project.run("--db-reuse", "--db-create").assert_outcomes(passed=6)
    project.run().assert_outcomes(passed=6)
    assert leftovers(project.backend) == set()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_without_the_right_to_create_databases_the_message_names_the_opt_out(
    project: Project,
) -> None:
    project.backend.admin_execute("DROP ROLE IF EXISTS sm_nocreate")
    project.backend.admin_execute("CREATE ROLE sm_nocreate LOGIN NOCREATEDB PASSWORD 'pw-secret'")
    try:
        url = make_url(project.backend.url).set(username="sm_nocreate", password="pw-secret")
        project.write_ini(db_url=url.render_as_string(hide_password=False))
        project.write_tests(COUNTING_TESTS)
        result = project.run()
        result.assert_outcomes(passed=1, errors=4)
        result.stdout.fnmatch_lines(["*Cannot create the test database*db_database = as_given*"])
        assert "pw-secret" not in result.stdout.str()
    finally:
        project.backend.admin_execute("DROP ROLE sm_nocreate")


def test_a_killed_run_does_not_break_the_next_and_concurrent_runs_do_not_meet(
    project: Project,
) -> None:
    # Two live runs meet at a file barrier: each writes its database's name and waits for the
    # other's, so both hold their databases at the same moment whatever the machine's speed.
    project.write_tests(
        """
        import os, pathlib, signal, time
        from models import User

        def test_slow(db_session, db_engine):
            db_session.add(User(name="x"))
            db_session.commit()
            if os.environ.get("KILL_ME"):
                os.kill(os.getpid(), signal.SIGKILL)
            barrier = pathlib.Path(os.environ["BARRIER"])
            (barrier / f"{os.getpid()}.ready").write_text(db_engine.url.database)
            give_up = time.monotonic() + 300  # a safety net against a hang, not a timing
            while len(list(barrier.glob("*.ready"))) < 2:
                assert time.monotonic() < give_up, "the other run never reached the barrier"
                time.sleep(0.05)
        """
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    folder = project.pytester.path
    barrier = project.pytester.mkdir("barrier")
    environment = {**os.environ, "BARRIER": str(barrier)}
    killed = subprocess.run(
        command, cwd=folder, env={**environment, "KILL_ME": "1"}, capture_output=True, check=False
    )
    assert killed.returncode == -9
    assert len(leftovers(project.backend)) == 1  # the dead run's database is still there
    project.backend.wait_until_unused()
    runs = [
        subprocess.Popen(
            command, cwd=folder, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [process.communicate()[0].decode() for process in runs]
    assert [process.returncode for process in runs] == [0, 0], outputs
    names = {path.read_text() for path in barrier.glob("*.ready")}
    assert len(names) == 2  # each live run had a database of its own
    assert leftovers(project.backend) == set()
