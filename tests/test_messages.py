"""What the plugin says: no secret anywhere, a run-wide problem once, the right advice."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import make_url

if TYPE_CHECKING:
    from helpers import Project

THREE_DATABASE_TESTS = """
def test_one(db_session):
    pass

def test_two(db_engine):
    pass

def test_three(db_connection):
    pass

def test_plain():
    pass
"""


# -- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("key", ["password", "passwd"])
def test_a_password_given_as_a_query_parameter_is_hidden_in_the_header_and_errors(
    project: Project, key: str
) -> None:
    project.write_ini(db_url=f"postgresql+psycopg://app@127.0.0.1:1/app?{key}=s3cr3t-pw")
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(
        [
            f"sessionmaker: postgresql+psycopg://app@127.0.0.1:1/app?{key}=*** (from ini db_url)*",
            f"*Cannot connect to the test database*{key}=***:*",
        ]
    )
    assert "s3cr3t-pw" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    "secret_url",
    [
        lambda url: url.set(password="s3cr3t-pw"),
        lambda url: url.update_query_dict({"password": "s3cr3t-pw"}),
    ],
    ids=["in the user part", "as a query parameter"],
)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_showlocals_through_the_plugin_and_sqlalchemy_shows_no_password(
    project: Project, secret_url: object
) -> None:
    """A traceback through the plugin's frames (settings, URLs) and SQLAlchemy's (its
    connection parameters hold the password in plain text)."""
    url = secret_url(make_url(project.backend.url))  # type: ignore[operator]
    project.write_ini(db_url=url.render_as_string(hide_password=False))
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def db_engine_options():
            return {"no_such_option": 1}
        """
    )
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run("--showlocals", "--tb=long")
    result.assert_outcomes(passed=1, errors=3)
    output = result.stdout.str()
    assert "settings   = Settings(url='postgresql+psycopg://" in output
    assert "cparams" in output  # SQLAlchemy's frame was shown, scrubbed
    result.stdout.fnmatch_lines(["*TypeError: Invalid argument(s) 'no_such_option'*"])
    assert "s3cr3t-pw" not in output


def test_the_settings_repr_hides_secrets(pytestconfig: pytest.Config) -> None:
    from pytest_sessionmaker.config import Settings

    settings = Settings(
        url="postgresql://app:s3cr3t-pw@db/app?sslpassword=k3y-pw",
        url_source="--db-url",
        metadata_paths=(),
        schema_mode="create",
        database_mode="derive",
        reuse_database=False,
        recreate_database=False,
        sessionmaker_paths=(),
        engine_paths=(),
        rebind_autouse=False,
    )
    shown = repr(settings)
    assert shown.startswith("Settings(url='postgresql://app:***@db/app?sslpassword=***'")
    assert "s3cr3t-pw" not in shown
    assert "k3y-pw" not in shown


# -- a run-wide problem, once -----------------------------------------------------------------


def assert_reported_once(result: pytest.RunResult, sentence: str) -> None:
    """The first database test has the whole sentence, the others a reference to it."""
    result.assert_outcomes(passed=1, errors=3)
    lines = result.stdout.lines
    assert len([line for line in lines if sentence in line]) == 1, result.stdout.str()
    reference = (
        "The database could not be prepared for this run: see the error of "
        "test_app.py::test_one above."
    )
    assert lines.count(reference) == 2
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_unreachable_server_is_reported_once(project: Project) -> None:
    project.write_ini(db_url="postgresql+psycopg://app@127.0.0.1:1/app")
    project.write_tests(THREE_DATABASE_TESTS)
    assert_reported_once(project.run("-rN"), "Cannot connect to the test database")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_db_metadata_typo_is_reported_once(project: Project) -> None:
    project.write_ini(db_metadata="models:Bsae")
    project.write_tests(THREE_DATABASE_TESTS)
    assert_reported_once(project.run("-rN"), "db_metadata = 'models:Bsae': 'models' has no")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_foreign_test_database_is_reported_once(project: Project) -> None:
    database = Path(str(make_url(project.backend.url).database))
    database.with_name(f"{database.stem}_test.db").write_bytes(b"somebody's")
    project.write_tests(THREE_DATABASE_TESTS)
    assert_reported_once(project.run("-rN"), "already exists and was not created by")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_metadata_without_tables_says_how_to_import_the_models(project: Project) -> None:
    """The common mistake: db_metadata names the module defining Base, which does not import
    the models."""
    project.pytester.makepyfile(
        base_only="from sqlalchemy.orm import DeclarativeBase\n\n"
        "class Base(DeclarativeBase):\n    pass\n"
    )
    project.write_ini(db_metadata="base_only:Base")
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run("-rN")
    assert_reported_once(result, "db_metadata = 'base_only:Base' has no tables")
    result.stdout.fnmatch_lines(
        ["*has no tables: the modules defining its models were not imported by 'base_only'*"]
    )
    assert "IntegrityError" not in result.stdout.str()


# -- advice -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_missing_role_is_told_to_create_the_role(project: Project) -> None:
    url = make_url(project.backend.url).set(username="sm_no_such_role")
    project.write_ini(db_url=url.render_as_string(hide_password=False))
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(
        ['*role "sm_no_such_role" does not exist*The server has no such role: create the user*']
    )
    assert "server is running" not in result.stdout.str()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.skipif(
    find_spec("psycopg2") is not None,
    reason="psycopg2 is installed here; run in an environment without it (as .ci/run's)",
)
def test_a_missing_psycopg2_is_told_to_install_psycopg2(project: Project) -> None:
    project.write_ini(db_url="postgresql+psycopg2://postgres@127.0.0.1/app")
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(
        ["*driver 'psycopg2'*postgresql+psycopg2://*not installed*pip install 'psycopg2-binary'*"]
    )
    assert "mysql" not in result.stdout.str().lower()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.skipif(
    find_spec("MySQLdb") is not None,
    reason="mysqlclient is installed here; run in an environment without it (as .ci/run's)",
)
def test_a_bare_mysql_url_names_mysqlclient_and_the_pymysql_alternative(project: Project) -> None:
    project.write_ini(db_url="mysql://root@127.0.0.1/app")
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*driver 'mysqldb' that the URL mysql:// names is not installed*"
            "pip install 'mysqlclient'*A URL without a driver, mysql://, means mysqlclient; "
            "to use PyMySQL write mysql+pymysql:// and install 'pytest-sessionmaker[[]mysql]'*"
        ]
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgres://app@127.0.0.1/app", "write postgresql:// instead"),
        ("postgres+psycopg://app@127.0.0.1/app", "write postgresql+psycopg:// instead"),
    ],
)
def test_a_postgres_url_is_told_to_write_postgresql(project: Project, url: str, hint: str) -> None:
    project.write_tests(THREE_DATABASE_TESTS)
    result = project.run("--db-url", url)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: The database URL from --db-url starts with *{hint}*"])
