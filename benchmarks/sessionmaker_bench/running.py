"""One pytest process, timed from outside: what a user waits for after pressing enter.

Every run is ``python -m pytest -q -x -p <plugin>... <suite>`` with plugin autoloading off, so
each strategy pays for its own plugins and no other's, in an environment that inherits no
pytest settings. Bytecode may be written, as in a user's checkout: the first (uncounted) run of
each suite compiles and caches its modules, the counted runs find them cached.
"""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sessionmaker_bench.environment import CHILD_MARK

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

TIMEOUT = 900


@dataclass(frozen=True)
class Run:
    wall: float
    """Seconds from starting the process to its exit."""
    cpu: float = 0.0
    """CPU seconds (user + system) of the pytest process and the children it waited for; not
    the database server's. Other work on a shared machine delays a run's wall time much more
    than its CPU time, so the CPU figures show the client's own cost when the walls are noisy."""
    problem: str | None = None
    """Why the run failed, in one line; None when it passed."""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def environment(
    tmp: Path | None, url: str | None, tables: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of one run: nothing inherited from pytest, only the given database.

    ``TMPDIR`` points into the benchmark's own folder, so whatever a run leaves behind (pytest's
    temporary directories, a throwaway server's files) goes when the benchmark ends. With
    ``tmp`` None it is not set, as on most Linux machines: where that changes what is measured
    (the throwaway server keeps its files in memory only when no TMPDIR is set), a run must be
    measured as users run it.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "BENCH_"))
        and key not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", CHILD_MARK)
    }
    env.update(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", BENCH_TABLES=str(tables))
    for name in ("TMPDIR", "TEMP", "TMP"):
        env.pop(name, None)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    if url is not None:
        env.update(BENCH_URL=url, PYTEST_DB_URL=url, PYTEST_SQLA_URL=url)
    env.update(extra or {})
    return env


PYTEST = (sys.executable, "-m", "pytest")


def pytest_command(
    plugins: Sequence[str], arguments: Sequence[str] = (), launcher: Sequence[str] = PYTEST
) -> list[str]:
    """``python -m pytest -q -x -p <plugin>...``: -x stops a failing strategy at once."""
    command = [*launcher, "-q", "-x"]
    for plugin in plugins:
        command += ["-p", plugin]
    return [*command, *arguments]


def run_pytest(
    directory: Path,
    plugins: Sequence[str],
    env: Mapping[str, str],
    arguments: Sequence[str] = (),
    launcher: Sequence[str] = PYTEST,
) -> Run:
    """Run the suite in ``directory``; ``launcher`` starts pytest (under valgrind, a profiler)."""
    command = pytest_command(plugins, arguments, launcher)
    # The benchmark runs one child at a time, so the growth of its children's usage is this one's.
    cpu_before = children_cpu()
    start = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=directory,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Run(time.perf_counter() - start, problem=f"timed out after {TIMEOUT} s")
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu_before
    if result.returncode != 0:
        return Run(wall, cpu, first_problem(result.stdout + result.stderr))
    return Run(wall, cpu)


def first_problem(output: str) -> str:
    """The most telling line of a failed pytest run: an assertion or exception line, else the
    first line of the first error section (``pytest.fail(..., pytrace=False)`` has no ``E``)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("E   ", "INTERNALERROR")) and len(line) > 8:
            return line[:300]
    for header, following in itertools.pairwise(lines):
        if header.startswith("___") and header.endswith("___"):
            return following[:300]
    return (lines[-1] if lines else "no output")[:300]
