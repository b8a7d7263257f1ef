"""The isolation semantics of the core issue, on SQLite and PostgreSQL, run as a user runs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpers import Project


def test_a_commit_is_invisible_to_the_next_test_in_either_order(project: Project) -> None:
    project.write_tests(
        """
        import pytest
        from sqlalchemy import func, select
        from models import User

        @pytest.mark.parametrize("order", [1, 2, 3])
        def test_commit_then_count(db_session, order):
            assert db_session.scalar(select(func.count()).select_from(User)) == 0
            db_session.add(User(name="alice"))
            db_session.commit()
            assert db_session.scalar(select(func.count()).select_from(User)) == 1
        """
    )
    project.run().assert_outcomes(passed=3)


def test_rollback_after_integrity_error_keeps_seeded_rows_and_later_commit_is_undone(
    project: Project,
) -> None:
    project.write_tests(
        """
        import pytest
        from sqlalchemy import func, select
        from sqlalchemy.exc import IntegrityError
        from models import User

        def count(session):
            return session.scalar(select(func.count()).select_from(User))

        def test_app_rolls_back(db_session, db_sessionmaker):
            db_session.add(User(name="seed"))
            db_session.commit()
            with db_sessionmaker() as app:
                app.add(User(name="seed"))
                with pytest.raises(IntegrityError):
                    app.commit()
                app.rollback()
                assert count(app) == 1
                app.add(User(name="after"))
                app.commit()
            assert count(db_session) == 2

        def test_next(db_session):
            assert count(db_session) == 0
        """
    )
    project.run().assert_outcomes(passed=2)


def test_begin_nested_rolls_back_only_its_own_work(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User

        def test_nested(db_session):
            db_session.add(User(name="kept"))
            db_session.flush()
            nested = db_session.begin_nested()
            db_session.add(User(name="dropped"))
            db_session.flush()
            nested.rollback()
            db_session.commit()
            assert db_session.scalars(select(User.name)).all() == ["kept"]

        def test_after(db_session):
            assert db_session.scalars(select(User.name)).all() == []
        """
    )
    project.run().assert_outcomes(passed=2)


