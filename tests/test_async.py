"""Async tests get what sync tests get: rolled-back AsyncSessions, on every backend and async
driver, in pytest-asyncio's strict and auto modes, in function- and module-scoped loops.

Inner modules: tests/examples/async/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from helpers import inner_addopts

if TYPE_CHECKING:
    from helpers import Project

# Inner runs block pytest-asyncio (conftest.py); these unblock it. A connection left to a closed
# loop would show as an unraisable exception ("Event loop is closed"): an error here.
ASYNCIO = (
    "-p",
    "asyncio",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
    "-W",
    "error::pytest.PytestUnraisableExceptionWarning",
)
ESCAPE_MESSAGE = (
    "*This test committed outside its rolled-back transaction*users*"
    "The plugin restored the tables it owns*@pytest.mark.db_commit*"
)

# An async test that only asks for db_async_session: for errors raised at its set-up.
USES_ASYNC_SESSION = """
import pytest

@pytest.mark.asyncio
async def test_it(db_async_session):
    pass
"""


def asyncio_options(mode: str, loop: str) -> tuple[str, ...]:
    return (*ASYNCIO, "-o", f"asyncio_mode={mode}", "-o", f"asyncio_default_test_loop_scope={loop}")


@pytest.mark.parametrize("loop", ["function", "module", "session"])
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_sessions_commit_savepoints_and_every_test_is_rolled_back(
    any_project: Project, mode: str, loop: str
) -> None:
    any_project.copy_tests("async/test_async_isolation.py")
    result = any_project.run(*asyncio_options(mode, loop))
    result.assert_outcomes(passed=7)


@pytest.mark.parametrize(
    ("url_driver", "setting"),
    [
        ("psycopg", None),
        ("psycopg", "asyncpg"),
        ("asyncpg", None),
    ],
)
def test_both_postgresql_async_drivers_are_rolled_back(
    postgresql_project: Project, url_driver: str, setting: str | None
) -> None:
    """psycopg's async mode by default, asyncpg when db_async_driver names it; a URL naming
    asyncpg serves the sync fixtures through psycopg."""
    url = postgresql_project.backend.url.replace("+psycopg", f"+{url_driver}")
    extra = {"db_async_driver": setting} if setting else {}
    postgresql_project.write_ini(db_url=url, **extra)
    postgresql_project.copy_tests("async/test_async_isolation.py", "async/test_drivers.py")
    expected = "asyncpg" if "asyncpg" in (url_driver, setting) else "psycopg"
    postgresql_project.pytester.makepyfile(expected_driver=f"DRIVER = {expected!r}")
    result = postgresql_project.run(*asyncio_options("strict", "function"))
    result.assert_outcomes(passed=9)
    if setting:
        result.stdout.fnmatch_lines(
            ["sessionmaker: *; async driver: asyncpg (from ini db_async_driver)"]
        )


def test_an_escaped_commit_is_an_error_of_the_async_test_that_made_it(
    any_project: Project,
) -> None:
    any_project.copy_tests("async/test_async_escapes.py")
    result = any_project.run(*asyncio_options("strict", "function"))
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_escape_commit_statement_through_db_async_session*",
            ESCAPE_MESSAGE,
            "*ERROR at teardown of test_escape_second_connection_of_db_async_engine*",
            ESCAPE_MESSAGE,
        ]
    )


def test_a_module_scoped_loop_named_by_the_marker_serves_every_test_of_the_module(
    project: Project,
) -> None:
    """The marker's loop_scope wins over asyncio_default_test_loop_scope (function here)."""
    project.copy_tests("async/test_module_loop.py")
    result = project.run(*asyncio_options("strict", "function"))
    result.assert_outcomes(passed=4)


