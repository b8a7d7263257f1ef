"""The run's throwaway PostgreSQL: started on first use, shared by every process of the run,
stopped by the process that ends last.

The process that ends last (xdist's controller, or the only process) owns the server: at
configure time it names the run's directory, ``pytest-sessionmaker-<run id>`` in memory or in
$TMPDIR (see server_location), and hands it to xdist's workers in ``node.workerinput``. The
first test that needs a database, in any process, starts the server under a lock in that
directory; the others read its port from there.
The owner stops it in pytest_unconfigure, after pytest has torn down every session fixture that
still uses it: stopping it in pytest_sessionfinish broke the fixtures torn down later (an
AdminShutdown traceback and exit status 1 after a Ctrl-C). While the server may run, a SIGTERM to
the owner stops it before the process ends, and a run killed outright leaves it to the next run
(see server_owner).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_sessionmaker.errors import DatabaseUnavailable
from pytest_sessionmaker.server_location import run_parent, run_parents
from pytest_sessionmaker.server_owner import (
    DATA_DIRECTORY,
    RUN_DIRECTORY_PREFIX,
    ProcessIdentity,
    remove_orphans,
    write_owner,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from sqlalchemy import URL

    from pytest_sessionmaker.postgres_cluster import Cluster

# initdb's own database: creating another would add 300 files to copy for every run (the copy's
# cost is per file on a busy disk), and the plugin works in test databases it creates anyway.
DATABASE_NAME = "postgres"
WORKERINPUT_KEY = "pytest_sessionmaker_server"
STATE_FILE = "server.json"
FAILURE_FILE = "failed.txt"
PORT_ATTEMPTS = 5


class TerminationGuard:
    """A SIGTERM handler that runs ``cleanup`` and then does what the previous handler would
    have done (by default: the process dies of the signal, as it would have without us)."""

    def __init__(self, cleanup: Callable[[], None]) -> None:
        self.cleanup = cleanup
        self.previous: Any = None
        self.installed = False

    def install(self) -> None:
        if self.installed or threading.current_thread() is not threading.main_thread():
            return
        self.previous = signal.signal(signal.SIGTERM, self._handle)
        self.installed = True

    def uninstall(self) -> None:
        if self.installed and signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, self.previous)
        self.installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        previous = self.previous
        self.uninstall()
        self.cleanup()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _chosen_pg_ctl(config: pytest.Config) -> tuple[str | None, str | None]:
    """pytest-postgresql's --postgresql-exec, and its postgresql_exec ini value (both None
    when its plugin is not loaded, e.g. with -p no:pytest_postgresql)."""
    chosen = config.getoption("postgresql_exec", default=None)
    try:
        ini = config.getini("postgresql_exec")
    except ValueError:
        ini = None
    return (str(chosen) if chosen else None), (str(ini) if ini else None)


class ThrowawayServer:
    """One run's server, as one process of the run sees it."""

    def __init__(self, directory: Path, owner: ProcessIdentity, is_owner: bool) -> None:
        self.directory = directory
        self.owner = owner
        self.is_owner = is_owner
        self.guard = TerminationGuard(self.stop)
        self.port: int | None = None

    def worker_input(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "owner": self.owner.as_dict()}

    @classmethod
    def from_worker_input(cls, given: dict[str, Any]) -> ThrowawayServer:
        return cls(Path(given["directory"]), ProcessIdentity.from_dict(given["owner"]), False)

    def url(self, config: pytest.Config) -> URL:
        from sqlalchemy import URL

        if self.port is None:
            self.port = self._start_or_join(config)
        return URL.create(
            "postgresql+psycopg",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database=DATABASE_NAME,
        )

    def _started_port(self) -> int | None:
        try:
            port: int = json.loads((self.directory / STATE_FILE).read_text())["port"]
        except (OSError, ValueError, KeyError):
            return None
        return port

    def _start_or_join(self, config: pytest.Config) -> int:
        from filelock import FileLock

        from pytest_sessionmaker.postgres_cluster import server_account
        from pytest_sessionmaker.postgres_install import find_binaries

        port = self._started_port()
        if port is not None:
            return port
        # Found before anything is written, so that their absence leaves nothing behind.
        binaries = find_binaries(*_chosen_pg_ctl(config))
        account = server_account()
        self.directory.mkdir(mode=0o700, exist_ok=True)
        write_owner(self.directory, self.owner)
        if self.is_owner:
            self.guard.install()
        with FileLock(str(self.directory / "lock")):
            port = self._started_port()
            if port is not None:
                return port
            failure = self.directory / FAILURE_FILE
            if failure.exists():
                raise DatabaseUnavailable(failure.read_text())
            from pytest_sessionmaker.postgres_cluster import Cluster

            cluster = Cluster(
                binaries,
                account,
                self.directory / DATA_DIRECTORY,
                self.directory / "postgresql.log",
            )
            try:
                port = self._start(cluster)
            except DatabaseUnavailable as exc:
                shutil.rmtree(cluster.datadir, ignore_errors=True)
                failure.write_text(str(exc))
                raise
            # Written whole or not at all: other processes read it without the lock.
            partial = self.directory / f"{STATE_FILE}.{os.getpid()}"
            partial.write_text(json.dumps({"port": port}))
            partial.replace(self.directory / STATE_FILE)
            return port

    def _start(self, cluster: Cluster) -> int:
        from pytest_sessionmaker.cluster_template import TemplateCache, cache_root
        from pytest_sessionmaker.postgres_cluster import ServerDidNotStart, check_reachable

        cluster.account.give(self.directory)
        check_reachable(self.directory, cluster.account)
        for parent in run_parents():
            remove_orphans(parent, keep=self.directory)
        cache = TemplateCache(cache_root(), cluster)
        template_id = cache.provide()
        discarded = False
        for attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            try:
                cluster.start(port)
            except ServerDidNotStart as exc:
                if exc.port_was_taken and attempt < PORT_ATTEMPTS - 1:
                    continue
                if exc.port_was_taken or template_id is None or discarded:
                    raise
                # A copy of a damaged template: build anew, and replace the template.
                cache.discard(template_id)
                discarded = True
                shutil.rmtree(cluster.datadir, ignore_errors=True)
                template_id = cache.provide()
            else:
                return port
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the server and remove the run's directory (the owner does, at the end)."""
        from pytest_sessionmaker.postgres_cluster import stop_postmaster

        self.guard.uninstall()
        if not self.is_owner or not self.directory.exists():
            return
        stop_postmaster(self.directory / DATA_DIRECTORY)
        shutil.rmtree(self.directory, ignore_errors=True)


