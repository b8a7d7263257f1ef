"""A test database's life: its lock holds while its run lives, its creation and mark cannot be
split by a kill, a killed run's leftovers never block the next, and the end never hangs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from pytest_sessionmaker.databases import ServerTestDatabase, lock_key
from pytest_sessionmaker.dialects.base import OWNER_MARK
from pytest_sessionmaker.dialects.mysql import MySQLSupport
from pytest_sessionmaker.dialects.postgresql import (
    PostgreSQLSupport,
    creating_name,
    has_drop_force,
    refuse_unsupported_version,
)
from pytest_sessionmaker.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy import URL, Connection

    from helpers import Backend, Project

LIFECYCLE = "lifecycle/lock_tools.py"


def inner_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]


def server_connection(backend: Backend) -> Connection:
    url = make_url(backend.url)
    url = url.set(database="postgres" if backend.name == "postgresql" else "mysql")
    return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT").connect()


def drop_database(backend: Backend, name: str) -> None:
    if backend.name == "sqlite":
        Path(str(make_url(backend.url).database)).with_name(f"{name}.db").unlink(missing_ok=True)
        return
    quoted = f'"{name}"' if backend.name == "postgresql" else f"`{name}`"
    suffix = " WITH (FORCE)" if backend.name == "postgresql" else ""
    backend.admin_execute(f"DROP DATABASE IF EXISTS {quoted}{suffix}")


def derived_name(backend: Backend) -> str:
    """The test database the plugin derives from the backend's URL (without xdist)."""
    return f"{Path(str(make_url(backend.url).database)).stem}_test"


# -- the lock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_lock_is_taken_in_the_postgres_database_whatever_the_url_names(
    backend: Backend,
) -> None:
    """Advisory locks belong to a database: two runs must take theirs in the same one."""
    with backend.existing_database() as url:
        first = ServerTestDatabase(make_url(url), None)
        first.claim(reuse=False)
        try:
            with server_connection(backend) as connection:
                lock_database = connection.execute(
                    text(
                        "SELECT d.datname FROM pg_locks l JOIN pg_database d "
                        "ON d.oid = l.database WHERE l.locktype = 'advisory' "
                        "AND l.objid = (hashtext(:k)::bigint & 4294967295)"
                    ),
                    {"k": lock_key(first.name)},
                ).scalar()
            assert lock_database == "postgres"
            second = ServerTestDatabase(make_url(url), None)
            second.claim(reuse=False)
            assert (first.name, second.name) == (f"{first.base}_test", f"{first.base}_test_2")
            second.release(drop=True)
        finally:
            first.release(drop=True)
    assert backend.test_databases() == set()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_lock_connection_is_immune_to_the_users_idle_session_timeout(
    backend: Backend,
) -> None:
    url = make_url(backend.url).update_query_dict({"options": "-c idle_session_timeout=1000"})
    database = ServerTestDatabase(url, None)
    database.claim(reuse=False)
    try:
        lock = database._lock
        assert lock is not None
        assert lock.exec_driver_sql("SHOW idle_session_timeout").scalar() == "0"
        assert lock.exec_driver_sql("SHOW application_name").scalar() == (
            "pytest-sessionmaker lock"
        )
    finally:
        database.release(drop=True)


