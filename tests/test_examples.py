"""The examples in examples/ are run as their users would run them, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from helpers import Backend


def test_the_flask_example_passes_without_touching_the_applications_database(
    pytester: pytest.Pytester, backend: Backend
) -> None:
    # The user-facing examples live in examples/, the suite's inner test modules in tests/examples/.
    pytester.copy_example("../../examples/flask")
    result = pytester.runpytest("--db-url", backend.url)
    result.assert_outcomes(passed=5)
    # The application's engine points at shop.db beside it; SQLite would create the file on
    # the first connection, so its absence shows every request went through the test's.
    assert not (pytester.path / "shop.db").exists()