SERVER_KEY = pytest.StashKey[ThrowawayServer]()


def configure_throwaway_server(config: pytest.Config) -> ThrowawayServer:
    """Name the run's server: a worker takes it from xdist's controller, anyone else owns one."""
    given = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if given is not None:
        server = ThrowawayServer.from_worker_input(given)
    else:
        directory = run_parent() / f"{RUN_DIRECTORY_PREFIX}{uuid.uuid4().hex}"
        server = ThrowawayServer(directory, ProcessIdentity.current(), is_owner=True)
    config.stash[SERVER_KEY] = server
    return server


def hand_to_worker(config: pytest.Config, workerinput: dict[str, Any]) -> None:
    """xdist's controller: tell a worker which server the run shares. A worker may start it at
    any time from now on, so the controller stops it on SIGTERM from now on."""
    server = config.stash.get(SERVER_KEY, None)
    if server is not None:
        workerinput[WORKERINPUT_KEY] = server.worker_input()
        server.guard.install()


def throwaway_postgresql_url(config: pytest.Config) -> URL:
    """The run's server URL, starting the server on the first call in any process of the run."""
    server = config.stash.get(SERVER_KEY, None) or configure_throwaway_server(config)
    return server.url(config)


def throwaway_server_place(config: pytest.Config) -> Path | None:
    """The directory holding this run's server directory, when the run has a server."""
    server = config.stash.get(SERVER_KEY, None)
    return server.directory.parent if server is not None else None


def stop_throwaway_server(config: pytest.Config) -> None:
    server = config.stash.get(SERVER_KEY, None)
    if server is not None:
        server.stop()
