"""Other threads in a rolled-back test (issue 14): a FastAPI TestClient's worker threads and the
test's own threads use the test's connection, one statement at a time, and every session the
application's factories made in them is closed when the test ends."""

from __future__ import annotations

import pytest

from helpers import AppDatabase, Project

API = """
from pathlib import Path

from fastapi import FastAPI, HTTPException
from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import scoped_session, sessionmaker

from models import User

engine = create_engine(f"sqlite:///{Path(__file__).with_name('app.db')}")
# Thread-local, and never removed: each worker thread keeps its session from request to request.
Session = scoped_session(sessionmaker(engine))
app = FastAPI()


@app.post("/users/{name}")
def add_user(name: str):
    Session.add(User(name=name))
    try:
        Session.commit()
    except IntegrityError:
        Session.rollback()
        raise HTTPException(409, "taken") from None
    return {"name": name}


@app.get("/users")
def list_users():
    return Session.scalars(select(User.name).order_by(User.id)).all()
"""

TESTS = """
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import api
from models import User


@pytest.fixture(scope="module")
def client():
    # Module-scoped: the same worker threads serve every test.
    with TestClient(api.app) as client:
        yield client


def test_a_request_commits_into_the_test_transaction(client, db_session):
    assert client.post("/users/alice").status_code == 200
    assert client.get("/users").json() == ["alice"]
    assert db_session.scalars(select(User.name)).all() == ["alice"]


@pytest.mark.parametrize("round", range(6))
def test_each_test_starts_clean_in_the_same_worker_threads(client, db_session, round):
    assert client.get("/users").json() == []
    assert client.post(f"/users/user{round}").status_code == 200
    assert client.post(f"/users/user{round}").status_code == 409
    assert client.get("/users").json() == [f"user{round}"]


def test_the_test_holds_a_transaction_open_while_a_request_runs(client, db_session):
    db_session.add(User(name="from the test"))
    db_session.flush()
    assert client.post("/users/from the api").status_code == 200
    names = db_session.scalars(select(User.name).order_by(User.id)).all()
    assert names == ["from the test", "from the api"]


def test_a_thread_of_the_test_writes_through_the_application(db_session):
    seen = []

    def work():
        api.Session.add(User(name="from a thread"))
        api.Session.commit()
        seen.extend(api.Session.scalars(select(User.name)))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == ["from a thread"]
    assert db_session.scalars(select(User.name)).all() == ["from a thread"]


def test_the_last_test_starts_clean(client, db_session):
    assert client.get("/users").json() == []
    assert db_session.scalars(select(User.name)).all() == []
"""


def test_worker_threads_share_the_test_connection_and_start_each_test_clean(
    any_project: Project,
) -> None:
    any_project.pytester.makepyfile(api=API)
    app_database = AppDatabase(any_project.pytester.path / "app.db")
    any_project.write_ini(db_sessionmakers="api:Session")
    any_project.write_tests(TESTS)
    # A guard against a deadlock hanging the suite, not a measurement.
    result = any_project.pytester.runpytest_subprocess(timeout=300)
    result.assert_outcomes(passed=10)
    app_database.assert_untouched()


def test_the_fastapi_dependency_helper_works_from_worker_threads(any_project: Project) -> None:
    any_project.pytester.makepyfile(
        api="""
        from fastapi import Depends, FastAPI
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from models import User


        def get_db():
            raise AssertionError("the test overrides this dependency")


        app = FastAPI()


        @app.post("/users/{name}")
        def add_user(name: str, db: Session = Depends(get_db)):
            db.add(User(name=name))
            db.commit()
            return {"name": name}


        @app.get("/users")
        def list_users(db: Session = Depends(get_db)):
            return db.scalars(select(User.name).order_by(User.id)).all()
        """
    )
    any_project.write_tests(
        """
        import pytest
        from fastapi.testclient import TestClient
        from sqlalchemy import select

        import api
        from models import User


        @pytest.fixture
        def client(db_session_dependency):
            api.app.dependency_overrides[api.get_db] = db_session_dependency
            with TestClient(api.app) as client:
                yield client
            api.app.dependency_overrides.clear()


        @pytest.mark.parametrize("round", range(3))
        def test_requests_commit_into_the_test_transaction(client, db_session, round):
            assert db_session.scalars(select(User.name)).all() == []
            client.post(f"/users/user{round}")
            assert client.get("/users").json() == [f"user{round}"]
            assert db_session.scalars(select(User.name)).all() == [f"user{round}"]
        """
    )
    result = any_project.pytester.runpytest_subprocess(timeout=300)
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("flavour", ["scoped_session", "dependency"])
def test_sessions_left_open_in_other_threads_are_closed_when_the_test_ends(
    project: Project, flavour: str
) -> None:
    project.pytester.makepyfile(api=API)
    AppDatabase(project.pytester.path / "app.db")
    project.write_ini(db_sessionmakers="api:Session")
    get_session = (
        "api.Session()" if flavour == "scoped_session" else "next(db_session_dependency())"
    )
    project.write_tests(
        f"""
        import threading
        from sqlalchemy import select
        import api
        from models import User

        OPEN = []


        def test_leaves_a_session_open_in_a_thread(db_session_dependency):
            def work():
                session = {get_session}
                session.scalars(select(User.name)).all()
                OPEN.append(session)

            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
            assert OPEN[0].in_transaction()


        def test_it_was_closed(db_session):
            assert not OPEN[0].in_transaction()
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
