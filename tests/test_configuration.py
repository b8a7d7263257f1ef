"""Settings: where the URL comes from, what is refused at start-up, what the header shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from helpers import BACKEND_INDEPENDENT, inner_addopts

if TYPE_CHECKING:
    from helpers import Project

USES_DB = """
def test_uses_db(db_session):
    assert db_session.connection() is not None
"""


@BACKEND_INDEPENDENT
def test_cli_beats_environment_beats_ini(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.write_tests(USES_DB)
    folder = project.pytester.path
    monkeypatch.setenv("PYTEST_DB_URL", f"sqlite:///{folder / 'from_env.db'}")
    result = project.run()
    result.stdout.fnmatch_lines(["sessionmaker: sqlite:///*from_env.db (from $PYTEST_DB_URL)*"])
    result.assert_outcomes(passed=1)
    result = project.run("--db-url", f"sqlite:///{folder / 'from_cli.db'}")
    result.stdout.fnmatch_lines(["sessionmaker: sqlite:///*from_cli.db (from --db-url)*"])
    result.assert_outcomes(passed=1)


@BACKEND_INDEPENDENT
def test_the_header_hides_the_password(project: Project) -> None:
    project.write_tests("def test_nothing():\n    pass\n")
    result = project.run("--db-url", "postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:1/app")
    result.stdout.fnmatch_lines(["sessionmaker: postgresql+psycopg://app:***@127.0.0.1:1/app*"])
    assert "s3cr3t-pw" not in result.stdout.str()
    result.assert_outcomes(passed=1)


@BACKEND_INDEPENDENT
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "*--db-url is not a valid SQLAlchemy URL*"),
        ("nosuchdb+nodriver://x/y", "*unknown dialect or driver 'nosuchdb+nodriver'*"),
        ("postgresql+nodriver://x/y", "*unknown dialect or driver 'postgresql+nodriver'*"),
        ("postgresql+://x/y", "*unknown dialect or driver 'postgresql+'*"),
        ("postgresql+json://x/y", "*unknown dialect or driver 'postgresql+json'*"),
        ("postgresql://x:5432x/y", "*--db-url has a port that is not a number*"),
    ],
)
def test_a_bad_url_is_a_usage_error_in_one_sentence(
    project: Project, url: str, message: str
) -> None:
    project.write_tests(USES_DB)
    result = project.run("--db-url", url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_an_unknown_driver_from_an_overridden_db_url_fails_the_tests_in_one_sentence(
    project: Project,
) -> None:
    project.pytester.makeconftest(
        """
        import pytest
        from sqlalchemy import make_url

        @pytest.fixture(scope="session")
        def db_url():
            return make_url("postgresql+nodriver://app:s3cr3t-pw@127.0.0.1:1/app")
        """
    )
    project.write_tests(USES_DB)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*SQLAlchemy has no dialect or driver 'postgresql+nodriver'*"])
    assert "Traceback" not in result.stdout.str()
    assert "s3cr3t-pw" not in result.stdout.str()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://app:p@ss/w:rd@db.example:5432/app",
            "postgresql+psycopg://app:***@db.example:5432/app",
        ),
        ("postgresql+psycopg://app@db.example/app", "postgresql+psycopg://app@db.example/app"),
        ("sqlite:////tmp/odd@name.db", "sqlite:////tmp/odd@name.db"),
        ("mysql+pymysql://root:@127.0.0.1/test", "mysql+pymysql://root:***@127.0.0.1/test"),
        (
            "postgresql+psycopg://app@db.example/app?password=s3cr3t&sslmode=require",
            "postgresql+psycopg://app@db.example/app?password=***&sslmode=require",
        ),
        (
            "mysql+pymysql://root@127.0.0.1/test?passwd=s3cr3t",
            "mysql+pymysql://root@127.0.0.1/test?passwd=***",
        ),
    ],
)
def test_passwords_are_hidden_even_with_odd_characters(url: str, shown: str) -> None:
    from pytest_sessionmaker.errors import scrub

    assert scrub(url) == shown


@BACKEND_INDEPENDENT
def test_an_empty_environment_variable_is_an_error_not_a_fallback(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write_tests(USES_DB)
    monkeypatch.setenv("PYTEST_DB_URL", "")
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: $PYTEST_DB_URL is set but empty*"])


@BACKEND_INDEPENDENT
def test_bad_ini_choices_are_usage_errors(project: Project) -> None:
    project.write_ini(db_schema="sometimes")
    project.write_tests(USES_DB)
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini key db_schema = 'sometimes' is not valid*"])


@BACKEND_INDEPENDENT
def test_a_run_without_database_tests_is_inert(project: Project) -> None:
    """An unreachable URL and a metadata module that would explode on import: no harm done."""
    project.pytester.makepyfile(exploding="raise RuntimeError('application code was imported')")
    project.write_ini(
        db_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/nothing", db_metadata="exploding:Base"
    )
    project.write_tests("def test_plain():\n    assert 1 + 1 == 2\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    assert "exploding" not in result.stdout.str().split("sessionmaker:")[1].split("\n", 1)[1]


@BACKEND_INDEPENDENT
def test_a_run_without_database_tests_does_not_import_sqlalchemy(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the suite's "-W error::sqlalchemy.exc.SADeprecationWarning": pytest imports a
    # warning category's module to resolve it.
    monkeypatch.setenv("PYTEST_ADDOPTS", inner_addopts())
    project.write_ini(db_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/nothing")
    project.pytester.makeconftest(
        """
        import sys

        def pytest_terminal_summary(terminalreporter):
            loaded = "sqlalchemy" in sys.modules
            terminalreporter.write_line(f"sqlalchemy imported: {loaded}")
        """
    )
    project.write_tests("def test_plain():\n    assert 1 + 1 == 2\n")
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["sqlalchemy imported: False"])


@BACKEND_INDEPENDENT
def test_an_unreachable_database_fails_tests_at_setup_plainly(project: Project) -> None:
    project.write_ini(db_url="postgresql+psycopg://app:s3cr3t-pw@127.0.0.1:1/app")
    project.write_tests(USES_DB + "\ndef test_plain():\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*Cannot connect to the test database postgresql+psycopg://app:***@127.0.0.1:1/app*"
            "--db-url*"
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "s3cr3t-pw" not in output
    assert "conninfo" not in output


@BACKEND_INDEPENDENT
def test_a_missing_driver_says_what_to_install(project: Project) -> None:
    project.write_ini(db_url="mysql+mysqldb://root@127.0.0.1/app")
    project.write_tests(USES_DB)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*driver 'mysqldb'*is not installed*pip install 'mysqlclient'*mysql+pymysql://*"]
    )


@pytest.mark.parametrize(
    ("fixture", "options", "message"),
    [
        ("db_session_options", {"bind": None}, "*may not set 'bind'*"),
        (
            "db_session_options",
            {"join_transaction_mode": "rollback_only"},
            "*may not set 'join_transaction_mode'*",
        ),
        ("db_engine_options", {"isolation_level": "AUTOCOMMIT"}, "*AUTOCOMMIT*db_commit*"),
        (
            "db_engine_options",
            {"execution_options": {"isolation_level": "AUTOCOMMIT"}},
            "*AUTOCOMMIT*",
        ),
    ],
)
def test_options_that_would_make_rollback_impossible_are_refused(
    project: Project, fixture: str, options: dict[str, object], message: str
) -> None:
    project.pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def {fixture}():
            return {options!r}
        """
    )
    project.write_tests(USES_DB)
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


def test_session_and_engine_options_are_applied(project: Project) -> None:
    project.pytester.makeconftest(
        """
        import pytest
        from sqlalchemy.orm import Session

        class AppSession(Session):
            pass

        @pytest.fixture(scope="session")
        def db_session_options():
            return {"class_": AppSession, "expire_on_commit": False, "info": {"app": 1}}

        @pytest.fixture(scope="session")
        def db_engine_options():
            return {"pool_size": 3}
        """
    )
    project.write_tests(
        """
        from models import User

        def test_options(db_session, db_engine):
            assert type(db_session).__name__ == "AppSession"
            assert db_session.info == {"app": 1}
            user = User(name="x")
            db_session.add(user)
            db_session.commit()
            assert "name" in user.__dict__  # not expired on commit
            assert db_engine.pool.size() == 3
        """
    )
    project.run().assert_outcomes(passed=1)
