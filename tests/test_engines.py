"""Direct tests of the engine's pool reset, where a pytester run would hide the sequence."""

from __future__ import annotations

from sqlalchemy import make_url, text

from pytest_sessionmaker.dialects import support_for_url
from pytest_sessionmaker.engines import create_test_engine


def test_psycopg_prepared_statements_survive_the_pool_reset(postgresql_server: str) -> None:
    url = make_url(postgresql_server)
    engine = create_test_engine(url, {"pool_size": 1, "max_overflow": 0}, support_for_url(url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.connect() as connection:
            for _ in range(6):  # psycopg prepares the statement after 5 executions
                connection.execute(text("SELECT 2"))
            connection.exec_driver_sql("SET statement_timeout = 999")
            connection.commit()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 2")).scalar() == 2
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
    finally:
        engine.dispose()
