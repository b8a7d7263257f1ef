"""Tests marked db_commit commit for real; the plugin restores exactly what they wrote."""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpers import only_on

if TYPE_CHECKING:
    from helpers import Project

SEEDED_CONFTEST = """
import pytest
from sqlalchemy.orm import Session
from models import Post, User

@pytest.fixture(scope="session", autouse=True)
def seed(db_engine):
    with Session(db_engine) as session:
        seed = User(name="seed")
        session.add(seed)
        session.flush()
        session.add(Post(user_id=seed.id, title="seeded post"))
        session.commit()
"""

COMMIT_TESTS = """
import threading
import pytest
from sqlalchemy import create_engine, func, select, update, delete
from sqlalchemy.orm import Session
from models import Post, User

def names(session):
    return sorted(session.scalars(select(User.name)))

@pytest.mark.db_commit
def test_commit_is_visible_to_another_engine_in_a_thread(db_session, db_engine):
    user = User(name="alice")
    db_session.add(user)
    db_session.commit()
    assert user.id == 2  # the seed has id 1 on every backend
    seen = []
    def look():
        other = create_engine(db_engine.url)
        with other.connect() as connection:
            seen.extend(connection.execute(select(User.name)).scalars())
        other.dispose()
    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert sorted(seen) == ["alice", "seed"]

def test_rollback_test_sees_only_the_seed(db_session):
    assert names(db_session) == ["seed"]

@pytest.mark.db_commit
def test_ids_restart_and_seed_edits_are_undone(db_session):
    user = User(name="bob")
    db_session.add(user)
    db_session.commit()
    assert user.id == 2  # the seed has id 1 on every backend
    db_session.execute(update(User).where(User.name == "seed").values(name="renamed"))
    db_session.execute(delete(Post))
    db_session.commit()
    assert names(db_session) == ["bob", "renamed"]

@pytest.mark.db_commit
def test_second_commit_test_sees_clean_tables(db_session):
    assert names(db_session) == ["seed"]
    assert db_session.scalars(select(Post.title)).all() == ["seeded post"]
    user = User(name="carol")
    db_session.add(user)
    db_session.commit()
    assert user.id == 2  # the seed has id 1 on every backend

def test_after_all(db_session):
    assert names(db_session) == ["seed"]
    assert db_session.scalars(select(Post.title)).all() == ["seeded post"]
"""


def test_commit_tests_are_real_and_restored_exactly(any_project: Project) -> None:
    any_project.pytester.makeconftest(SEEDED_CONFTEST)
    any_project.write_tests(COMMIT_TESTS)
    result = any_project.run("--strict-markers")
    result.assert_outcomes(passed=5)


def test_commit_tests_restore_in_any_order(any_project: Project) -> None:
    any_project.pytester.makeconftest(
        SEEDED_CONFTEST
        + """
def pytest_collection_modifyitems(items):
    items.reverse()
"""
    )
    any_project.write_tests(COMMIT_TESTS)
    result = any_project.run("--strict-markers")
    result.assert_outcomes(passed=5)


def test_class_and_module_markers(any_project: Project) -> None:
    any_project.write_tests(
        """
        import pytest
        from sqlalchemy import create_engine, select
        from models import User

        pytestmark = pytest.mark.db_commit

        def committed_elsewhere(url):
            engine = create_engine(url)
            with engine.connect() as connection:
                names = connection.execute(select(User.name)).scalars().all()
            engine.dispose()
            return names

        def test_module_level(db_session, db_engine):
            db_session.add(User(name="m"))
            db_session.commit()
            assert committed_elsewhere(db_engine.url) == ["m"]
        """,
        name="test_module_marker",
    )
    any_project.write_tests(
        """
        import pytest
        from sqlalchemy import create_engine, select
        from models import User

        @pytest.mark.db_commit
        class TestCommits:
            def test_in_class(self, db_session, db_engine):
                db_session.add(User(name="c"))
                db_session.commit()
                engine = create_engine(db_engine.url)
                with engine.connect() as connection:
                    assert connection.execute(select(User.name)).scalars().all() == ["c"]
                engine.dispose()

        def test_unmarked_sees_nothing(db_session):
            assert db_session.scalars(select(User)).all() == []
        """,
        name="test_class_marker",
    )
    result = any_project.run("--strict-markers")
    result.assert_outcomes(passed=3)


def test_a_breach_message_suggests_the_marker(project: Project) -> None:
    project.write_tests(
        """
        from sqlalchemy import insert
        from models import User

        def test_breach(db_engine, db_connection):
            with db_engine.begin() as other:
                other.execute(insert(User).values(name="x"))
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*mark it with @pytest.mark.db_commit*"])


def test_a_commit_test_is_refused_where_it_cannot_be_undone(project: Project) -> None:
    project.write_ini(db_database="as_given", db_schema="none")
    project.write_tests(
        """
        import pytest

        @pytest.mark.db_commit
        def test_refused(db_session):
            pass

        @pytest.mark.db_commit(allow_unrestored=True)
        def test_allowed(db_session):
            pass
        """
    )
    with project.backend.existing_database():
        result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*cannot be undone exactly*allow_unrestored=True*"])


@only_on("any_backend", "postgresql")  # the marker's registration under xdist
def test_commit_tests_under_xdist_with_strict_markers(any_project: Project) -> None:
    any_project.pytester.makeconftest(SEEDED_CONFTEST)
    any_project.write_tests(COMMIT_TESTS)
    result = any_project.run_subprocess("-n", "2", "--strict-markers")
    result.assert_outcomes(passed=5)
