"""Flask-SQLAlchemy 3.x joins the test (issue 14): db.session and Model.query run on the test's
connection, bind keys included, its engines are checked, and everything is put back."""

from __future__ import annotations

import textwrap

import pytest

from helpers import Project, derived_test_url

FSA_APP = """
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

db = SQLAlchemy()


class User(db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Event(db.Model):
    __bind_key__ = "audit"
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(String(50))


MAKER = db.session.session_factory
ORIGINAL = (MAKER.class_, dict(MAKER.kw))


def create_app(url, audit_url=None):
    app = Flask("fsa_app")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_BINDS"] = {"audit": audit_url or url}
    db.init_app(app)
    return app
"""

CONFTEST = """
from pathlib import Path

import pytest

from fsa_app import create_app


@pytest.fixture(scope="session")
def app(db_engine):
    return create_app(db_engine.url.render_as_string(hide_password=False))


def pytest_sessionfinish(session):
    import fsa_app

    restored = (fsa_app.MAKER.class_, fsa_app.MAKER.kw) == fsa_app.ORIGINAL
    Path(__file__).with_name("factory_state.txt").write_text(
        "restored" if restored else f"changed: {fsa_app.MAKER.class_!r} {fsa_app.MAKER.kw!r}"
    )
"""

TESTS = """
from sqlalchemy import func, select
from fsa_app import Event, User, db


def test_db_session_commits_into_the_test_transaction(app, db_session):
    with app.app_context():
        db.session.add(User(name="alice"))
        db.session.add(Event(what="registered"))
        db.session.commit()
        assert User.query.count() == 1
        assert Event.query.count() == 1
        assert db.session.get_bind() is db_session.connection()
    assert db_session.scalar(select(func.count()).select_from(User)) == 1
    assert db_session.scalar(select(func.count()).select_from(Event)) == 1


def test_the_next_test_starts_empty(app, db_session):
    with app.app_context():
        assert User.query.count() == 0
        assert db.session.scalar(select(func.count()).select_from(Event)) == 0


def test_a_rollback_of_db_session_keeps_the_tests_rows(app, db_session):
    db_session.add(User(name="kept"))
    db_session.commit()
    with app.app_context():
        db.session.add(User(name="dropped"))
        db.session.flush()
        db.session.rollback()
        assert [user.name for user in User.query.all()] == ["kept"]


def test_no_app_context_at_all(db_session):
    assert db_session.scalar(select(func.count()).select_from(User)) == 0
"""


@pytest.fixture
def fsa_project(project: Project) -> Project:
    project.pytester.makepyfile(fsa_app=FSA_APP)
    project.pytester.makeconftest(CONFTEST)
    return project


@pytest.mark.parametrize("named", ["fsa_app:db", "fsa_app:db.session"])
def test_db_session_and_model_query_run_in_the_test_transaction_with_bind_keys(
    fsa_project: Project, named: str
) -> None:
    fsa_project.write_ini(db_metadata="fsa_app:db", db_sessionmakers=named)
    fsa_project.write_tests(TESTS)
    result = fsa_project.run()
    result.assert_outcomes(passed=4)
    assert (fsa_project.pytester.path / "factory_state.txt").read_text() == "restored"


def test_a_flask_sqlalchemy_app_on_another_database_stops_the_run_before_any_write(
    fsa_project: Project,
) -> None:
    fsa_project.write_ini(db_metadata="fsa_app:db", db_sessionmakers="fsa_app:db")
    elsewhere = fsa_project.pytester.path / "elsewhere.db"
    fsa_project.pytester.makeconftest(
        CONFTEST
        + textwrap.dedent(
            f"""
            @pytest.fixture(scope="session")
            def other_app():
                return create_app({f"sqlite:///{elsewhere}"!r})
            """
        )
    )
    fsa_project.write_tests(
        """
        from fsa_app import User, db

        def test_writes(other_app, db_session):
            with other_app.app_context():
                db.create_all()
                db.session.add(User(name="alice"))
                db.session.commit()

        def test_never_runs(db_session):
            pass
        """
    )
    result = fsa_project.run()
    # The test that pushed the app's context fails with the sentence, then the run stops.
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ApplicationElsewhere: The application's * of the Flask app 'fsa_app' "
            "(Flask-SQLAlchemy) points at sqlite:///*elsewhere.db, not at the test database*",
            "*Interrupted: The application's * of the Flask app 'fsa_app'*",
        ]
    )
    assert not elsewhere.exists()


def test_a_bind_key_on_another_database_stops_the_run_too(fsa_project: Project) -> None:
    fsa_project.write_ini(db_metadata="fsa_app:db", db_sessionmakers="fsa_app:db")
    audit = fsa_project.pytester.path / "audit.db"
    fsa_project.pytester.makeconftest(
        CONFTEST.replace(
            "create_app(db_engine.url.render_as_string(hide_password=False))",
            f"create_app(db_engine.url.render_as_string(hide_password=False), "
            f"{f'sqlite:///{audit}'!r})",
        )
    )
    fsa_project.write_tests(
        """
        def test_uses_the_app(app, db_session):
            with app.app_context():
                pass
        """
    )
    result = fsa_project.run()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*engine of bind key 'audit' of the Flask app 'fsa_app'*"])
    assert not audit.exists()


def test_a_plain_test_cannot_use_db_session(
    fsa_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Here the app reads its URL from the environment, so the app fixture is no database
    # fixture and a test requesting only it is a plain test.
    monkeypatch.setenv("APP_DATABASE_URL", derived_test_url(fsa_project.backend.url))
    fsa_project.pytester.makeconftest(
        CONFTEST.replace(
            "def app(db_engine):\n    return create_app(db_engine.url.render_as_string("
            "hide_password=False))",
            "def app():\n    import os\n    return create_app(os.environ['APP_DATABASE_URL'])",
        )
    )
    fsa_project.write_ini(db_metadata="fsa_app:db", db_sessionmakers="fsa_app:db")
    fsa_project.write_tests(
        """
        from fsa_app import User, db

        def test_database(app, db_session):
            with app.app_context():
                assert User.query.count() == 0

        def test_plain(app):
            with app.app_context():
                User.query.count()
        """
    )
    result = fsa_project.run()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*DatabaseBlocked: The application's session factory fsa_app:db (db_sessionmakers) was*"]
    )
