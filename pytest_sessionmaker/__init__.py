"""Per-test SQLAlchemy sessions that are rolled back, even when the code under test commits."""

from pytest_sessionmaker.errors import (
    DatabaseUnavailable,
    IsolationBreach,
    MigrationFailed,
    SchemaConflict,
    SessionmakerError,
)

__all__ = [
    "DatabaseUnavailable",
    "IsolationBreach",
    "MigrationFailed",
    "SchemaConflict",
    "SessionmakerError",
]
