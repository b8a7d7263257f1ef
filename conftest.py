"""Project-wide test settings: inner pytest runs must not inherit this run's configuration."""

from __future__ import annotations

import pytest

PLUGIN_ENVIRONMENT = ("PYTEST_DB_URL", "PYTEST_PLUGINS")

# Inner runs load only what they ask for: pytest-randomly would reorder them and pytest-asyncio
# would warn about its unset loop scope. A test that needs either passes "-p asyncio" etc.,
# which unblocks it. SQLAlchemy's deprecation warnings are errors there too, as under this
# suite's own filterwarnings: a deprecated call of the plugin's (Result.tuples() was one under
# SQLAlchemy 2.1) fails the inner run.
INNER_ADDOPTS = "-p no:randomly -p no:asyncio -W error::sqlalchemy.exc.SADeprecationWarning"


@pytest.fixture(autouse=True)
def _isolated_inner_runs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like pytest-django's own suite: the plugin's variables reach inner runs only when a test
    sets them itself."""
    for name in PLUGIN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    if "pytester" in request.fixturenames:
        # pytester clears PYTEST_ADDOPTS when it is set up, so it is set after that.
        request.getfixturevalue("pytester")
        monkeypatch.setenv("PYTEST_ADDOPTS", INNER_ADDOPTS)