@pytest.mark.parametrize(
    ("scenario", "warning", "left"),
    [
        ("alone", None, False),
        ("held", "*ended during the run*another run holds its name now*left to it*", True),
        ("taken over", "*was taken over by another run*does not drop it*", True),
    ],
)
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_lost_lock_is_taken_again_before_the_database_is_dropped(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    warning: str | None,
    left: bool,
) -> None:
    project.copy_tests(LIFECYCLE, "lifecycle/test_lock_lost.py")
    monkeypatch.setenv("SCENARIO", scenario)
    result = project.run_subprocess()
    result.assert_outcomes(passed=2)
    if warning is None:
        assert "SessionmakerWarning" not in result.stdout.str()
    else:
        result.stdout.fnmatch_lines([warning])
    name = derived_name(project.backend)
    assert (name in project.backend.test_databases()) is left
    drop_database(project.backend, name)


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_a_run_that_lost_its_lock_keeps_its_database_from_a_run_starting_meanwhile(
    project: Project,
) -> None:
    project.copy_tests(
        LIFECYCLE,
        "lifecycle/test_lock_lost_while_another_run_starts.py",
        "lifecycle/test_other_run.py",
    )
    barrier = project.pytester.mkdir("barrier")
    environment = {**os.environ, "BARRIER": str(barrier)}
    first = subprocess.Popen(
        inner_command("test_lock_lost_while_another_run_starts.py"),
        cwd=project.pytester.path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        give_up = time.monotonic() + 300  # a safety net against a hang, not a timing
        while not (barrier / "lock-lost").exists() and first.poll() is None:
            assert time.monotonic() < give_up
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[0].decode()
        other = subprocess.run(
            inner_command("test_other_run.py"),
            cwd=project.pytester.path,
            env=environment,
            capture_output=True,
            check=False,
        )
        assert other.returncode == 0, other.stdout.decode()
    finally:
        (barrier / "other-run-done").write_text("")
        output = first.communicate(timeout=300)[0].decode()
    assert first.returncode == 0, output
    ours = (barrier / "lock-lost").read_text()
    assert (barrier / "other-run-database").read_text() == f"{ours}_2"
    assert project.backend.test_databases() == set()


# -- creation and the mark ------------------------------------------------------------------


def create_and_read_mark(support: PostgreSQLSupport | MySQLSupport, backend: Backend) -> None:
    name = derived_name(backend)
    mark = f"{OWNER_MARK}, claimed by run test"
    with server_connection(backend) as connection:
        assert support.database_mark(connection, name) is None
        support.create_marked_database(connection, name, mark)
        try:
            assert support.database_mark(connection, name) == mark
        finally:
            support.drop_database(connection, name)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_postgresql_creates_aside_and_replaces_an_interrupted_creation(backend: Backend) -> None:
    """A kill between CREATE DATABASE and COMMENT leaves the temporary name, never the real
    one; the next creation of that name drops it."""
    name = derived_name(backend)
    backend.admin_execute(f'CREATE DATABASE "{creating_name(name)}"')
    create_and_read_mark(PostgreSQLSupport("psycopg"), backend)
    assert creating_name(name) not in backend.server_databases()


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_marks_in_the_create_statement(backend: Backend) -> None:
    create_and_read_mark(MySQLSupport("pymysql"), backend)


class MySQLWithoutDatabaseComments(MySQLSupport):
    """MySQL proper (no CREATE DATABASE ... COMMENT), played by MariaDB."""

    @staticmethod
    def has_database_comments(admin: Connection) -> bool:
        return False


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mysql_marks_with_a_table_and_knows_an_empty_database_as_an_interrupted_creation(
    backend: Backend,
) -> None:
    support = MySQLWithoutDatabaseComments("pymysql")
    create_and_read_mark(support, backend)
    name = derived_name(backend)
    backend.admin_execute(f"CREATE DATABASE {name}")
    try:
        with server_connection(backend) as connection:
            mark = support.database_mark(connection, name)
            assert mark is not None
            assert mark.startswith(OWNER_MARK)
            connection.exec_driver_sql(f"CREATE TABLE {name}.precious (id INTEGER)")
            assert support.database_mark(connection, name) == ""
    finally:
        drop_database(backend, name)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_replaces_a_file_left_by_an_interrupted_creation(project: Project) -> None:
    database = Path(str(make_url(project.backend.url).database))
    aside = database.with_name(f"{database.stem}_test{database.suffix}.creating")
    aside.write_bytes(b"half written")
    project.write_tests("def test_one(db_session):\n    pass\n")
    project.run().assert_outcomes(passed=1)
    assert not aside.exists()
    assert project.backend.test_databases() == set()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_sqlite_file_in_a_missing_directory_is_refused_and_nothing_is_created(
    project: Project,
) -> None:
    missing = project.pytester.path / "no" / "such" / "dir"
    project.write_ini(db_url=f"sqlite:///{missing / 'app.db'}")
    project.write_tests("def test_one(db_session):\n    pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*The directory {missing} of the SQLite database*does not exist*"]
    )
    assert not (project.pytester.path / "no").exists()


# -- leftovers of killed runs ---------------------------------------------------------------


