"""The virtualenv of peers: the plugin and what it is compared with, kept out of the project's.

``benchmarks/.venv`` is made on first use with the plugin's ``bench`` extra (pytest-sqla,
pytest-postgresql, pytest-xdist, pyinstrument), and the benchmark re-runs itself with that
virtualenv's interpreter, so starting it needs only the standard library.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from sessionmaker_bench.suite import REPO

DEFAULT_VENV = REPO / "benchmarks" / ".venv"
CHILD_MARK = "PYTEST_SESSIONMAKER_BENCH_CHILD"
REQUIRED = (
    "pytest_sessionmaker",
    "pytest_postgresql",
    "xdist",
    "pyinstrument",
    "psycopg",
    "pymysql",
)
OPTIONAL = ("pytest_sqla",)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def missing_modules(python: Path, modules: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib.util\n"
        f"print(' '.join(m for m in {modules!r} if importlib.util.find_spec(m) is None))"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return result.stdout.split()


def prepare_venv(venv: Path) -> None:
    """Create ``venv`` and install the plugin with its ``bench`` extra into it.

    When the whole extra cannot be installed, pytest-sqla is tried on its own last: the other
    strategies still run, and its row says why it is missing.
    """
    python = venv_python(venv)
    if not python.exists():
        print(f"creating {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not missing_modules(python, REQUIRED + OPTIONAL):
        return
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    print(f"installing the plugin and its peers into {venv} ...", flush=True)
    if subprocess.run([*pip, "-e", f"{REPO}[bench]"], check=False).returncode == 0:
        return
    subprocess.run([*pip, "-e", str(REPO), "pytest-xdist>=3.5", "pyinstrument>=4.6"], check=True)
    with (venv / "pytest-sqla-install.log").open("w") as log:
        subprocess.run([*pip, "pytest-sqla"], stdout=log, stderr=subprocess.STDOUT, check=False)


def run_in_venv(venv: Path, script: Path, arguments: list[str]) -> int | None:
    """Run the benchmark again in ``venv``; None when this already is that run."""
    if os.environ.get(CHILD_MARK):
        return None
    prepare_venv(venv)
    env = dict(os.environ, **{CHILD_MARK: "1"})
    command = [str(venv_python(venv)), str(script), *arguments]
    return subprocess.run(command, env=env, check=False).returncode


def unavailable(module: str) -> str | None:
    """Why ``module`` cannot be used in this interpreter, or None when it can."""
    if importlib.util.find_spec(module) is not None:
        return None
    log = Path(sys.prefix) / f"{module.replace('_', '-')}-install.log"
    lines = [line for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    reason = f": {lines[-1][:120]}" if lines else ""
    return f"{module} is not installed{reason}"
