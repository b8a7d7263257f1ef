"""Where a run keeps its throwaway server: in memory when the machine has room for it.

Starting the server is mostly creating files: copying the cluster template (about 1,000 files)
and then CREATE DATABASE (about 300 more for each database). On the 2-CPU machine's disk that
costs about a millisecond a file (the template: 1.1 s with ``cp -a``, 0.12 s into /dev/shm).
The data is thrown away when the run ends, so it may as well live in a tmpfs: /dev/shm, when it
is one, this user may write there and it has MEMORY_ROOM free (a container's default 64 MB
/dev/shm does not, and the disk is used). A temporary directory chosen in the environment
(TMPDIR, TEMP or TMP) always wins: it says where this user wants temporary files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Shared by every user, like /tmp: a run's directory there has a random name and mode 0o700.
MEMORY_DIRECTORY = Path("/dev/shm")  # noqa: S108
# Room for a test database of a few hundred megabytes beside everything else that uses it.
MEMORY_ROOM = 1 << 30
TEMPORARY_DIRECTORY_VARIABLES = ("TMPDIR", "TEMP", "TMP")


def run_parent() -> Path:
    """The directory a new run's server directory goes into."""
    chosen = any(os.environ.get(name) for name in TEMPORARY_DIRECTORY_VARIABLES)
    if not chosen and has_room_in_memory(MEMORY_DIRECTORY):
        return MEMORY_DIRECTORY
    return Path(tempfile.gettempdir())


def run_parents() -> list[Path]:
    """Every directory runs of this user may have left a server in (the next run looks there
    for servers of killed runs)."""
    parents = [Path(tempfile.gettempdir())]
    if MEMORY_DIRECTORY not in parents and MEMORY_DIRECTORY.is_dir():
        parents.append(MEMORY_DIRECTORY)
    return parents


def has_room_in_memory(directory: Path) -> bool:
    """Whether ``directory`` is a tmpfs mount this user may write in, with MEMORY_ROOM free."""
    if filesystem_type(directory) != "tmpfs":
        return False
    if not os.access(directory, os.W_OK | os.X_OK):
        return False
    try:
        usage = os.statvfs(directory)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize >= MEMORY_ROOM


def filesystem_type(mount_point: Path) -> str | None:
    """The type of the filesystem mounted exactly at ``mount_point`` (Linux), else None."""
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return None
    found = None
    for line in mounts.splitlines():
        fields = line.split()
        # The last mount at a point is the one in effect (it hides the earlier ones).
        if len(fields) >= 3 and fields[1] == str(mount_point):
            found = fields[2]
    return found
