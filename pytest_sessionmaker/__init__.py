"""Per-test SQLAlchemy sessions that are rolled back, even when the code under test commits."""

from pytest_sessionmaker.errors import (
    DatabaseUnavailable,
    IsolationBreach,
    SchemaConflict,
    SessionmakerError,
)
from pytest_sessionmaker.queries import QueryRecorder, RecordedStatement, is_transaction_control
from pytest_sessionmaker.query_limits import AssertNumQueries

__all__ = [
    "AssertNumQueries",
    "DatabaseUnavailable",
    "IsolationBreach",
    "QueryRecorder",
    "RecordedStatement",
    "SchemaConflict",
    "SessionmakerError",
    "is_transaction_control",
]
