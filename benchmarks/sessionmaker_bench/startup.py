"""What the plugin costs runs that use no database, and what pytest-xdist buys.

Start-up: a suite of 1000 empty tests (``--startup-tests``), run as plain pytest, with the
plugin and nothing configured, with a URL configured, and with pytest-postgresql's plugin loaded
too (installing pytest-sessionmaker installs pytest-postgresql, whose plugin then autoloads).
Wall time, interleaved runs; or, with ``--callgrind``, instructions executed under valgrind,
which a busy machine does not disturb. xdist: our rollback suite at ``--xdist-tests`` tests with
``-n 0`` and ``-n 2``, whole-process wall time, start-up of the workers included.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sessionmaker_bench.running import PYTEST, environment, run_pytest
from sessionmaker_bench.strategies import BY_KEY
from sessionmaker_bench.suite import write_suite

if TYPE_CHECKING:
    from pathlib import Path

    from sessionmaker_bench.databases import Server
    from sessionmaker_bench.settings import Settings

OURS = "pytest_sessionmaker.plugin"
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "plain pytest": ((), False),
    "+ plugin, nothing configured": ((OURS,), False),
    "+ plugin, db_url configured": ((OURS,), True),
    "+ plugin + pytest-postgresql's": (("pytest_postgresql.plugin", OURS), False),
}


@dataclass(frozen=True)
class Variant:
    """One start-up row: wall seconds per run, or instructions (one callgrind run)."""

    label: str
    values: list[float]
    unit: str
    problem: str | None = None


def startup(settings: Settings, server: Server, workdir: Path) -> list[Variant]:
    folder = write_suite(workdir / "startup", BY_KEY["baseline"], settings.startup_tests)
    url = server.url_for("startup")
    values: dict[str, list[float]] = {label: [] for label in VARIANTS}
    problems: dict[str, str] = {}
    runs = 1 if settings.callgrind else settings.startup_runs
    if settings.callgrind and shutil.which("valgrind") is None:
        return [
            Variant(label, [], "instructions", "valgrind is not installed") for label in VARIANTS
        ]
    # Uncounted: compile and cache the test modules.
    run_pytest(folder, (), environment(workdir / "tmp", None, settings.tables))
    for number in range(runs):
        labels = list(VARIANTS)
        shift = number % len(labels)
        for label in labels[shift:] + labels[:shift]:
            plugins, configured = VARIANTS[label]
            env = environment(workdir / "tmp", url if configured else None, settings.tables)
            if settings.callgrind:
                count = instructions(folder, plugins, env, workdir / "callgrind.out")
                if count is None:
                    problems[label] = "callgrind failed"
                else:
                    values[label].append(count)
                continue
            outcome = run_pytest(folder, plugins, env)
            if outcome.problem is not None:
                problems[label] = outcome.problem
            else:
                values[label].append(outcome.wall)
    unit = "instructions" if settings.callgrind else "s"
    return [Variant(label, values[label], unit, problems.get(label)) for label in VARIANTS]


def instructions(
    folder: Path, plugins: tuple[str, ...], env: dict[str, str], output: Path
) -> float | None:
    """Instructions executed by one pytest run under callgrind, from its output file."""
    launcher = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={output}", *PYTEST]
    if run_pytest(folder, plugins, env, launcher=launcher).problem is not None:
        return None
    for line in output.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return float(line.split()[1])
    return None


def xdist(settings: Settings, server: Server, workdir: Path) -> dict[str, list[float]]:
    """Walls of our rollback suite with -n 0 and -n N, interleaved; empty lists if it failed."""
    ours = BY_KEY["ours"]
    folder = write_suite(workdir / "xdist", ours, settings.xdist_tests)
    server.create("xdist")
    env = environment(workdir / "tmp", server.url_for("xdist"), settings.tables)
    plugins = (*ours.plugins, "xdist.plugin")
    options = {
        "-n 0": ("-n", "0"),
        f"-n {settings.xdist_workers}": ("-n", str(settings.xdist_workers)),
    }
    walls: dict[str, list[float]] = {label: [] for label in options}
    run_pytest(folder, plugins, env, ("-n", "0"))
    for number in range(settings.rounds):
        labels = list(options) if number % 2 == 0 else list(options)[::-1]
        for label in labels:
            outcome = run_pytest(folder, plugins, env, options[label])
            if outcome.problem is not None:
                print(f"xdist {label} FAILED: {outcome.problem}", flush=True)
                return {label: [] for label in options}
            print(
                f"xdist round {number + 1}/{settings.rounds}: {label} {outcome.wall:.2f} s",
                flush=True,
            )
            walls[label].append(outcome.wall)
    return walls
