"""The run's end in a database it keeps: remove what the plugin put there, without waiting for
ever on what a test left behind."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from pytest_sessionmaker.errors import warn_plainly

if TYPE_CHECKING:
    from pytest_sessionmaker.run import DatabaseRun


def remove_run_objects(run: DatabaseRun, *, drop_tables: bool) -> None:
    """Drop the change log, its triggers and snapshots (and, with ``drop_tables``, the tables
    the run created), in one transaction whose lock waits are limited.

    A test can leave a transaction open on a connection of its own (an application engine, a
    thread); its locks would keep DROP TRIGGER or DROP TABLE waiting for ever. After
    TEARDOWN_LOCK_TIMEOUT seconds the DDL gives up and the run ends with a warning saying what
    is left; the next run cleans it up (snapshots at its start, the plugin's tables by their
    ownership record). A database the run drops whole never gets here: its drop ends the
    test's sessions instead (see databases.py).
    """
    if run.restorer is None and (run.schema is None or not drop_tables):
        return
    # Some statements go to the driver's cursor directly (a batch in one round trip), so the
    # driver's own errors are caught as well as SQLAlchemy's.
    driver_error = run.engine.dialect.loaded_dbapi.Error
    try:
        with run.engine.begin() as connection, run.support.lock_waits_limited(connection):
            if run.restorer is not None:
                run.restorer.uninstall(connection)
            if drop_tables and run.schema is not None:
                run.schema.drop_on(connection)
    except (DBAPIError, driver_error) as exc:
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        left = "the plugin's triggers and change log" + (
            " and the tables it created" if drop_tables and run.schema is not None else ""
        )
        warn_plainly(
            f"The end of the run could not remove {left} from {run.url.database!r}: {reason} "
            "(a test left a transaction open on a connection of its own?). They stay until the "
            "next run, which removes or reuses them."
        )
