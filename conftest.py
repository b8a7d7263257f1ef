"""Project-wide test settings: inner pytest runs must not inherit this run's configuration."""

from __future__ import annotations

import pytest

from helpers import SQLALCHEMY_DEPRECATIONS_FAIL, inner_addopts

PLUGIN_ENVIRONMENT = ("PYTEST_DB_URL", "PYTEST_PLUGINS")
# Where it is set (the machines this project's CI runs on set it), every inner process would
# rewrite and compile the asserts of every plugin module anew: about half a second each, with no
# effect on what is tested. Inner runs may write their bytecode caches.
NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"

# Inner runs load only the plugins they ask for (helpers.INNER_BLOCKED_PLUGINS). SQLAlchemy's
# deprecation warnings are errors there too, as under this suite's own filterwarnings: a
# deprecated call of the plugin's (Result.tuples() was one under SQLAlchemy 2.1) fails the
# inner run.
INNER_ADDOPTS = inner_addopts(SQLALCHEMY_DEPRECATIONS_FAIL)


@pytest.fixture(autouse=True)
def _isolated_inner_runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like pytest-django's own suite: the plugin's variables reach inner runs only when a test
    sets them itself."""
    for name in (*PLUGIN_ENVIRONMENT, NO_BYTECODE):
        monkeypatch.delenv(name, raising=False)
    if "pytester" in request.fixturenames:
        # pytester clears PYTEST_ADDOPTS when it is set up, so it is set after that.
        request.getfixturevalue("pytester")
        monkeypatch.setenv("PYTEST_ADDOPTS", INNER_ADDOPTS)
