"""The examples in examples/ are run as their users would run them, on real databases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import SQLALCHEMY_DEPRECATIONS_FAIL, inner_addopts

if TYPE_CHECKING:
    from helpers import Backend

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_flask_example_passes_without_touching_the_applications_database(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    pytester.copy_example(str(REPOSITORY / "examples" / "flask"))
    result = pytester.runpytest("--db-url", backend.url)
    result.assert_outcomes(passed=5)
    # The application's engine points at shop.db beside it; SQLite would create the file on
    # the first connection, so its absence shows every request went through the test's.
    assert not (pytester.path / "shop.db").exists()


def test_the_flask_sqlalchemy_example_passes_without_touching_the_applications_database(
    pytester: pytest.Pytester, any_backend: Backend
) -> None:
    pytester.copy_example(str(REPOSITORY / "examples" / "flask_sqlalchemy"))
    result = pytester.runpytest_subprocess("--db-url", any_backend.url)
    result.assert_outcomes(passed=6)
    # Unconfigured, the application would use blog.db (Flask-SQLAlchemy puts a relative SQLite
    # path in the app's instance folder).
    assert not list(pytester.path.rglob("blog.db"))


def test_the_fastapi_example_passes_without_touching_the_applications_database(
    pytester: pytest.Pytester, any_backend: Backend
) -> None:
    pytester.copy_example(str(REPOSITORY / "examples" / "fastapi"))
    result = pytester.runpytest_subprocess("--db-url", any_backend.url)
    result.assert_outcomes(passed=5)
    assert not list(pytester.path.rglob("todo.db"))


def test_the_fastapi_example_imported_too_early_stops_before_writing_anywhere(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    pytester.copy_example(str(REPOSITORY / "examples" / "fastapi"))
    conftest = pytester.path / "tests" / "conftest.py"
    # The mistake the README warns about: the engine is made before the URL is set.
    conftest.write_text(conftest.read_text() + "\nimport todo.main  # noqa: E402, F401\n")
    result = pytester.runpytest_subprocess("--db-url", backend.url)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*The application's engine Engine(sqlite:///todo.db) (db_application_engines) "
            "points at sqlite:///todo.db, not at the test database*"
        ]
    )
    assert not list(pytester.path.rglob("todo.db"))


def test_the_async_fastapi_example_passes_without_touching_the_applications_database(
    pytester: pytest.Pytester, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.copy_example(str(REPOSITORY / "examples" / "fastapi_async"))
    # The suite's inner runs block pytest-asyncio (conftest.py); this example needs it. ("-p
    # asyncio" would unblock it, with a warning its filterwarnings = error makes an error.)
    monkeypatch.setenv(
        "PYTEST_ADDOPTS",
        inner_addopts(SQLALCHEMY_DEPRECATIONS_FAIL, load=("asyncio",)),
    )
    result = pytester.runpytest_subprocess("--db-url", backend.url)
    result.assert_outcomes(passed=5)
    assert not list(pytester.path.rglob("notes.db"))
