from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from blog import create_app


@pytest.fixture(scope="session")
def app(db_engine: Engine) -> Flask:
    # The application's engine must reach the test database: build its URL from db_engine's.
    url = db_engine.url.render_as_string(hide_password=False)
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})


@pytest.fixture
def client(app: Flask, db_rebind: object) -> FlaskClient:
    # db_rebind: this fixture uses the database only through the application.
    return app.test_client()


@pytest.fixture
def app_context(app: Flask, db_rebind: object) -> Iterator[None]:
    """For tests that use db.session, Model.query or the factories directly."""
    with app.app_context():
        yield
