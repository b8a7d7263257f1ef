"""A pyinstrument profile of our rollback mode's suite, written next to the benchmark."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from sessionmaker_bench.environment import unavailable
from sessionmaker_bench.running import environment, run_pytest
from sessionmaker_bench.strategies import BY_KEY
from sessionmaker_bench.suite import BENCHMARKS, write_suite

if TYPE_CHECKING:
    from pathlib import Path

    from sessionmaker_bench.databases import Server
    from sessionmaker_bench.settings import Settings

OUTPUT = BENCHMARKS / "profile-ours.txt"


def profile(settings: Settings, server: Server, workdir: Path) -> str:
    """Profile one run of ``db_session`` tests at the large size; say where the report is."""
    problem = unavailable("pyinstrument")
    if problem is not None:
        return f"profile: {problem}"
    ours = BY_KEY["ours"]
    folder = write_suite(workdir / "profile", ours, settings.sizes[1])
    server.create("profile")
    env = environment(workdir / "tmp", server.url_for("profile"), settings.tables)
    launcher = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--show-all"]
    launcher += ["--outfile", str(OUTPUT), "-m", "pytest"]
    outcome = run_pytest(folder, ours.plugins, env, launcher=launcher)
    if outcome.problem is not None:
        return f"profile: failed ({outcome.problem})"
    return f"profile of our rollback mode written to {OUTPUT}"
