"""A run-wide problem, reported once.

When the run's database cannot be prepared (a db_metadata typo, a foreign ``<name>_test``
database, an unreachable server), pytest caches the session fixture's failure and raises it again
in every test that needs it: the same sentence, and its traceback, once per test. Instead, the
first database test fails with the whole sentence, and each later one with a short reference to
it, before any of its fixtures is set up. Nothing of this exists until such a failure: a run
whose database is fine pays nothing for it.
"""

from __future__ import annotations

import pytest

PLUGIN_NAME = "sessionmaker-setup-failure"


class RunWideFailure:
    """Registered as a plugin at the first failure; fails every later database test."""

    def __init__(self, database_item: pytest.StashKey[bool]) -> None:
        self.database_item = database_item
        self.first: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.first is None and report.when == "setup" and report.failed:
            self.first = report.nodeid

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if item.stash.get(self.database_item, False):
            pytest.fail(short_reference(self.first), pytrace=False)


def short_reference(first: str | None) -> str:
    where = f"the error of {first}" if first else "the first error"
    return f"The database could not be prepared for this run: see {where} above."


def report_once(config: pytest.Config, database_item: pytest.StashKey[bool]) -> None:
    """Called as the run's database set-up fails: later database tests refer to this one."""
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(RunWideFailure(database_item), PLUGIN_NAME)