def test_an_async_driver_of_another_backend_is_refused_in_one_sentence(
    project: Project,
) -> None:
    project.write_ini(db_async_driver="asyncmy")
    project.write_tests(USES_ASYNC_SESSION)
    result = project.run(*ASYNCIO)
    result.assert_outcomes(errors=1)
    if project.backend.name == "sqlite":
        result.stdout.fnmatch_lines(
            [
                "*The async driver 'asyncmy' (--db-async-driver or the db_async_driver ini key) "
                "does not serve sqlite; use one of: aiosqlite.*"
            ]
        )
    else:
        result.stdout.fnmatch_lines(["*does not serve postgresql; use one of: psycopg, asyncpg*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_missing_async_driver_is_one_sentence_naming_the_package(
    mariadb_server: str, pytester: pytest.Pytester
) -> None:
    """asyncmy is not installed in the suite's environment (aiomysql is)."""
    from helpers import MODELS

    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    pytester.makeini(
        f"[pytest]\ndb_url = {mariadb_server}\ndb_metadata = models:Base\n"
        "db_async_driver = asyncmy\n"
    )
    pytester.makepyfile(
        test_it="""
        import pytest

        @pytest.mark.asyncio
        async def test_it(db_async_session):
            pass
        """
    )
    result = pytester.runpytest(*ASYNCIO)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*The database driver 'asyncmy'*is not installed*Install it: pip install 'asyncmy', "
            "or choose another driver with --db-async-driver or the db_async_driver ini key."
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_an_async_fixture_in_a_sync_test_says_what_runs_async_tests(project: Project) -> None:
    project.write_tests(
        """
        def test_it(db_async_session):
            pass
        """
    )
    result = project.run(*ASYNCIO)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*db_async_session is for async tests run by pytest-asyncio*"])


def test_a_sync_run_imports_no_async_machinery(project: Project) -> None:
    """pytest-asyncio loaded, database tests run, yet nothing async is imported."""
    project.pytester.makeconftest(
        """
        import sys

        ASYNC_MODULES = ("sqlalchemy.ext.asyncio", "greenlet", "aiosqlite", "asyncpg", "aiomysql")

        def pytest_terminal_summary(terminalreporter):
            loaded = sorted(name for name in ASYNC_MODULES if name in sys.modules)
            terminalreporter.write_line(f"async modules imported: {loaded}")
        """
    )
    project.write_tests(
        """
        def test_sync(db_session):
            assert db_session.connection().dialect.is_async is False
        """
    )
    result = project.run_subprocess(*ASYNCIO)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["async modules imported: []"])


def test_db_commit_async_tests_commit_for_real_and_are_undone(any_project: Project) -> None:
    any_project.copy_tests("async/test_async_commit.py")
    result = any_project.run(*ASYNCIO)
    result.assert_outcomes(passed=4)


def test_session_options_apply_to_async_sessions(project: Project) -> None:
    """db_session_options (a sync Session subclass becomes sync_session_class), then
    db_async_session_options."""
    project.pytester.makeconftest(
        """
        import pytest
        from sqlalchemy.orm import Session

        class AuditedSession(Session):
            pass

        @pytest.fixture(scope="session")
        def db_session_options():
            return {"class_": AuditedSession, "info": {"origin": "sync options"}}

        @pytest.fixture(scope="session")
        def db_async_session_options():
            return {"expire_on_commit": False}
        """
    )
    project.write_tests(
        """
        import pytest
        from models import User

        @pytest.mark.asyncio
        async def test_options(db_async_session, db_async_sessionmaker):
            assert type(db_async_session.sync_session).__name__ == "AuditedSession"
            assert db_async_session.info == {"origin": "sync options"}
            user = User(name="kept")
            db_async_session.add(user)
            await db_async_session.commit()
            assert user.name == "kept"  # not expired: no lazy load needed
            assert db_async_sessionmaker.kw["expire_on_commit"] is False
        """
    )
    result = project.run(*ASYNCIO)
    result.assert_outcomes(passed=1)


def test_the_applications_async_factories_join_each_async_test(any_project: Project) -> None:
    any_project.write_ini(db_sessionmakers="app_async:SessionLocal app_async:ScopedSession")
    any_project.copy_tests("async/app_async.py", "async/test_async_rebind.py")
    result = any_project.run(*ASYNCIO)
    result.assert_outcomes(passed=6)


@pytest.mark.parametrize("loop", ["function", "module", "session"])
def test_sync_and_async_fixtures_of_one_test_share_one_transaction(
    any_project: Project, loop: str
) -> None:
    any_project.copy_tests("async/test_shared_transaction.py")
    result = any_project.run(*asyncio_options("strict", loop))
    # The escape through the shared sync session is an error of its test, like any other.
    result.assert_outcomes(passed=8, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_escape_a_commit_statement_through_the_shared_sync_*",
            ESCAPE_MESSAGE,
        ]
    )


