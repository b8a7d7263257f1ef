"""One case of a parametrized test marked db_commit; its siblings use no database."""

import pytest


@pytest.mark.parametrize(
    "case", ["plain", pytest.param("committing", marks=pytest.mark.db_commit), "other"]
)
def test_cases(case):
    assert case in ("plain", "committing", "other")
