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

__all__ = [
    "DatabaseBlocked",
    "DatabaseBlocker",
    "DatabaseUnavailable",
    "IsolationBreach",
    "MigrationFailed",
    "SchemaConflict",
    "SessionmakerError",
    "SessionmakerWarning",
]
