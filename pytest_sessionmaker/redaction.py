"""Secrets out of pytest's own reports: a traceback shows frame locals (with --showlocals, or
``--tb=long`` in some frames), and SQLAlchemy's frames hold the password in plain text (the
connection parameters; a URL's repr hides ``user:password@`` but not ``?password=``).

The plugin's own messages go through ``errors.scrub`` already; this catches what pytest renders
from frames the plugin does not own. Registered only when the run has a secret to hide, so a
run without one pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from pytest_sessionmaker.errors import knows_secrets, scrub, shows_known_secret

if TYPE_CHECKING:
    from collections.abc import Generator

PLUGIN_NAME = "sessionmaker-report-scrubber"


class ScrubbedCrash(NamedTuple):
    """Where the failure happened, for pytest's one-line summaries (its own reprcrash has the
    same attributes)."""

    path: str
    lineno: int
    message: str


class ScrubbedRepr:
    """A failure's rendered report, scrubbed. pytest prints it with ``toterminal``, sends it to
    the xdist controller as text, and takes the short summary's message from ``reprcrash``."""

    def __init__(self, text: str, crash: ScrubbedCrash | None) -> None:
        self.text = text
        self.reprcrash = crash

    def toterminal(self, out: Any) -> None:
        out.line(self.text)

    def __str__(self) -> str:
        return self.text


class ReportScrubber:
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed and report.longrepr is not None:
            text = str(report.longrepr)
            # Only a report showing a secret is touched (scrub would also rewrite a test's
            # own ``password = ...`` source lines).
            if shows_known_secret(text):
                crash = getattr(report.longrepr, "reprcrash", None)
                report.longrepr = ScrubbedRepr(  # type: ignore[assignment]
                    scrub(text),
                    None
                    if crash is None
                    else ScrubbedCrash(str(crash.path), crash.lineno, scrub(crash.message)),
                )
        return report


def hide_secrets_in_reports(config: pytest.Config) -> None:
    """Scrub failure reports from now on, once the run knows a secret."""
    if knows_secrets() and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(ReportScrubber(), PLUGIN_NAME)
