"""No write outside the test database (issue 14): the application's named factories and engines
are blocked outside database tests and point at the test database between tests.

The inner projects are test_rebind's: an application module whose factories point at a SQLite
file of its own, app.db, holding one row, which must stay byte for byte as it was.
"""

from __future__ import annotations

import pytest

from helpers import (
    FACTORIES_RESTORED,
    AppDatabase,
    Project,
    derived_test_url,
    factory_state,
    write_app,
)

BLOCKED_IN_PLAIN_TEST = (
    "*DatabaseBlocked: The application's session factory app:* (db_sessionmakers) was used in a "
    "test that uses no database fixture: request db_session or db_rebind*"
)


@pytest.fixture
def app_project(project: Project) -> tuple[Project, AppDatabase]:
    database = write_app(project.pytester)
    project.write_ini(db_sessionmakers="app:SessionLocal app:ScopedSession")
    return project, database


def test_a_test_using_no_database_fixture_cannot_write_through_the_application(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_tests(
        """
        import app

        def test_plain_before_the_database_is_ready():
            app.register("alice")

        def test_database(db_session):
            app.register("carol")
            assert app.names() == ["carol"]

        def test_plain_after_a_database_test():
            app.register_scoped("bob")
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([BLOCKED_IN_PLAIN_TEST, BLOCKED_IN_PLAIN_TEST])
    result.stdout.fnmatch_lines(["*wrap the call in `with db_blocker.unblock():`*"])
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_db_blocker_unblock_lets_a_plain_test_write_to_the_test_database(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_tests(
        """
        import app

        def test_database_first(db_session):
            assert app.names() == []

        def test_plain_unblocked(db_blocker):
            with db_blocker.unblock():
                app.register("alice")
                assert app.names() == ["alice"]

        def test_the_unblocked_write_is_in_the_test_database(db_session):
            assert app.names() == ["alice"]
        """
    )
    result = project.run()
    result.assert_outcomes(passed=3)
    app_database.assert_untouched()


def test_seed_data_written_through_the_application_between_tests_lands_in_the_test_database(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.pytester.makeconftest(
        """
        import pytest
        import app

        @pytest.fixture(scope="session", autouse=True)
        def seeded(db_setup):
            app.register("seed")
            app.register_scoped("scoped seed")
        """
    )
    project.write_tests(
        """
        import app

        def test_sees_the_seed_and_adds_a_row(db_session):
            assert app.names() == ["seed", "scoped seed"]
            app.register("alice")

        def test_the_seed_is_still_there_and_the_row_is_gone(db_session):
            assert app.names() == ["seed", "scoped seed"]
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    app_database.assert_untouched()


def test_a_fixture_writing_before_the_test_database_is_ready_is_told_to_request_db_setup(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.pytester.makeconftest(
        """
        import pytest
        import app

        @pytest.fixture(scope="session")
        def seeded():
            app.register("seed")
        """
    )
    project.write_tests(
        """
        def test_seeded(seeded, db_session):
            pass
        """
    )
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*app:SessionLocal (db_sessionmakers) was used before the test database was ready "
            "(at import time, or in a fixture that does not request db_setup): request db_setup*"
        ]
    )
    app_database.assert_untouched()


def test_with_blocking_off_a_plain_test_writes_to_the_test_database_and_that_stays(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_ini(db_sessionmakers="app:SessionLocal", db_blocking="false")
    project.write_tests(
        """
        import app

        def test_database_first(db_session):
            assert app.names() == []

        def test_plain():
            app.register("alice")

        def test_the_plain_write_stays_and_is_not_blamed_on_this_test(db_session):
            assert app.names() == ["alice"]
        """
    )
    result = project.run()
    result.assert_outcomes(passed=3)
    app_database.assert_untouched()


def test_an_application_engine_is_blocked_in_a_plain_test_and_works_in_a_database_test(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plugin derives its test database from the URL's (app -> app_test): point the
    # application's engine there, as the README says.
    monkeypatch.setenv("APP_DATABASE_URL", derived_test_url(project.backend.url))
    project.pytester.makepyfile(
        appengine="""
        import os
        from sqlalchemy import create_engine, text

        engine = create_engine(os.environ["APP_DATABASE_URL"])

        def count_users():
            with engine.connect() as connection:
                return connection.execute(text("SELECT COUNT(*) FROM users")).scalar()
        """
    )
    project.write_ini(db_engines="appengine:engine")
    project.write_tests(
        """
        import appengine

        def test_database(db_session):
            assert appengine.count_users() == 0

        def test_plain():
            appengine.count_users()
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*DatabaseBlocked: The application's engine appengine:engine (db_engines) was used in "
            "a test that uses no database fixture*"
        ]
    )
