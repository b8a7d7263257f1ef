"""The isolation semantics of the core issue, on SQLite and PostgreSQL, run as a user runs them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpers import Project

# SQLite cannot tell connections apart; PostgreSQL and MariaDB name the other connection.
OTHER_CONNECTION = "*committed*users*(*a second engine, db_engine.connect() or begin()*"


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
    project.run().assert_outcomes(passed=2)


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
    project.run().assert_outcomes(passed=4)


def test_clean_db_session_tests_keep_one_connection_of_db_engine(project: Project) -> None:
    project.write_tests(
        """
        seen = []

        def test_first(db_session):
            seen.append(db_session.connection())

        def test_second(db_session, db_engine):
            assert db_session.connection() is seen[0]
            assert db_session.connection().engine is db_engine
        """
    )
    project.run().assert_outcomes(passed=2)


def test_a_listener_on_db_engine_sees_every_statement_of_the_test(project: Project) -> None:
    project.pytester.makeconftest(
        """
        import pytest
        from sqlalchemy import event

        statements = []

        @pytest.fixture(scope="session", autouse=True)
        def count_statements(db_engine):
            def record(conn, cursor, statement, parameters, context, executemany):
                statements.append(statement)
            event.listen(db_engine, "before_cursor_execute", record)

        @pytest.fixture
        def recorded():
            statements.clear()
            return statements
        """
    )
    project.write_tests(
        """
        from sqlalchemy import select, text
        from models import User

        def test_every_fixture_runs_on_db_engine(
            recorded, db_session, db_sessionmaker, db_connection
        ):
            db_session.scalars(select(User.name).where(User.name == "from_session")).all()
            with db_sessionmaker() as session:
                session.scalars(select(User.name).where(User.name == "from_maker")).all()
            db_connection.execute(text("SELECT 'from_connection'"))
            seen = "\\n".join(recorded)
            assert "from_session" not in seen  # bound parameters, not literals
            assert sum("FROM users" in statement for statement in recorded) == 2
            assert any("from_connection" in statement for statement in recorded)
        """
    )
    project.run().assert_outcomes(passed=1)


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
    result = project.run()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_engine_only*", OTHER_CONNECTION])


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
    result = project.run()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_commits_the_sessions_connection*",
            "*own transaction was committed*writing to users*@pytest.mark.db_commit*",
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
    result = project.run()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_commits_connection*",
            "*own transaction was committed*writing to users*@pytest.mark.db_commit*",
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
    result = project.run()
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines([OTHER_CONNECTION, "*the test's own failure*"])


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
    # One pooled connection makes sure it is reused.
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def db_engine_options():
            return {"pool_size": 1, "max_overflow": 0}
        """
    )
    result = project.run()
    # The first test's commit wrote no table: nothing escaped, so nothing is reported; what
    # matters is what the next tests find on the pooled connection.
    expected = {
        "postgresql": dict(passed=3),
        "sqlite": dict(passed=2, skipped=1),
    }
    result.assert_outcomes(**expected[project.backend.name])