def test_a_sync_fixture_that_cannot_share_the_transaction_is_refused_in_a_sentence(
    project: Project,
) -> None:
    project.write_tests(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_it(db_queries, db_async_session):
            pass
        """
    )
    result = project.run(*ASYNCIO)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*with a sync one that cannot share its transaction (db_rebind*"])


@pytest.mark.parametrize("asyncio_plugin", [(), ASYNCIO], ids=["anyio-alone", "with-strict"])
def test_anyio_tests_get_the_async_fixtures_on_its_asyncio_backend(
    any_project: Project, asyncio_plugin: tuple[str, ...]
) -> None:
    """anyio's plugin runs the tests; pytest-asyncio in strict mode may be loaded beside it."""
    any_project.copy_tests("async/test_anyio.py")
    result = any_project.run("-p", "anyio", *asyncio_plugin)
    result.assert_outcomes(passed=3)


def test_the_readme_example_runs_as_shown(project: Project) -> None:
    """README.rst's "Async tests" shows tests/examples/async/test_readme_example.py verbatim."""
    from pathlib import Path

    repository = Path(__file__).resolve().parents[1]
    source = (repository / "tests/examples/async/test_readme_example.py").read_text()
    indented = "\n".join(f"    {line}" if line else "" for line in source.splitlines())
    assert indented in (repository / "README.rst").read_text()
    project.copy_tests("async/test_readme_example.py")
    result = project.run(*ASYNCIO)
    result.assert_outcomes(passed=3)


def test_a_run_without_database_tests_imports_no_sqlalchemy_with_async_plugins_loaded(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-asyncio and anyio loaded: the plugin's fixtures for them import no SQLAlchemy."""
    monkeypatch.setenv("PYTEST_ADDOPTS", inner_addopts(load=("asyncio", "anyio")))
    project.write_ini(db_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/nothing")
    project.pytester.makeconftest(
        """
        import sys

        def pytest_terminal_summary(terminalreporter):
            loaded = "sqlalchemy" in sys.modules
            terminalreporter.write_line(f"sqlalchemy imported: {loaded}")
        """
    )
    project.write_tests(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_plain():
            assert 1 + 1 == 2
        """
    )
    result = project.run_subprocess("-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["sqlalchemy imported: False"])


def test_async_session_options_that_would_defeat_the_rollback_are_refused(
    project: Project,
) -> None:
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def db_async_session_options():
            return {"join_transaction_mode": "rollback_only"}
        """
    )
    project.write_tests(USES_ASYNC_SESSION)
    result = project.run(*ASYNCIO)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*db_async_session_options may not set 'join_transaction_mode'*@pytest.mark.db_commit*"]
    )


def test_a_url_naming_an_async_driver_serves_the_sync_fixtures_too(any_project: Project) -> None:
    """sqlite+aiosqlite and mysql+aiomysql (postgresql+asyncpg: see the drivers test)."""
    url = any_project.backend.url
    url = url.replace("sqlite://", "sqlite+aiosqlite://").replace("+pymysql", "+aiomysql")
    if any_project.backend.name == "postgresql":
        url = url.replace("+psycopg", "+asyncpg")
    any_project.write_ini(db_url=url)
    any_project.write_tests(
        """
        import pytest
        from sqlalchemy import text

        def test_sync(db_session, db_engine):
            assert not db_engine.dialect.is_async
            assert db_session.execute(text("SELECT 1")).scalar() == 1

        @pytest.mark.asyncio
        async def test_async(db_async_session, db_async_engine):
            assert db_async_engine.dialect.is_async
            assert (await db_async_session.execute(text("SELECT 1"))).scalar() == 1
        """
    )
    result = any_project.run(*ASYNCIO)
    result.assert_outcomes(passed=2)


def test_the_command_line_async_driver_wins_over_the_ini_key(postgresql_project: Project) -> None:
    postgresql_project.write_ini(db_async_driver="psycopg")
    postgresql_project.copy_tests("async/test_drivers.py")
    postgresql_project.pytester.makepyfile(expected_driver="DRIVER = 'asyncpg'")
    result = postgresql_project.run(*ASYNCIO, "--db-async-driver", "asyncpg")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["sessionmaker: *; async driver: asyncpg (from --db-async-driver)"])


def test_a_malformed_async_driver_is_a_usage_error(project: Project) -> None:
    project.write_tests("def test_plain():\n    pass\n")
    result = project.run(*ASYNCIO, "--db-async-driver", "asyncpg://x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--db-async-driver = 'asyncpg://x' is not a driver name*"])
