from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlmodel
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine


@pytest.fixture(scope="session")
def app(db_engine: Engine) -> Iterator[FastAPI]:
    # todo.database reads its URL when it is imported: point it at the test database first,
    # import the application after (never at the top of a test module or of this file).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TODO_DATABASE_URL", db_engine.url.render_as_string(hide_password=False))
        from todo.main import app

        yield app


@pytest.fixture(scope="session")
def db_application_engines(app: FastAPI) -> list[Engine]:
    # The engine the application made: the plugin checks it reaches the test database.
    from todo.database import engine

    return [engine]


@pytest.fixture(scope="session")
def db_session_options() -> dict[str, Any]:
    # The plugin's sessions are SQLModel sessions, as the application's are (session.exec).
    return {"class_": sqlmodel.Session}


@pytest.fixture
def client(
    app: FastAPI, db_session_dependency: Callable[[], Iterator[sqlmodel.Session]]
) -> Iterator[TestClient]:
    from todo.database import get_db

    # Each request gets a session of the test's transaction instead of Session(engine).
    app.dependency_overrides[get_db] = db_session_dependency
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.dependency_overrides.clear()
