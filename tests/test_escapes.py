"""Nothing a rolled-back test does reaches another test: every escape is the guilty test's error.

Inner modules: tests/examples/isolation/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from helpers import Project

ESCAPE_MESSAGE = (
    "*This test committed outside its rolled-back transaction*users*"
    "The plugin restored the tables it owns*@pytest.mark.db_commit*"
)
ESCAPES = [
    "commit_statement_through_db_session",
    "commit_statement_on_db_connection",
    "commit_statement_on_the_sessions_connection",
    "dbapi_commit",
    "second_engine_on_the_same_url",
    "engine_of_the_application",
    "commit_of_the_connection_behind_db_session",
]


def test_every_escape_route_is_an_error_of_the_test_that_took_it(any_project: Project) -> None:
    any_project.copy_tests("isolation/test_escape_routes.py")
    result = any_project.run("-p", "no:cacheprovider")
    # Each escaping test passes its call and errors at teardown; every other test passes.
    result.assert_outcomes(passed=2 * len(ESCAPES) + 2, errors=len(ESCAPES))
    errors = [
        line.split("::")[1].split(" ")[0]
        for line in result.stdout.lines
        if line.startswith("ERROR test_escape_routes.py::")
    ]
    assert errors == [f"test_escape_{name}" for name in ESCAPES]
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_escape_*", ESCAPE_MESSAGE])


def test_the_message_names_the_tests_own_commit_or_another_connection(
    any_project: Project,
) -> None:
    any_project.copy_tests("isolation/test_escape_routes.py")
    result = any_project.run("-k", "dbapi_commit or second_engine")
    result.assert_outcomes(passed=4, errors=2)
    if any_project.backend.name == "sqlite":
        # SQLite cannot tell connections apart; the message gives both possibilities.
        result.stdout.fnmatch_lines(["*committed outside the test's transaction (by a COMMIT*"])
    else:
        result.stdout.fnmatch_lines(
            [
                "*test_escape_dbapi_commit*",
                "*the test's own transaction was committed*writing to users*",
                "*test_escape_second_engine_on_the_same_url*",
                "*another connection committed rows to users*",
            ]
        )


def test_fixtures_seed_only_from_wider_scopes(any_project: Project) -> None:
    any_project.copy_tests("isolation/test_fixture_commits.py")
    result = any_project.run()
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_escape_function_fixture_commits_before_db_session*",
            ESCAPE_MESSAGE,
            "*ERROR at teardown of test_escape_function_fixture_commits_at_teardown*",
            ESCAPE_MESSAGE,
        ]
    )


@pytest.mark.parametrize("any_backend", ["mariadb"], indirect=True)
def test_implicit_commits_of_mysql_are_errors_and_the_tables_come_back(
    any_project: Project,
) -> None:
    any_project.copy_tests("isolation/test_implicit_commits.py")
    result = any_project.run()
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_escape_ddl_commits_the_rows_before_it*",
            "*own transaction was committed*commits implicitly*",
            "*ERROR at teardown of test_escape_truncate_of_a_seeded_table*",
            "*own transaction was committed*commits implicitly*",
        ]
    )


def test_session_state_a_rollback_keeps_does_not_reach_the_next_test(
    any_project: Project,
) -> None:
    any_project.copy_tests("isolation/test_session_state.py")
    any_project.run().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    "connect_args",
    [
        pytest.param({"autocommit": True}, id="driver-autocommit"),
    ],
)
def test_driver_level_autocommit_is_refused(
    any_project: Project, connect_args: dict[str, object]
) -> None:
    any_project.pytester.makeconftest(
        f"""
        import pytest

        @pytest.fixture(scope="session")
        def db_engine_options():
            return {{"connect_args": {connect_args!r}}}
        """
    )
    any_project.write_tests("def test_uses_db(db_session):\n    pass\n")
    result = any_project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*connect_args={'autocommit': True}*no test could be rolled back*"]
    )


def test_what_a_test_does_to_its_objects_does_not_reach_the_next(any_project: Project) -> None:
    any_project.copy_tests("isolation/test_nothing_leaks.py")
    any_project.run().assert_outcomes(passed=7)


def test_marking_one_parametrized_case_does_not_give_its_siblings_the_database(
    project: Project,
) -> None:
    # An unreachable server: only a test that uses the database can fail.
    project.write_ini(db_url="postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    project.copy_tests("isolation/test_parametrized_commit.py")
    result = project.run()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_parametrized_commit.py::test_cases?committing?*"])
