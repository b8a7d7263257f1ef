"""Which process owns a throwaway server, and stopping the servers whose owner is gone.

A run keeps its server in ``pytest-sessionmaker-<run id>`` (in /dev/shm or $TMPDIR, see
server_location), whose ``owner.json`` names
the process that stops it at the end of the run (xdist's controller, or the only process): its
pid and its start time, so that a pid reused by another process does not pass for the owner.
A run killed with SIGKILL never stops its server; the next run that starts one stops every
server in those directories whose owner no longer runs, and removes its directory.
Directories without an ``owner.json`` are not recognisably the plugin's and are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_sessionmaker.postgres_cluster import process_alive, stop_postmaster

RUN_DIRECTORY_PREFIX = "pytest-sessionmaker-"
OWNER_FILE = "owner.json"
DATA_DIRECTORY = "data"


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started, as the system tells it (None when it cannot)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # Linux, and no such process
    except OSError:
        return None
    else:
        # Field 22, counted after the command name, which may itself hold spaces or ')'.
        return stat.rpartition(")")[2].split()[19]
    try:
        started = subprocess.run(  # noqa: S603 - fixed program
            ["/bin/ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return None
    return started or None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process, told apart from a later one that happens to get the same pid."""

    pid: int
    started: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls(os.getpid(), process_start_time(os.getpid()))

    def running(self) -> bool:
        if not process_alive(self.pid):
            return False
        if self.started is None:
            return True
        now = process_start_time(self.pid)
        return now is None or now == self.started

    def as_dict(self) -> dict[str, int | str | None]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_dict(cls, recorded: dict[str, object]) -> ProcessIdentity:
        pid, started = recorded["pid"], recorded.get("started")
        if not isinstance(pid, int) or not (started is None or isinstance(started, str)):
            raise ValueError(recorded)
        return cls(pid, started)


def write_owner(directory: Path, owner: ProcessIdentity) -> None:
    """Record the owner atomically: a half-written file must not read as an orphan's."""
    if (directory / OWNER_FILE).exists():
        return
    partial = directory / f"{OWNER_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(owner.as_dict()))
    partial.replace(directory / OWNER_FILE)


def read_owner(directory: Path) -> ProcessIdentity | None:
    try:
        return ProcessIdentity.from_dict(json.loads((directory / OWNER_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remove_orphans(temporary_directory: Path, keep: Path) -> list[Path]:
    """Stop the servers of runs whose owner is gone, and remove their directories."""
    removed = []
    for directory in temporary_directory.glob(f"{RUN_DIRECTORY_PREFIX}*"):
        if directory == keep or not directory.is_dir():
            continue
        owner = read_owner(directory)
        if owner is None or owner.running():
            continue
        stop_postmaster(directory / DATA_DIRECTORY)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed
