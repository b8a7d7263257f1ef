"""One PostgreSQL cluster in a directory: the account it runs as, initdb, start, stop.

The plugin drives the server binaries itself instead of going through pg_ctl or
pytest-postgresql's executor. pg_ctl polls every 100 ms while it starts or stops a server
(measured here: 120 ms to start and 110 ms to stop, against 30 ms and 11 ms when postmaster.pid
is polled every 5 ms), and the executor runs initdb on every start, which a cluster copied from a
template must skip. Its mirakuru base also signalled a process group from ``__del__`` that had
already gone (a ProcessLookupError, an error under ``filterwarnings = error``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sessionmaker.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from pytest_sessionmaker.postgres_install import Binaries

SUPERUSER = "postgres"
UNPRIVILEGED_USER = "postgres"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.005

# macOS has no C.UTF-8; en_US.UTF-8 is always there (pytest-postgresql makes the same choice).
LOCALE = "en_US.UTF-8" if sys.platform == "darwin" else "C.UTF-8"

# Part of the template cache's key: a change here makes a new template.
INITDB_OPTIONS = (
    "--auth=trust",
    f"--username={SUPERUSER}",
    "--encoding=UTF8",
    f"--locale={LOCALE}",
    # One WAL segment of 1 MB instead of 16 MB: 15 MB less to copy for every run.
    "--wal-segsize=1",
)

# The data is thrown away at the end of the run, so nothing needs to survive a crash; a test
# suite's many small commits then cost no disk flushes. TCP on the loopback only: a Unix socket
# path in a deep TMPDIR can exceed the 107 bytes the kernel allows.
THROWAWAY_SETTINGS = (
    ("listen_addresses", "127.0.0.1"),
    ("unix_socket_directories", ""),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("shared_buffers", "32MB"),
    ("logging_collector", "off"),
)


@dataclass(frozen=True)
class Account:
    """The system user the server runs as: pytest's own, or ``postgres`` when pytest is root.

    PostgreSQL refuses to run as root (pytest-postgresql leaves that to the user, its issues
    #341 and #455). As root the plugin starts every server program through subprocess's
    ``user=``/``group=`` with no supplementary groups, so no wrapper program is needed.
    """

    name: str
    uid: int
    gid: int
    home: str
    switch: bool

    def process_options(self) -> dict[str, Any]:
        """subprocess keywords that run a program as this account."""
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def environment(self) -> dict[str, str]:
        """pytest's environment without libpq's variables (PGDATA, PGPORT ... would change what
        the programs do), with this account's HOME."""
        variables = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        if self.switch:
            variables["HOME"] = self.home
        return variables

    def give(self, path: Path) -> None:
        """Make a file or directory the account's (a no-op unless pytest is root)."""
        if self.switch:
            os.chown(path, self.uid, self.gid)


def server_account() -> Account:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, switch=False)
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise DatabaseUnavailable(
            "pytest runs as root and PostgreSQL refuses to run as root, so the plugin runs it as "
            f"the {UNPRIVILEGED_USER!r} user, which does not exist here: create it (useradd "
            f"--system {UNPRIVILEGED_USER}), run pytest as another user, or choose a database "
            "with --db-url."
        ) from None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, switch=True)


def check_reachable(directory: Path, account: Account) -> None:
    """As root, fail early and plainly when the server's account cannot use ``directory``."""
    if not account.switch:
        return
    try:
        subprocess.run(  # noqa: S603 - fixed program
            ["/bin/sh", "-c", 'test -w "$1" && test -x "$1"', "sh", str(directory)],
            cwd=directory,
            check=True,
            capture_output=True,
            **account.process_options(),
        )
    except (OSError, subprocess.CalledProcessError):
        raise DatabaseUnavailable(
            f"The throwaway PostgreSQL runs as the {account.name!r} user (PostgreSQL refuses to "
            f"run as root), which cannot reach the temporary directory {directory.parent}: set "
            "TMPDIR to a directory every user can enter (e.g. TMPDIR=/tmp), or choose a "
            "database with --db-url."
        ) from None


def log_excerpt(logfile: Path) -> str:
    """The server's last complaint, for an error message."""
    try:
        lines = logfile.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for level in ("FATAL:", "PANIC:", "ERROR:"):
        complaints = [line.split(level, 1)[1].strip() for line in lines if level in line]
        if complaints:
            return complaints[-1]
    return lines[-1].strip() if lines else ""


