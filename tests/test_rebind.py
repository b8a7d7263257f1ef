"""The application's own sessionmaker joins the test (issue 5), on SQLite and PostgreSQL.

The inner projects have an application module whose engine points at a SQLite file of its own,
app.db, holding one row. A write that escaped the test would land there, so every test that
expects isolation checks the file is byte for byte what it was.
"""

from __future__ import annotations

import textwrap

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from helpers import (
    APP,
    BACKEND_INDEPENDENT,
    FACTORIES_RESTORED,
    FACTORY_CHECK,
    MODELS,
    AppDatabase,
    Project,
    factory_state,
    write_app,
)
from pytest_sessionmaker.rebind import bound_to


@pytest.fixture
def app_project(project: Project) -> tuple[Project, AppDatabase]:
    database = write_app(project.pytester)
    project.write_ini(db_sessionmakers="app:SessionLocal app:ScopedSession")
    return project, database


@pytest.mark.parametrize("write", ["register", "register_scoped"])
def test_a_commit_through_the_applications_factory_joins_the_test_and_is_gone_after_it(
    app_project: tuple[Project, AppDatabase], write: str
) -> None:
    project, app_database = app_project
    project.write_tests(
        f"""
        from sqlalchemy import select
        from models import User
        import app

        def test_the_application_commits_into_the_test_transaction(db_session):
            app.{write}("alice")
            assert db_session.scalars(select(User.name)).all() == ["alice"]

        def test_the_next_test_starts_without_the_row(db_session):
            assert db_session.scalars(select(User.name)).all() == []
            app.{write}("alice")
            assert app.names() == ["alice"]
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_a_db_commit_test_binds_the_applications_factories_to_the_engine(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_tests(
        """
        import pytest
        from sqlalchemy import func, select
        from models import User
        import app

        @pytest.mark.db_commit
        def test_commits_for_real(db_engine):
            app.register("alice")
            app.register_scoped("bob")
            # db_engine's pool, through an execution_options() copy that only the test's
            # sessions use (what a query recorder listens to in a db_commit test).
            assert app.SessionLocal.kw["bind"].pool is db_engine.pool
            with db_engine.connect() as other:
                assert other.scalar(select(func.count()).select_from(User)) == 2

        def test_the_next_test_starts_without_the_rows(db_session):
            assert db_session.scalars(select(User.name)).all() == []
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_with_autouse_a_test_requesting_no_db_fixture_still_joins(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_ini(
        db_sessionmakers="app:SessionLocal app:ScopedSession", db_rebind_autouse="true"
    )
    project.write_tests(
        """
        import app

        def test_through_the_application_only():
            app.register("alice")
            app.register_scoped("bob")
            assert app.names() == ["alice", "bob"]

        def test_the_next_test_starts_without_the_rows():
            assert app.names() == []
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_a_fixture_writing_through_the_application_joins_a_test_using_only_db_engine(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_tests(
        """
        import pytest
        import app

        @pytest.fixture
        def registered():
            app.register("early")

        def test_uses_the_engine_and_the_application(registered, db_engine):
            assert app.names() == ["early"]

        def test_the_next_test_starts_without_the_row(db_session):
            assert app.names() == []
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_without_autouse_a_test_using_no_database_opens_none_and_keeps_the_factories(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_tests(
        """
        import app

        def test_without_the_database():
            assert app.SessionLocal.kw["bind"] is app.engine
        """
    )
    result = project.run("--setup-show")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*db_setup*")
    result.stdout.no_fnmatch_line("*SETUP*F db_rebind*")
    app_database.assert_untouched()


def test_sessionmakers_can_be_named_in_code_by_overriding_a_fixture(project: Project) -> None:
    app_database = write_app(project.pytester)
    project.pytester.makeconftest(
        FACTORY_CHECK
        + textwrap.dedent(
            """
            import pytest

            @pytest.fixture(scope="session")
            def db_application_sessionmakers():
                import app

                return [app.SessionLocal]
            """
        )
    )
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User
        import app

        def test_the_application_commits_into_the_test_transaction(db_session):
            app.register("alice")
            assert db_session.scalars(select(User.name)).all() == ["alice"]
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_a_bad_object_from_an_overridden_fixture_fails_the_database_tests_plainly(
    project: Project,
) -> None:
    write_app(project.pytester)
    project.pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def db_application_sessionmakers():
            import app

            return [app.engine]
        """
    )
    project.write_tests(
        """
        def test_uses_the_database(db_session):
            pass

        def test_plain():
            pass
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*db_application_sessionmakers: Engine(*) is an Engine*"])
    assert "Traceback" not in result.stdout.str()


def test_a_test_that_reconfigures_a_factory_is_reported_and_the_factory_restored(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    project.write_tests(
        """
        import app

        def test_reconfigures(db_session):
            app.SessionLocal.configure(bind=app.engine)
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*sessionmaker(*) was re-configured during the test*"])
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


def test_an_engine_in_db_engines_pointing_elsewhere_stops_before_anything_is_written(
    app_project: tuple[Project, AppDatabase],
) -> None:
    project, app_database = app_project
    _write_tests_bypassing_the_factory(project)
    result = project.run()
    # One error, then the run stops: the other test never runs.
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "The application's engine app:engine (db_engines) points at sqlite:///*app.db,"
            " not at the test database *: build the application's database URL from the "
            "db_engine fixture*",
            "*Interrupted: The application's engine app:engine (db_engines) points at*",
        ]
    )
    result.stdout.no_fnmatch_line("*restored*")
    app_database.assert_untouched()


@BACKEND_INDEPENDENT  # how a worker stops the run is the same on every backend
def test_under_xdist_an_engine_pointing_elsewhere_stops_the_run_with_the_sentence(
    app_project: tuple[Project, AppDatabase],
) -> None:
    # pytest.exit in a worker becomes an internal error of xdist's controller that loses the
    # message: the plugin stops the run through session.shouldstop instead.
    project, app_database = app_project
    _write_tests_bypassing_the_factory(project)
    result = project.run_subprocess("-n", "2")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*Interrupted: The application's engine app:engine (db_engines) points at*"]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    app_database.assert_untouched()


def _write_tests_bypassing_the_factory(project: Project) -> None:
    project.write_ini(db_sessionmakers="app:SessionLocal", db_engines="app:engine")
    project.write_tests(
        """
        from sqlalchemy import insert
        from models import User
        import app

        def test_bypasses_the_factory(db_session):
            with app.engine.begin() as connection:
                connection.execute(insert(User).values(name="bob"))

        def test_never_runs(db_session):
            with app.engine.begin() as connection:
                connection.execute(insert(User).values(name="carol"))
        """
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "db_sessionmakers",
            "nowhere:SessionLocal",
            "db_sessionmakers = 'nowhere:SessionLocal': module 'nowhere' cannot be imported*",
        ),
        (
            "db_sessionmakers",
            "app:Missing",
            "db_sessionmakers = 'app:Missing': 'app' has no attribute 'Missing'.",
        ),
        (
            "db_sessionmakers",
            "app",
            "db_sessionmakers = 'app' is not of the form module:attribute.",
        ),
        (
            "db_sessionmakers",
            "app:engine",
            "db_sessionmakers = 'app:engine' is an Engine, not a sessionmaker or scoped_session;*",
        ),
        (
            "db_sessionmakers",
            "app:register",
            "db_sessionmakers = 'app:register' is a function, not a sessionmaker or *",
        ),
        (
            "db_sessionmakers",
            "broken:SessionLocal",
            "db_sessionmakers = 'broken:SessionLocal': importing it raised RuntimeError: no config",
        ),
        ("db_engines", "app:SessionLocal", "db_engines = 'app:SessionLocal' is not an Engine."),
    ],
)
def test_a_bad_application_object_is_a_usage_error_naming_key_and_value(
    pytester: pytest.Pytester, key: str, value: str, message: str
) -> None:
    pytester.makepyfile(models=MODELS, app=APP, broken="raise RuntimeError('no config')")
    pytester.syspathinsert()
    pytester.makeini(f"[pytest]\n{key} = {value}\n")
    pytester.makepyfile(test_app="def test_nothing(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_bound_to_restores_every_keyword_exactly_even_when_the_block_raises() -> None:
    engine = create_engine("sqlite://")
    plain = sessionmaker(engine, expire_on_commit=False, info={"owner": "app"})
    scoped = scoped_session(sessionmaker(binds={object: engine}))
    original = [dict(plain.kw), dict(scoped.session_factory.kw)]
    kw_dicts = [plain.kw, scoped.session_factory.kw]
    scoped()  # a session made before the test, bound to the application's engine
    with (
        engine.connect() as connection,
        pytest.raises(RuntimeError),
        bound_to([plain, scoped, plain], connection),
    ):
        assert not scoped.registry.has()
        for maker in (plain, scoped.session_factory):
            assert maker.kw["bind"] is connection
            assert maker.kw["binds"] is None
            assert maker.kw["join_transaction_mode"] == "create_savepoint"
        assert scoped().get_bind() is connection
        raise RuntimeError
    assert [plain.kw, scoped.session_factory.kw] == original
    assert "join_transaction_mode" not in plain.kw
    assert plain.kw is kw_dicts[0]
    assert scoped.session_factory.kw is kw_dicts[1]
    assert not scoped.registry.has()
    engine.dispose()


def test_bound_to_an_engine_keeps_the_applications_join_mode() -> None:
    engine = create_engine("sqlite://")
    plain = sessionmaker(create_engine("sqlite://"), join_transaction_mode="rollback_only")
    with bound_to([plain], engine, savepoints=False) as binding:
        assert plain.kw["bind"] is engine
        assert plain.kw["join_transaction_mode"] == "rollback_only"
    assert binding.problems == []


def test_a_session_class_that_chooses_its_own_engine_follows_the_test_all_the_same(
    project: Project,
) -> None:
    app_database = write_app(project.pytester)
    project.pytester.makepyfile(
        routing="""
        from sqlalchemy.orm import Session, sessionmaker

        import app


        class RoutingSession(Session):
            # Ignores the bind it is given, as Flask-SQLAlchemy's session class does.
            def get_bind(self, mapper=None, clause=None, **kwargs):
                return app.engine


        SessionLocal = sessionmaker(class_=RoutingSession)
        ORIGINAL = SessionLocal.class_
        """
    )
    project.write_ini(db_sessionmakers="routing:SessionLocal")
    project.write_tests(
        """
        from sqlalchemy import select
        from models import User
        import routing

        def test_commits_into_the_test_transaction(db_session):
            with routing.SessionLocal() as session:
                session.add(User(name="alice"))
                session.commit()
                assert session.get_bind() is db_session.connection()
            assert db_session.scalars(select(User.name)).all() == ["alice"]

        def test_the_next_test_starts_without_the_row(db_session):
            assert db_session.scalars(select(User.name)).all() == []
        """
    )
    project.pytester.makeconftest(
        """
        from pathlib import Path

        def pytest_unconfigure(config):
            import routing

            restored = routing.SessionLocal.class_ is routing.ORIGINAL
            Path(__file__).with_name("class_state.txt").write_text(str(restored))
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    app_database.assert_untouched()
    assert (project.pytester.path / "class_state.txt").read_text() == "True"
