"""Per-test SQLAlchemy sessions that are rolled back, even when the code under test commits."""

from pytest_sessionmaker.errors import (
    DatabaseUnavailable,
    IsolationBreach,
    SchemaConflict,
    SessionmakerError,
)
from pytest_sessionmaker.queries import (
    AssertNumQueries,
    QueryRecorder,
    RecordedStatement,
    is_transaction_control,
)

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