def test_a_killed_db_commit_run_with_seed_rows_does_not_block_reuse(any_project: Project) -> None:
    any_project.copy_tests(LIFECYCLE, "lifecycle/test_killed_commit_with_seed.py")
    folder = any_project.pytester.path
    killed = subprocess.run(
        inner_command("--db-reuse"),
        cwd=folder,
        env={**os.environ, "KILL_ME": "1"},
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -9, killed.stdout.decode()
    any_project.backend.wait_until_unused()
    # The runs after it may be in this process: the killed one is gone.
    any_project.run("--db-reuse").assert_outcomes(passed=2)
    any_project.run().assert_outcomes(passed=2)
    assert any_project.backend.test_databases() == set()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_leftover_of_another_user_gets_one_sentence(project: Project) -> None:
    for role in ("sm_lifecycle_owner", "sm_lifecycle_other"):
        project.backend.admin_execute(f"DROP ROLE IF EXISTS {role}")
        project.backend.admin_execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD 'pw-secret'")
    url = make_url(project.backend.url)
    try:
        project.write_tests("def test_one(db_session):\n    pass\n")
        owner = url.set(username="sm_lifecycle_owner", password="pw-secret")
        project.run("--db-url", owner.render_as_string(False), "--db-reuse").assert_outcomes(
            passed=1
        )
        other = url.set(username="sm_lifecycle_other", password="pw-secret")
        for reuse in ((), ("--db-reuse",)):
            result = project.run("--db-url", other.render_as_string(False), *reuse)
            result.assert_outcomes(errors=1)
            result.stdout.fnmatch_lines(
                [
                    "*The test database * was left by an earlier run, and this user may not "
                    "*must be owner of database*Drop it as its owner or a superuser*"
                ]
            )
            assert "Traceback" not in result.stdout.str()
            assert "pw-secret" not in result.stdout.str()
    finally:
        drop_database(project.backend, derived_name(project.backend))
        for role in ("sm_lifecycle_owner", "sm_lifecycle_other"):
            project.backend.admin_execute(f"DROP ROLE IF EXISTS {role}")


# -- the end never hangs --------------------------------------------------------------------


@pytest.fixture
def leftover_project(any_project: Project) -> Project:
    any_project.copy_tests(LIFECYCLE, "lifecycle/test_transaction_left_open.py")
    return any_project


def test_a_transaction_left_open_does_not_hold_up_the_drop_of_the_test_database(
    leftover_project: Project,
) -> None:
    result = leftover_project.pytester.runpytest_subprocess(timeout=300)
    result.assert_outcomes(passed=2)
    assert "SessionmakerWarning" not in result.stdout.str()
    assert leftover_project.backend.test_databases() == set()


def test_a_transaction_left_open_in_a_kept_database_ends_the_run_with_a_warning(
    leftover_project: Project,
) -> None:
    result = leftover_project.pytester.runpytest_subprocess("--db-reuse", timeout=300)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*SessionmakerWarning: The end of the run could not remove the plugin's triggers*"]
    )
    # The next run cleans up and reuses it. (The open transaction ended with its process: the
    # next runs may be in this one.)
    result = leftover_project.run("--db-reuse", "-k", "after_it")
    result.assert_outcomes(passed=1, deselected=1)
    leftover_project.run("-k", "after_it").assert_outcomes(passed=1, deselected=1)
    assert leftover_project.backend.test_databases() == set()


def test_a_transaction_left_open_in_the_urls_database_ends_the_run_with_a_warning(
    leftover_project: Project,
) -> None:
    leftover_project.write_ini(db_database="as_given")
    with leftover_project.backend.existing_database():
        result = leftover_project.pytester.runpytest_subprocess(timeout=300)
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["*could not remove*and the tables it created*"])
        # The next run drops the tables the plugin recorded as its own, and ends cleanly.
        result = leftover_project.run("-k", "after_it")
        result.assert_outcomes(passed=1, deselected=1)


# -- PostgreSQL versions ----------------------------------------------------------------------


@pytest.fixture
def postgresql_connection(postgresql_server: str) -> Iterator[Connection]:
    url = make_url(postgresql_server).set(database="postgres")
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        yield connection


def test_postgresql_12_drops_its_database_by_ending_its_sessions_first(
    postgresql_connection: Connection, postgresql_server: str
) -> None:
    """PostgreSQL 12 has no DROP DATABASE ... WITH (FORCE): its path, run on this server."""
    name = "sm_lifecycle_pg12_drop"
    support = PostgreSQLSupport("psycopg")
    support.drop_database(postgresql_connection, name)
    postgresql_connection.exec_driver_sql(f"CREATE DATABASE {name}")
    leftover_url: URL = make_url(postgresql_server).set(database=name)
    leftover = create_engine(leftover_url, poolclass=NullPool).connect()
    leftover.begin()
    leftover.exec_driver_sql("CREATE TABLE held (id INTEGER)")
    try:
        support.drop_after_ending_sessions(postgresql_connection, name)
        assert support.database_mark(postgresql_connection, name) is None
    finally:
        leftover.invalidate()


def test_the_postgresql_version_decides_how_a_database_is_dropped(
    postgresql_connection: Connection,
) -> None:
    from pytest_sessionmaker.dialects.postgresql import server_version

    version_num = int(postgresql_connection.exec_driver_sql("SHOW server_version_num").scalar_one())
    assert has_drop_force(server_version(postgresql_connection)) == (version_num >= 130000)
    assert not has_drop_force((12, 22))
    assert has_drop_force((13, 0))


def test_postgresql_older_than_12_is_refused_in_one_sentence(
    postgresql_connection: Connection,
) -> None:
    PostgreSQLSupport("psycopg").check_server(postgresql_connection)  # this server is supported
    refuse_unsupported_version((12, 0))
    with pytest.raises(DatabaseUnavailable, match=r"PostgreSQL 11\.22, older than 12, the oldest"):
        refuse_unsupported_version((11, 22))
