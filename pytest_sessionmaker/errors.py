"""The plugin's exceptions; they share one base so users can catch them together."""


class SessionmakerError(Exception):
    """Base class of every error raised by pytest-sessionmaker."""


class DatabaseUnavailable(SessionmakerError):
    """The configured database cannot be reached or prepared."""


class SchemaConflict(SessionmakerError):
    """A table the plugin would create already exists and belongs to someone else."""


class IsolationBreach(SessionmakerError):
    """A test made work permanent behind the plugin's back."""
