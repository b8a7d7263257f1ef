"""factory_boy's SQLAlchemyModelFactory and polyfactory's SQLAlchemyFactory with the plugin
(issue 14): through the application's scoped_session or through db_session, in each of their
persistence modes, everything they create is rolled back."""

from __future__ import annotations

import pytest

from helpers import FACTORIES_RESTORED, AppDatabase, Project, factory_state, write_app

FACTORY_BOY = """
import factory
import pytest
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy import func, select

import app
from models import User

PERSISTENCE = {persistence!r}


class AppUserFactory(SQLAlchemyModelFactory):
    class Meta:
        model = User
        # The application's scoped_session, named in db_sessionmakers: bound to each test.
        sqlalchemy_session = app.ScopedSession
        sqlalchemy_session_persistence = PERSISTENCE

    name = factory.Sequence(lambda n: f"user {{n}}")


class SessionUserFactory(SQLAlchemyModelFactory):
    class Meta:
        model = User
        sqlalchemy_session_persistence = PERSISTENCE

    name = factory.Sequence(lambda n: f"test user {{n}}")


@pytest.fixture
def test_user_factory(db_session):
    # Without a scoped_session of the application: the test's own session, set per test.
    SessionUserFactory._meta.sqlalchemy_session = db_session
    return SessionUserFactory


def count(session):
    session.flush()
    return session.scalar(select(func.count()).select_from(User))


@pytest.mark.parametrize("round", range(2))
def test_the_application_session_factory(db_session, round):
    AppUserFactory.create_batch(2)
    # Every session of the test shares its connection: committed and flushed rows are visible
    # to the application's other factory, rows only added to the session are not.
    assert len(app.names()) == (0 if PERSISTENCE is None else 2)
    assert count(app.ScopedSession) == 2


@pytest.mark.parametrize("round", range(2))
def test_db_session_factory(test_user_factory, db_session, round):
    test_user_factory.create_batch(3)
    assert count(db_session) == 3
"""

# Names from a sequence and keys from the database: polyfactory's random ones may repeat (two
# empty names broke the unique constraint in one run of the suite).
POLYFACTORY = """
import itertools

import pytest
from polyfactory import Use
from polyfactory.factories.sqlalchemy_factory import (
    SQLAlchemyFactory,
    SQLAlchemyPersistenceMethod,
)
from sqlalchemy import func, select

import app
from models import User

NUMBERS = itertools.count()


class AppUserFactory(SQLAlchemyFactory[User]):
    __session__ = app.ScopedSession
    __persistence_method__ = SQLAlchemyPersistenceMethod.{method}
    __check_model__ = False
    __set_primary_key__ = False
    name = Use(lambda: f"user {{next(NUMBERS)}}")


class SessionUserFactory(SQLAlchemyFactory[User]):
    __persistence_method__ = SQLAlchemyPersistenceMethod.{method}
    __check_model__ = False
    __set_primary_key__ = False
    name = Use(lambda: f"test user {{next(NUMBERS)}}")


@pytest.mark.parametrize("round", range(2))
def test_the_application_session_factory(db_session, round):
    AppUserFactory.create_batch_sync(2)
    # polyfactory removes a scoped_session's session after each create: a commit (a savepoint
    # release here) keeps the rows for the test, a flush alone is rolled back with the session.
    expected = 2 if AppUserFactory.__persistence_method__.value == "commit" else 0
    assert db_session.scalar(select(func.count()).select_from(User)) == expected


@pytest.mark.parametrize("round", range(2))
def test_db_session(db_session, round):
    SessionUserFactory.__session__ = db_session
    SessionUserFactory.create_batch_sync(3)
    db_session.flush()
    assert db_session.scalar(select(func.count()).select_from(User)) == 3
"""


@pytest.fixture
def app_project(project: Project) -> tuple[Project, AppDatabase]:
    database = write_app(project.pytester)
    project.write_ini(db_sessionmakers="app:SessionLocal app:ScopedSession")
    return project, database


@pytest.mark.parametrize("persistence", ["commit", "flush", None])
def test_factory_boy_creates_rows_that_are_rolled_back(
    app_project: tuple[Project, AppDatabase], persistence: str | None
) -> None:
    project, app_database = app_project
    project.write_tests(FACTORY_BOY.format(persistence=persistence))
    result = project.run()
    result.assert_outcomes(passed=4)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED


@pytest.mark.parametrize("method", ["COMMIT", "FLUSH"])
def test_polyfactory_creates_rows_that_are_rolled_back(
    app_project: tuple[Project, AppDatabase], method: str
) -> None:
    project, app_database = app_project
    project.write_tests(POLYFACTORY.format(method=method))
    result = project.run()
    result.assert_outcomes(passed=4)
    app_database.assert_untouched()
    assert factory_state(project) == FACTORIES_RESTORED