def test_sessions_of_one_test_see_each_others_commits(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User

        def test_two_sessions(db_sessionmaker):
            with db_sessionmaker.begin() as writer:
                writer.add(User(name="bob"))
            with db_sessionmaker() as reader:
                assert reader.scalars(select(User.name)).all() == ["bob"]
            with db_sessionmaker(expire_on_commit=False) as other:
                user = other.scalars(select(User)).one()
                other.commit()
                assert user.name == "bob"

        def test_gone(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    project.run().assert_outcomes(passed=2)


def test_a_users_own_session_with_the_default_join_mode_is_guarded(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import select
        from sqlalchemy.orm import Session
        from models import User

        def test_own_session(db_connection):
            with Session(bind=db_connection) as session:
                session.add(User(name="carol"))
                session.commit()
                session.add(User(name="dave"))
                session.flush()
                session.rollback()
                assert session.scalars(select(User.name)).all() == ["carol"]
                session.add(User(name="erin"))
                session.commit()

        def test_after(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    project.run().assert_outcomes(passed=2)


def test_db_connection_requested_during_the_test_is_guarded_too(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import select
        from sqlalchemy.orm import Session
        from models import User

        def test_late_connection(request, db_session):
            db_session.add(User(name="alice"))
            db_session.commit()
            connection = request.getfixturevalue("db_connection")
            with Session(bind=connection) as session:
                session.add(User(name="bob"))
                session.flush()
                session.rollback()
                assert session.scalars(select(User.name)).all() == ["alice"]

        def test_after(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    project.run("-p", "no:randomly").assert_outcomes(passed=2)


def test_clean_tests_keep_one_connection_and_a_changed_one_is_replaced(
    project: Project,
) -> None:
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User

        seen = []

        def test_first(db_connection):
            seen.append(db_connection)

        def test_kept(db_connection):
            assert db_connection is seen[0]
            db_connection.execution_options(logging_token="changed")

        def test_options_do_not_carry_over(db_connection, db_engine):
            assert db_connection is not seen[0]
            assert db_connection.get_execution_options() == db_engine.get_execution_options()
            seen.append(db_connection)
            db_connection.close()

        def test_a_closed_connection_is_replaced(db_session):
            assert db_session.connection() is not seen[-1]
            assert db_session.scalars(select(User)).all() == []
        """
    )
    project.run("-p", "no:randomly").assert_outcomes(passed=4)


def test_clean_db_session_tests_keep_one_connection(project: Project) -> None:
    project.write_tests(
        """
        seen = []

        def test_first(db_session):
            seen.append(db_session.connection())

        def test_second(db_session, db_engine):
            assert db_session.connection() is seen[0]
            # Not db_engine's: the kept connection's engine has no event listeners.
            assert db_session.connection().engine is not db_engine
            assert db_session.connection().engine.url == db_engine.url
        """
    )
    project.run("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_test_using_only_db_engine_is_guarded(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import insert, select
        from models import User

        def test_engine_only(db_engine):
            with db_engine.begin() as other:
                other.execute(insert(User).values(name="leak"))

        def test_next_is_clean(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*a second connection of db_engine committed*"])


def test_session_fixtures_commit_before_the_test_transaction_begins(project: Project) -> None:
    project.pytester.makeconftest(
        """
        import pytest
        from sqlalchemy import insert
        from models import User

        @pytest.fixture(scope="session")
        def seed(db_engine):
            with db_engine.begin() as connection:
                connection.execute(insert(User).values(name="seed"))

        @pytest.fixture
        def client():
            return "client"
        """
    )
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User

        def test_seeded(client, seed, db_engine):
            with db_engine.connect() as connection:
                assert connection.scalars(select(User.name)).all() == ["seed"]
        """
    )
    project.run().assert_outcomes(passed=1)


def test_every_fixture_of_a_test_shares_one_connection_in_either_order(project: Project) -> None:
    project.write_tests(
        """
        def test_session_first(db_session, db_connection, db_sessionmaker):
            assert db_session.connection() is db_connection
            with db_sessionmaker() as other:
                assert other.connection() is db_connection

        def test_connection_first(db_connection, db_session):
            assert db_session.connection() is db_connection

        def test_connection_requested_late(request, db_session):
            assert request.getfixturevalue("db_connection") is db_session.connection()
        """
    )
    project.run().assert_outcomes(passed=3)


def test_committing_the_connection_behind_db_session_is_an_error_of_that_test_only(
    project: Project,
) -> None:
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User

        def test_commits_the_sessions_connection(db_session):
            db_session.add(User(name="leak"))
            db_session.flush()
            db_session.connection().commit()

        def test_rolls_back_the_sessions_connection(db_session):
            db_session.add(User(name="gone"))
            db_session.flush()
            db_session.connection().rollback()

        def test_next_is_clean(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_commits_the_sessions_connection*",
            "*committed its own transaction*writing to users*@pytest.mark.db_commit*",
        ]
    )


def test_committing_the_connection_is_an_error_of_that_test_only(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import insert, select
        from models import User

        def test_commits_connection(db_connection):
            db_connection.execute(insert(User).values(name="leak"))
            db_connection.commit()

        def test_next_is_clean(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_commits_connection*",
            "*db_connection.commit() committed the test's own transaction**@pytest.mark.db_commit*",
        ]
    )


def test_committing_through_a_second_connection_is_reported_with_the_tests_failure(
    project: Project,
) -> None:
    project.write_tests(
        """
        from sqlalchemy import insert, select
        from models import User

        def test_second_connection(db_engine, db_session):
            with db_engine.begin() as other:
                other.execute(insert(User).values(name="leak"))
            assert False, "the test's own failure"

        def test_next_is_clean(db_session):
            assert db_session.scalars(select(User)).all() == []
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*a second connection of db_engine committed*", "*the test's own failure*"]
    )


def test_pooled_connections_carry_no_session_state_between_tests(project: Project) -> None:
    postgresql_only = "" if project.backend.name == "postgresql" else "@pytest.mark.skip"
    project.write_tests(
        f"""
        import pytest
        from sqlalchemy import text

        def test_leave_state(db_connection):
            db_connection.exec_driver_sql("CREATE TEMPORARY TABLE scratch (x INTEGER)")
            if db_connection.dialect.name == "postgresql":
                db_connection.exec_driver_sql("SET SESSION statement_timeout = 12345")
                db_connection.exec_driver_sql("SELECT pg_advisory_lock(42)")
                for _ in range(8):  # psycopg prepares a statement after 5 executions
                    db_connection.execute(text("SELECT 1 + :x"), {{"x": 1}})
            db_connection.commit()

        def test_temp_table_is_gone(db_connection):
            db_connection.exec_driver_sql("CREATE TEMPORARY TABLE scratch (x INTEGER)")

        {postgresql_only}
        def test_postgresql_state_is_reset(db_connection):
            assert db_connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
            held = db_connection.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            ).scalar()
            assert held == 0
            for _ in range(8):
                assert db_connection.execute(text("SELECT 1 + :x"), {{"x": 1}}).scalar() == 2
        """
    )
    # The commit in the first test is a breach (reported); what matters is what the next
    # tests find on the pooled connection. One pooled connection makes sure it is reused.
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def db_engine_options():
            return {"pool_size": 1, "max_overflow": 0}
        """
    )
    result = project.run("-p", "no:randomly")
    expected = {
        "postgresql": dict(passed=3, errors=1),
        "sqlite": dict(passed=2, errors=1, skipped=1),
    }
    result.assert_outcomes(**expected[project.backend.name])