@dataclass(frozen=True)
class Cluster:
    """A data directory, the installation that made it, and the account that runs it."""

    binaries: Binaries
    account: Account
    datadir: Path
    logfile: Path

    def _run(self, command: list[str]) -> None:
        try:
            subprocess.run(  # noqa: S603 - the installation's own programs
                command,
                cwd=self.datadir.parent,
                env=self.account.environment(),
                capture_output=True,
                text=True,
                check=True,
                timeout=START_TIMEOUT,
                **self.account.process_options(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            output = (getattr(exc, "stderr", None) or "").strip().splitlines()
            raise DatabaseUnavailable(
                f"PostgreSQL's {Path(command[0]).name} failed in {self.datadir.parent} "
                f"({output[-1] if output else exc}); choose a database with --db-url instead "
                "(e.g. --db-url sqlite://)."
            ) from None

    def initdb(self) -> None:
        # --no-sync: the cluster is copied or thrown away, flushing it to disk buys nothing.
        self._run([self.binaries.initdb, "-D", str(self.datadir), *INITDB_OPTIONS, "--no-sync"])

    def start(self, port: int) -> None:
        """Start the server in its own session, so a Ctrl-C in the terminal does not reach it
        and it outlives the process that started it (other xdist workers still use it)."""
        settings = [f"-c{name}={value}" for name, value in THROWAWAY_SETTINGS]
        command = [self.binaries.postgres, "-D", str(self.datadir), f"-p{port}", *settings]
        if not self.logfile.exists():
            self.logfile.touch()
            self.account.give(self.logfile)
        # The shell starts the server in the background and reports its pid, so that the
        # server is never a child of this process (no zombie, no Popen left to finalise).
        background = '"$@" </dev/null >>"$PYTEST_SESSIONMAKER_LOG" 2>&1 & echo $!'
        try:
            launched = subprocess.run(  # noqa: S603 - the installation's own program
                ["/bin/sh", "-c", background, "sh", *command],
                cwd=self.datadir.parent,
                env={**self.account.environment(), "PYTEST_SESSIONMAKER_LOG": str(self.logfile)},
                capture_output=True,
                text=True,
                check=True,
                start_new_session=True,
                **self.account.process_options(),
            )
            pid = int(launched.stdout.strip())
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise ServerDidNotStart(str(getattr(exc, "stderr", None) or exc).strip()) from None
        deadline = time.monotonic() + START_TIMEOUT
        while not _pid_file_says_ready(self.datadir, pid):
            if not process_alive(pid) or time.monotonic() > deadline:
                stop_postmaster(self.datadir)
                raise ServerDidNotStart(
                    log_excerpt(self.logfile) or "no message in its log",
                    port_was_taken=_log_says_port_taken(self.logfile),
                )
            time.sleep(POLL_INTERVAL)


class ServerDidNotStart(DatabaseUnavailable):
    """The postmaster exited (or hung) before accepting connections."""

    def __init__(self, detail: str, port_was_taken: bool = False) -> None:
        super().__init__(
            f"The throwaway PostgreSQL did not start ({detail}); choose a database with "
            "--db-url instead (e.g. --db-url sqlite://)."
        )
        self.port_was_taken = port_was_taken


def _log_says_port_taken(logfile: Path) -> bool:
    """Whether the last start failed for its port: another process took the free port found
    between its choice and the server's bind (the FATAL line itself only says that no socket
    could be created)."""
    try:
        attempt = logfile.read_text(errors="replace").rsplit("starting PostgreSQL", 1)[-1]
    except OSError:
        return False
    return "could not bind" in attempt and "Address already in use" in attempt


def _pid_file_says_ready(datadir: Path, pid: int) -> bool:
    """postmaster.pid's eighth line reads "ready" once the server accepts connections
    (PostgreSQL 10 and later; pg_ctl start -w waits for the same)."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: nobody may have reaped it yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def running_postmaster(datadir: Path) -> int | None:
    """The pid of the server running on ``datadir``, read from its postmaster.pid.

    The pid counts only while the process still runs with that data directory on its command
    line: a pid left in a dead server's file may since belong to anything else.
    """
    try:
        pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    if not process_alive(pid):
        return None
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        arguments = subprocess.run(  # noqa: S603 - fixed program
            ["/bin/ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    return pid if str(datadir) in arguments else None


def stop_postmaster(datadir: Path) -> None:
    """Stop the server on ``datadir`` at once, if one runs: an immediate shutdown (SIGQUIT)
    skips the checkpoint, and the data is about to be removed anyway."""
    pid = running_postmaster(datadir)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while process_alive(pid) and (datadir / "postmaster.pid").exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(POLL_INTERVAL)
