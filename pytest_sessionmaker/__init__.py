"""Per-test SQLAlchemy sessions that are rolled back, even when the code under test commits."""

from pytest_sessionmaker.blocker import DatabaseBlocked, DatabaseBlocker
from pytest_sessionmaker.errors import (
    DatabaseUnavailable,
    IsolationBreach,
    MigrationFailed,
    SchemaConflict,
    SessionmakerError,
    SessionmakerWarning,
)
from pytest_sessionmaker.queries import QueryRecorder, RecordedStatement, is_transaction_control
from pytest_sessionmaker.query_limits import AssertNumQueries

__all__ = [
    "AssertNumQueries",
    "DatabaseBlocked",
    "DatabaseBlocker",
    "DatabaseUnavailable",
    "IsolationBreach",
    "MigrationFailed",
    "QueryRecorder",
    "RecordedStatement",
    "SchemaConflict",
    "SessionmakerError",
    "SessionmakerWarning",
    "is_transaction_control",
]
