"""MySQL/MariaDB commit implicitly before DDL and TRUNCATE: each is an escape of its test."""

import pytest
from sqlalchemy import insert, select, text

from models import Post, User


@pytest.fixture(scope="module", autouse=True)
def seed(db_engine):
    with db_engine.begin() as connection:
        connection.execute(insert(User).values(id=1, name="seed"))
        connection.execute(insert(Post).values(user_id=1, title="seeded post"))


def everything(session):
    return sorted(session.scalars(select(User.name))), sorted(session.scalars(select(Post.title)))


BASELINE = (["seed"], ["seeded post"])


def test_escape_ddl_commits_the_rows_before_it(db_session):
    db_session.add(User(name="before_ddl"))
    db_session.flush()
    db_session.execute(text("CREATE TABLE scratch_ddl (x INTEGER)"))
    db_session.execute(text("DROP TABLE scratch_ddl"))


def test_clean_after_ddl(db_session):
    assert everything(db_session) == BASELINE


def test_escape_truncate_of_a_seeded_table(db_session):
    db_session.execute(text("DELETE FROM posts"))
    db_session.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
    db_session.execute(text("TRUNCATE TABLE users"))


def test_clean_after_truncate(db_session):
    assert everything(db_session) == BASELINE
