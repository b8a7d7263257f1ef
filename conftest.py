"""Project-wide test settings: inner pytest runs must not inherit this run's configuration."""

from __future__ import annotations

import pytest

PLUGIN_ENVIRONMENT = ("PYTEST_DB_URL", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")


@pytest.fixture(autouse=True)
def _isolated_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like pytest-django's own suite: the plugin's variables reach inner runs only when a test
    sets them itself."""
    for name in PLUGIN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
