"""A throwaway PostgreSQL for runs with no URL configured, shared by all xdist workers.

The server is run by pytest-postgresql's executor and its database made by its janitor; this
module only decides when to start it (the first test that needs it), who shares it (every
process of one run, found through a state file keyed by xdist's testrunuid) and when it stops
(at the end of the run, in the process that ends last: xdist's controller, or the only one).
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import stat
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy import URL

RUN_ID_KEY = pytest.StashKey[str]()
DATABASE_NAME = "pytest_sessionmaker"
UNPRIVILEGED_USER = "postgres"
SERVER_USER = "postgres"

PG_CTL_LOCATIONS = (
    "/usr/lib/postgresql/*/bin/pg_ctl",
    "/usr/pgsql-*/bin/pg_ctl",
    "/usr/local/pgsql/bin/pg_ctl",
    "/opt/homebrew/opt/postgresql*/bin/pg_ctl",
    "/usr/local/opt/postgresql*/bin/pg_ctl",
    "/Applications/Postgres.app/Contents/Versions/*/bin/pg_ctl",
)

MISSING_BINARIES = (
    "No database URL is configured, so the plugin would start a throwaway PostgreSQL, but it "
    "cannot find pg_ctl (looked in {places}). Install "
    "PostgreSQL (Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql), "
    "or choose a database with --db-url (e.g. --db-url sqlite://), $PYTEST_DB_URL or the "
    "db_url ini key."
)


def _version_key(path: str) -> tuple[int, ...]:
    digits = [int(part) for part in Path(path).parts if part.isdigit()]
    return tuple(digits) or (0,)


def _configured_pg_ctl(config: pytest.Config) -> str | None:
    """pytest-postgresql's own --postgresql-exec / postgresql_exec, when the user set it."""
    from pytest_postgresql.plugin import _DEFAULT_POSTGRESQL_EXEC

    chosen = config.getoption("postgresql_exec", default=None)
    if chosen is None:
        try:
            ini = config.getini("postgresql_exec")
        except ValueError:  # its plugin is not loaded (-p no:pytest_postgresql)
            return None
        chosen = ini if ini and ini != _DEFAULT_POSTGRESQL_EXEC else None
    return str(chosen) if chosen else None


def find_pg_ctl(config: pytest.Config) -> str:
    """pg_ctl as configured for pytest-postgresql, else from PATH, pg_config, or the usual
    install places (newest version first)."""
    configured = _configured_pg_ctl(config)
    if configured is not None:
        if Path(configured).is_file():
            return configured
        raise DatabaseUnavailable(
            MISSING_BINARIES.format(
                places=f"{configured} (from --postgresql-exec / postgresql_exec)"
            )
        )
    found = shutil.which("pg_ctl")
    if found:
        return found
    pg_config = shutil.which("pg_config")
    if pg_config:
        import subprocess

        bindir = subprocess.run(  # noqa: S603 - fixed argument list
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        candidate = Path(bindir, "pg_ctl")
        if candidate.is_file():
            return str(candidate)
    candidates = [path for pattern in PG_CTL_LOCATIONS for path in glob.glob(pattern)]
    if candidates:
        return max(candidates, key=_version_key)
    places = "PATH, pg_config --bindir, " + ", ".join(PG_CTL_LOCATIONS)
    raise DatabaseUnavailable(MISSING_BINARIES.format(places=places))


def ensure_run_id(config: pytest.Config) -> None:
    """Fix the run's id before xdist starts its workers, so the controller knows it too.

    xdist hands its ``--testrunuid`` to every worker and makes one up when it is not given; by
    choosing it first the controller (which stops the server) and the workers agree on it.
    """
    if hasattr(config, "workerinput"):
        return
    if hasattr(config.option, "testrunuid"):
        if config.option.testrunuid is None:
            config.option.testrunuid = uuid.uuid4().hex
        run_id = config.option.testrunuid
    else:
        run_id = uuid.uuid4().hex
    config.stash[RUN_ID_KEY] = run_id


def _run_dir(config: pytest.Config) -> Path:
    """A directory shared by the processes of this run (and only this run)."""
    run_id = getattr(config, "workerinput", {}).get("testrunuid") or config.stash[RUN_ID_KEY]
    return Path(tempfile.gettempdir(), f"pytest-sessionmaker-{run_id}")


def _unprivileged_pg_ctl(pg_ctl: str, directory: Path) -> tuple[str, pwd.struct_passwd]:
    """As root, a tiny wrapper that runs pg_ctl as the ``postgres`` user.

    PostgreSQL refuses to run as root and pytest-postgresql leaves that to the user (its issues
    #341 and #455). Every pytest-postgresql call goes through the executable it is given, so a
    wrapper that drops privileges before exec'ing pg_ctl makes initdb, start, status and stop
    work unchanged.
    """
    try:
        account = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise DatabaseUnavailable(
            "pytest runs as root and PostgreSQL refuses to run as root; the plugin runs it as "
            f"the {UNPRIVILEGED_USER!r} user, which does not exist here. Create it (useradd "
            f"--system {UNPRIVILEGED_USER}), run pytest as another user, or choose a database "
            "with --db-url."
        ) from None
    wrapper = directory / "pg_ctl"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "os.setgroups([])\n"
        f"os.setgid({account.pw_gid})\n"
        f"os.setuid({account.pw_uid})\n"
        f"os.environ['HOME'] = {account.pw_dir!r}\n"
        f"os.chdir({str(directory)!r})\n"
        f"os.execv({pg_ctl!r}, [{pg_ctl!r}] + sys.argv[1:])\n"
    )
    wrapper.chmod(stat.S_IRWXU)
    return str(wrapper), account


