"""The isolation semantics of the core issue, on SQLite and PostgreSQL, run as a user runs them."""

from __future__ import annotations

from conftest import Project


def test_a_commit_is_invisible_to_the_next_test_in_either_order(project: Project) -> None:
    project.write_tests(
        """
        import pytest
        from sqlalchemy import func, select
        from models import User

        @pytest.mark.parametrize("order", [1, 2])
        def test_commit_then_count(db_session, order):
            assert db_session.scalar(select(func.count()).select_from(User)) == 0
            db_session.add(User(name="alice"))
            db_session.commit()
            assert db_session.scalar(select(func.count()).select_from(User)) == 1
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result = project.run("-p", "no:randomly", "-k", "2 or 1")
    result.assert_outcomes(passed=2)
