from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlmodel
from fastapi.testclient import TestClient

from todo.database import get_db
from todo.main import app


@pytest.fixture(scope="session")
def db_session_options() -> dict[str, Any]:
    # The plugin's sessions are SQLModel sessions, as the application's are (session.exec).
    return {"class_": sqlmodel.Session}


@pytest.fixture
def client(db_session_dependency: Callable[[], Iterator[sqlmodel.Session]]) -> Iterator[TestClient]:
    # Each request gets a session of the test's transaction instead of Session(engine).
    app.dependency_overrides[get_db] = db_session_dependency
    try:
        with TestClient(app) as client:
            yield client
    finally:
        app.dependency_overrides.clear()