def _executor(state: dict[str, Any]) -> Any:
    from mirakuru.base import ENV_UUID
    from pytest_postgresql.executors import PostgreSQLExecutor

    class SharedPostgreSQLExecutor(PostgreSQLExecutor):
        """Outlives the process that started it: other xdist workers still use it.

        mirakuru kills, at exit, every process carrying its marker variable for the exiting
        process; without the marker the server is stopped only by the explicit pg_ctl stop.
        """

        @property
        def envvars(self) -> dict[str, str]:
            variables = dict(super().envvars)
            variables.pop(ENV_UUID, None)
            return variables

    return SharedPostgreSQLExecutor(
        executable=state["pg_ctl"],
        host="127.0.0.1",
        port=state["port"],
        datadir=state["datadir"],
        unixsocketdir=state["socketdir"],
        logfile=state["logfile"],
        startparams="-w",
        dbname=DATABASE_NAME,
        user=SERVER_USER,
        timeout=60,
    )


def _start(config: pytest.Config, directory: Path) -> dict[str, Any]:
    from port_for import select_random
    from pytest_postgresql.janitor import DatabaseJanitor

    pg_ctl = find_pg_ctl(config)
    server_dir = directory / "server"
    server_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pg_ctl, account = _unprivileged_pg_ctl(pg_ctl, directory)
        os.chown(server_dir, account.pw_uid, account.pw_gid)
    port = select_random()
    state: dict[str, Any] = {
        "pg_ctl": pg_ctl,
        "port": port,
        "datadir": str(server_dir / "data"),
        "socketdir": str(server_dir),
        "logfile": str(server_dir / "postgresql.log"),
    }
    executor = _executor(state)
    try:
        executor.start()
    except Exception as exc:
        log = server_dir / "postgresql.log"
        tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
        raise DatabaseUnavailable(
            f"The throwaway PostgreSQL ({pg_ctl}) did not start: {exc}. {tail.strip()} "
            "Choose a database with --db-url instead (e.g. --db-url sqlite://)."
        ) from None
    DatabaseJanitor(user=SERVER_USER, host="127.0.0.1", port=port, dbname=DATABASE_NAME).init()
    return state


def throwaway_postgresql_url(config: pytest.Config) -> URL:
    """Start the run's server on first call in any process of the run; return its URL."""
    from filelock import FileLock
    from sqlalchemy import URL

    directory = _run_dir(config)
    directory.mkdir(mode=0o755, exist_ok=True)
    state_file = directory / "server.json"
    with FileLock(str(directory / "server.lock")):
        if state_file.exists():
            state = json.loads(state_file.read_text())
        else:
            state = _start(config, directory)
            state_file.write_text(json.dumps(state))
    return URL.create(
        "postgresql+psycopg",
        username=SERVER_USER,
        host="127.0.0.1",
        port=state["port"],
        database=DATABASE_NAME,
    )


def stop_throwaway_server(config: pytest.Config) -> None:
    """At the end of the run (in xdist's controller, or the only process), stop and remove it."""
    if hasattr(config, "workerinput"):
        return
    directory = _run_dir(config)
    state_file = directory / "server.json"
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    executor = _executor(state)
    try:
        executor.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
