"""The throwaway PostgreSQL of zero-configuration runs: started, shared, stopped, cleaned up.

Every inner run here is a real pytest process on a real server, with its own temporary directory
(TMPDIR), so a test looks only at its own run's server and directory, never at other runs that
may be going on. Inner tests meet the outer test at file barriers instead of sleeping.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers import COUNTING_TESTS, MODELS
from pytest_sessionmaker.cluster_template import TemplateCache, cache_root
from pytest_sessionmaker.postgres_cluster import (
    Cluster,
    ServerDidNotStart,
    process_alive,
    running_postmaster,
    server_account,
    stop_postmaster,
)
from pytest_sessionmaker.postgres_install import PG_CTL_LOCATIONS, find_binaries
from pytest_sessionmaker.server_location import (
    MEMORY_DIRECTORY,
    MEMORY_ROOM,
    TEMPORARY_DIRECTORY_VARIABLES,
    filesystem_type,
    has_room_in_memory,
    run_parent,
)
from pytest_sessionmaker.server_owner import RUN_DIRECTORY_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator

# These tests start, kill and reap throwaway servers and damage cluster templates on purpose:
# under pytest-xdist (--dist loadgroup, in addopts) they all run in one worker, one at a time.
# Each has its own TMPDIR and the ones that damage a template their own cache, so they pass side
# by side too (six runs of this file under -n 2 without the group); the group is a second
# guard, and cost the suite no measurable time.
pytestmark = pytest.mark.xdist_group("throwaway-server")

# Inner tests call barrier("name"): it says where it is and waits for the outer test's word.
BARRIER = """
import os, pathlib, time

def barrier(name):
    here = pathlib.Path(os.environ["BARRIER_DIR"])
    partial = here / f"{name}.{os.getpid()}"
    partial.write_text(str(os.getpid()))
    partial.rename(here / f"{name}.reached")  # whole, or not there yet
    deadline = time.monotonic() + 120
    while not (here / f"{name}.proceed").exists():
        assert time.monotonic() < deadline, "the outer test never said to proceed"
        time.sleep(0.01)
"""

WAITING_TEST = """
from barrier import barrier
from models import User

def test_waits_with_an_open_transaction(db_session):
    db_session.add(User(name="x"))
    db_session.flush()
    barrier("started")
"""

EXITING_TEST = """
import pytest
from models import User

def test_exits_with_an_open_transaction(db_session):
    db_session.add(User(name="x"))
    db_session.flush()
    pytest.exit("enough")
"""

# pytest as a terminal's foreground job runs it: Ctrl-C raises KeyboardInterrupt. A shell starts
# background jobs (this suite in one, say) with SIGINT ignored, which children inherit and
# Python then leaves alone; the Ctrl-C tests would wait for a signal nobody receives.
INTERRUPTIBLE_PYTEST = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.exit(pytest.console_main())"
)
WAIT_LIMIT = 120.0
IS_ROOT = os.geteuid() == 0


def wait_until(
    condition: object, what: str, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``condition`` (a callable), failing with the inner run's output if it ends first."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():  # type: ignore[operator]
        if process is not None and process.poll() is not None:
            pytest.fail(f"the inner run ended ({process.returncode}) before {what}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


def run_directories_in(parent: Path) -> list[Path]:
    """The runs' server directories in ``parent``."""
    return sorted(parent.glob(f"{RUN_DIRECTORY_PREFIX}*"))


@dataclass
class ZeroConfigProject:
    """A user's project with no database URL, run in a temporary directory of its own."""

    pytester: pytest.Pytester
    tmpdir: Path
    outputs: dict[int, Path] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def barriers(self) -> Path:
        return self.pytester.path / "barriers"

    def write_tests(self, source: str) -> None:
        self.pytester.makepyfile(test_app=textwrap.dedent(source))

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """The inner run as a process of its own, to be signalled. Its output goes to a file:
        xdist's workers inherit a pipe and would keep it open after the controller ended."""
        command = [sys.executable, "-c", INTERRUPTIBLE_PYTEST, "-p", "no:cacheprovider", *args]
        path = self.pytester.path / f"inner-{len(self.outputs)}.out"
        with path.open("wb") as output:
            # A process group of its own, which a Ctrl-C in a terminal signals as a whole.
            process = subprocess.Popen(
                command,
                cwd=self.pytester.path,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.outputs[process.pid] = path
        self.processes.append(process)
        return process

    def end_leftovers(self) -> None:
        """Kill what a failed test left running: the inner runs, with their xdist workers."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def finish(self, process: subprocess.Popen[bytes]) -> str:
        """Wait for the inner run to end; its output."""
        process.wait(timeout=WAIT_LIMIT)
        return self.outputs[process.pid].read_text()

    def reached(self, name: str, process: subprocess.Popen[bytes]) -> int:
        """Wait for an inner test at barrier ``name``; the pid of the process running it."""
        flag = self.barriers / f"{name}.reached"
        wait_until(flag.exists, f"barrier {name!r}", process)
        return int(flag.read_text())

    def proceed(self, name: str) -> None:
        (self.barriers / f"{name}.proceed").write_text("")

    def run_directories(self) -> list[Path]:
        return run_directories_in(self.tmpdir)

    def only_run_directory(self) -> Path:
        directories = self.run_directories()
        assert len(directories) == 1, directories
        return directories[0]


@contextmanager
def temporary_directory_for_servers(parent: Path) -> Iterator[Path]:
    """A TMPDIR for inner runs that the server's account can enter (pytester's own directory
    is inside root's private /tmp/pytest-of-root). Servers left in it are stopped afterwards."""
    path = Path(tempfile.mkdtemp(prefix="sm-server-test-", dir=parent))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for data in path.glob(f"{RUN_DIRECTORY_PREFIX}*/data"):
            stop_postmaster(data)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server_tmpdir() -> Iterator[Path]:
    """Where the plugin would keep a run's server (in memory where the machine has room): on a
    disk, creating a cluster's files is most of a server's start. One test keeps a server on
    the disk (DISK_DIRECTORY)."""
    with temporary_directory_for_servers(run_parent()) as path:
        yield path


@pytest.fixture
def zero_config(
    pytester: pytest.Pytester, server_tmpdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ZeroConfigProject]:
    pytester.makepyfile(models=MODELS, barrier=BARRIER)
    pytester.makeini("[pytest]\ndb_metadata = models:Base\n")
    pytester.makepyfile(test_app=COUNTING_TESTS)
    project = ZeroConfigProject(pytester, server_tmpdir)
    project.barriers.mkdir()
    monkeypatch.setenv("TMPDIR", str(server_tmpdir))
    monkeypatch.setenv("BARRIER_DIR", str(project.barriers))
    yield project
    project.end_leftovers()


def server_uid(datadir: Path) -> int:
    pid = running_postmaster(datadir)
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def test_a_zero_configuration_run_starts_a_server_with_no_template_and_removes_it(
    zero_config: ZeroConfigProject,
) -> None:
    result = zero_config.run("-v")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["sessionmaker: a throwaway PostgreSQL*"])
    # One process builds no template on it: the server and a template would be thrown away
    # after one copy.
    result.stdout.fnmatch_lines(["sessionmaker one-time costs: server start *(created empty)*"])
    assert zero_config.run_directories() == []


def test_xdist_workers_share_one_server_and_one_template_which_the_controller_removes(
    zero_config: ZeroConfigProject,
) -> None:
    # Each test records its worker and its server's port.
    zero_config.write_tests(
        COUNTING_TESTS.replace(
            "def test_commit_and_count(db_session, n):",
            """def test_commit_and_count(db_session, n):
    import os, pathlib
    port = str(db_session.get_bind().engine.url.port)
    folder = pathlib.Path(os.environ["BARRIER_DIR"])
    (folder / f"{os.environ['PYTEST_XDIST_WORKER']}-{n}").write_text(port)""",
        )
    )
    result = zero_config.run("-n", "2", "--dist", "each", "-v")
    result.assert_outcomes(passed=10)
    records = list(zero_config.barriers.glob("gw*"))
    assert {path.name.split("-")[0] for path in records} == {"gw0", "gw1"}
    assert len({path.read_text() for path in records}) == 1
    # Each worker's database is a copy of one template, which one of them built.
    costs = [line for line in result.stdout.lines if "one-time costs" in line]
    assert len(costs) == 2, result.stdout.str()
    assert all("copy of template pytest_sessionmaker_template_" in line for line in costs)
    assert sum("built now" in line for line in costs) == 1
    assert zero_config.run_directories() == []


RECORDING_TEST = """
import os
from pathlib import Path

from sqlalchemy import text

def test_records_where_its_server_keeps_its_data(db_session):
    data = db_session.execute(text("SHOW data_directory")).scalar_one()
    Path(os.environ["BARRIER_DIR"], "data_directory").write_text(data)
"""


MEMORY_WAITING_TEST = (
    RECORDING_TEST.replace(
        "from sqlalchemy import text", "from sqlalchemy import text\nfrom barrier import barrier"
    )
    + '    barrier("started")\n'
)


# Not a tmpfs on a usual Linux machine (the Filesystem Hierarchy Standard keeps it across
# reboots); here only to be somewhere other than memory.
DISK_DIRECTORY = Path("/var/tmp")


def in_memory_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip where the machine has no room in memory; unset the temporary directory.

    The room is judged here on its own, not by has_room_in_memory: were that wrong, the tests
    of the memory path would skip instead of failing."""
    if filesystem_type(MEMORY_DIRECTORY) != "tmpfs":
        pytest.skip(f"no tmpfs at {MEMORY_DIRECTORY} on this machine (the disk is used there)")
    usage = os.statvfs(MEMORY_DIRECTORY)
    if usage.f_bavail * usage.f_frsize < MEMORY_ROOM:
        pytest.skip(f"{MEMORY_DIRECTORY} has less than 1 GiB free here (the disk is used there)")
    for name in TEMPORARY_DIRECTORY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_with_no_temporary_directory_set_the_server_keeps_its_files_in_memory(
    zero_config: ZeroConfigProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_memory_by_default(monkeypatch)
    zero_config.write_tests(RECORDING_TEST)
    try:
        result = zero_config.run("-v")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [f"sessionmaker one-time costs: server start *s (in {MEMORY_DIRECTORY}),*"]
        )
        data = Path((zero_config.barriers / "data_directory").read_text())
        assert data.parent.parent == MEMORY_DIRECTORY
        assert data.parent.name.startswith("pytest-sessionmaker-")
        # Stopped and removed like any other run's server.
        assert not data.parent.exists()
    finally:
        recorded = zero_config.barriers / "data_directory"
        if recorded.exists():
            data = Path(recorded.read_text())
            stop_postmaster(data)
            shutil.rmtree(data.parent, ignore_errors=True)


def test_a_killed_runs_server_in_memory_is_stopped_by_the_next_run_wherever_that_one_runs(
    zero_config: ZeroConfigProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_memory_by_default(monkeypatch)
    zero_config.write_tests(MEMORY_WAITING_TEST)
    process = zero_config.start()
    zero_config.reached("started", process)
    data = Path((zero_config.barriers / "data_directory").read_text())
    try:
        assert data.parent.parent == MEMORY_DIRECTORY
        postmaster = running_postmaster(data)
        assert postmaster is not None
        process.kill()  # the server runs in a session of its own and outlives it
        zero_config.finish(process)
        # The next run keeps its own server in a TMPDIR on the disk (the path of every machine
        # without room in memory), and looks for orphans in memory too.
        with temporary_directory_for_servers(DISK_DIRECTORY) as elsewhere:
            monkeypatch.setenv("TMPDIR", str(elsewhere))
            zero_config.write_tests(COUNTING_TESTS)
            result = zero_config.run("-v")
            result.assert_outcomes(passed=5)
            result.stdout.fnmatch_lines(
                [f"sessionmaker one-time costs: server start *s (in {elsewhere}),*"]
            )
            assert not process_alive(postmaster)
            assert not data.parent.exists()
            assert run_directories_in(elsewhere) == []
    finally:
        stop_postmaster(data)
        shutil.rmtree(data.parent, ignore_errors=True)


def test_a_temporary_directory_set_in_the_environment_wins_over_memory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in TEMPORARY_DIRECTORY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads the environment again
    assert run_parent() == tmp_path


def test_a_directory_that_is_no_tmpfs_mount_is_not_taken_for_memory(tmp_path: Path) -> None:
    # tmp_path is a directory on some filesystem, not a mount point of its own.
    assert filesystem_type(tmp_path) is None
    assert not has_room_in_memory(tmp_path)
    # "/" is a mount point on every Linux machine: the mount table is read.
    assert filesystem_type(Path("/")) is not None


def test_a_zero_configuration_run_works_without_pytest_postgresqls_own_plugin(
    zero_config: ZeroConfigProject,
) -> None:
    # Its plugin imports psycopg at start-up; a project using none of its fixtures may skip it.
    zero_config.run("-p", "no:pytest_postgresql").assert_outcomes(passed=5)


def test_no_warning_or_log_noise_under_filterwarnings_error(
    zero_config: ZeroConfigProject,
) -> None:
    result = zero_config.run("-W", "error", "--log-level=DEBUG", "-rA")
    result.assert_outcomes(passed=5)
    output = result.stdout.str()
    assert "Unraisable" not in output
    assert "still running" not in output


@pytest.mark.parametrize("interrupt", ["ctrl-c", "ctrl-c-xdist", "pytest.exit"])
def test_an_interrupted_run_exits_2_without_a_traceback_and_stops_its_server(
    zero_config: ZeroConfigProject, interrupt: str
) -> None:
    if interrupt == "pytest.exit":
        zero_config.write_tests(EXITING_TEST)
        process = zero_config.start()
    else:
        zero_config.write_tests(WAITING_TEST)
        process = zero_config.start(*(["-n", "2"] if interrupt == "ctrl-c-xdist" else []))
        zero_config.reached("started", process)
        datadir = zero_config.only_run_directory() / "data"
        postmaster = running_postmaster(datadir)
        assert postmaster is not None
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does on Ctrl-C
    output = zero_config.finish(process)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "AdminShutdown" not in output
    assert "OperationalError" not in output
    assert "Traceback" not in output
    assert zero_config.run_directories() == []
    if interrupt != "pytest.exit":
        assert postmaster is not None
        assert not process_alive(postmaster)


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "xdist"])
def test_sigterm_stops_the_server_before_the_run_ends(
    zero_config: ZeroConfigProject, xdist: bool
) -> None:
    zero_config.write_tests(WAITING_TEST)
    process = zero_config.start(*(["-n", "2"] if xdist else []))
    worker = zero_config.reached("started", process)
    datadir = zero_config.only_run_directory() / "data"
    postmaster = running_postmaster(datadir)
    assert postmaster is not None
    expected_uid = pwd.getpwnam("postgres").pw_uid if IS_ROOT else os.geteuid()
    assert server_uid(datadir) == expected_uid
    process.send_signal(signal.SIGTERM)
    output = zero_config.finish(process)
    assert process.returncode == -signal.SIGTERM, output
    assert not process_alive(postmaster)
    assert zero_config.run_directories() == []
    zero_config.proceed("started")
    wait_until(lambda: not process_alive(worker), "the xdist worker to end")


@pytest.mark.parametrize("xdist", [False, True], ids=["single", "xdist"])
def test_the_next_run_stops_the_server_of_a_killed_run_even_if_its_pid_was_reused(
    zero_config: ZeroConfigProject, xdist: bool
) -> None:
    zero_config.write_tests(WAITING_TEST)
    process = zero_config.start(*(["-n", "2"] if xdist else []))
    worker = zero_config.reached("started", process)
    killed_directory = zero_config.only_run_directory()
    postmaster = running_postmaster(killed_directory / "data")
    assert postmaster is not None
    process.kill()
    zero_config.finish(process)
    zero_config.proceed("started")
    wait_until(lambda: not process_alive(worker), "the killed run's worker to end")
    assert process_alive(postmaster)  # nothing could stop it: the next run must
    owner_file = killed_directory / "owner.json"
    owner = json.loads(owner_file.read_text())
    assert owner["pid"] == process.pid
    # Its pid now belongs to a running process (this one) started at another time.
    owner_file.write_text(json.dumps({**owner, "pid": os.getpid()}))

    zero_config.write_tests(COUNTING_TESTS)
    zero_config.run().assert_outcomes(passed=5)
    assert not process_alive(postmaster)
    assert zero_config.run_directories() == []


def test_a_server_whose_owner_still_runs_is_left_alone(zero_config: ZeroConfigProject) -> None:
    zero_config.write_tests(WAITING_TEST)
    waiting = zero_config.start()
    zero_config.reached("started", waiting)
    directory = zero_config.only_run_directory()
    try:
        zero_config.write_tests(COUNTING_TESTS)
        zero_config.run().assert_outcomes(passed=5)
        assert zero_config.run_directories() == [directory]
        assert running_postmaster(directory / "data") is not None
    finally:
        zero_config.proceed("started")
        output = zero_config.finish(waiting)
    assert waiting.returncode == 0, output
    assert zero_config.run_directories() == []


def test_a_port_taken_before_the_server_binds_it_is_told_apart(server_tmpdir: Path) -> None:
    """The run then tries another port instead of blaming the template."""
    cluster = scratch_cluster(server_tmpdir / "run")
    TemplateCache(cache_root(), cluster).provide()
    with (
        socket.create_server(("127.0.0.1", 0)) as taken,
        pytest.raises(ServerDidNotStart) as failure,
    ):
        cluster.start(taken.getsockname()[1])
    assert failure.value.port_was_taken
    assert running_postmaster(cluster.datadir) is None


# --- A failed start leaves nothing behind and says what to do in one sentence ----------------


def assert_failed_start(result: pytest.RunResult, project: ZeroConfigProject, advice: str) -> None:
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines([advice])
    output = result.stdout.str()
    for fragment in ("Traceback", "status 1", "wrapper", "exit code"):
        assert fragment not in output
    assert project.run_directories() == []


def installed_bindirs() -> set[str]:
    found = shutil.which("pg_ctl")
    places = {str(Path(found).resolve().parent)} if found else set()
    import glob

    places.update(
        str(Path(path).parent) for pattern in PG_CTL_LOCATIONS for path in glob.glob(pattern)
    )
    return places


def test_without_postgresql_installed_database_tests_fail_with_what_to_install(
    zero_config: ZeroConfigProject,
) -> None:
    """A machine without PostgreSQL, made by hiding its binaries in a mount namespace."""
    hide = " && ".join(f"mount -t tmpfs none {place}" for place in sorted(installed_bindirs()))
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"{hide} && true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot hide the PostgreSQL binaries here (unshare --mount): {probe.stderr!r}")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    result = zero_config.pytester.run(
        "unshare", "--mount", "sh", "-c", f'{hide} && exec "$@"', "sh", *command
    )
    assert_failed_start(result, zero_config, "*PostgreSQL is not installed*install it*--db-url*")


@pytest.mark.parametrize("exec_", ["missing", "not_pg_ctl"])
def test_a_bad_postgresql_exec_fails_database_tests_with_what_to_set(
    zero_config: ZeroConfigProject, exec_: str
) -> None:
    pg_ctl = zero_config.pytester.path / "bin" / "pg_ctl"
    if exec_ == "not_pg_ctl":
        pg_ctl.parent.mkdir()
        pg_ctl.write_text("#!/bin/sh\nexit 1\n")
        pg_ctl.chmod(0o755)
    result = zero_config.run("--postgresql-exec", str(pg_ctl))
    advice = f"*{pg_ctl} (from --postgresql-exec) is not PostgreSQL's pg_ctl*point*at*"
    assert_failed_start(result, zero_config, advice)


@pytest.mark.skipif(not IS_ROOT, reason="as another user the server runs as that user")
def test_a_temporary_directory_the_server_cannot_enter_fails_with_what_to_set(
    zero_config: ZeroConfigProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = zero_config.pytester.path / "private"
    private.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private))
    zero_config.tmpdir = private
    result = zero_config.run()
    assert_failed_start(result, zero_config, "*cannot reach the temporary directory*set TMPDIR*")


# --- The cluster template cache ---------------------------------------------------------------

# The inner test reports whether its server's data directory came from the template, which the
# outer test marks with a file PostgreSQL ignores.
TEMPLATE_PROBE = """
import os
from pathlib import Path
from sqlalchemy import text

def test_server(db_session):
    datadir = Path(db_session.execute(text("SHOW data_directory")).scalar_one())
    report = Path(os.environ["BARRIER_DIR"]) / "report.json"
    import json
    report.write_text(json.dumps({"marked": (datadir / "marked-template").exists()}))
    if os.environ.get("DELETE_CACHE"):
        import shutil
        shutil.rmtree(os.environ["XDG_CACHE_HOME"])
"""


@pytest.fixture
def cache(zero_config: ZeroConfigProject, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = zero_config.tmpdir / "cache"  # beside the servers: made and copied as fast
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    zero_config.write_tests(TEMPLATE_PROBE)
    return path


def template_of(cache: Path) -> Path:
    templates = [
        path for path in (cache / "pytest-sessionmaker").glob("postgresql-*") if path.is_dir()
    ]
    assert len(templates) == 1, templates
    return templates[0]


def run_probe(project: ZeroConfigProject) -> bool:
    """Run the probe; whether its server was copied from the marked template."""
    project.run().assert_outcomes(passed=1)
    assert project.run_directories() == []
    report = json.loads((project.barriers / "report.json").read_text())
    return bool(report["marked"])


def mark(template: Path) -> str:
    (template / "data" / "marked-template").write_text("")
    return str(json.loads((template / "template.json").read_text())["id"])


def test_the_first_run_makes_the_template_and_the_next_copies_it(
    zero_config: ZeroConfigProject, cache: Path
) -> None:
    assert not cache.exists()
    run_probe(zero_config)
    template = template_of(cache)
    template_id = mark(template)
    assert run_probe(zero_config)
    assert mark(template_of(cache)) == template_id


def scratch_cluster(directory: Path) -> Cluster:
    """A cluster to be made in ``directory``, as a run's first server makes it."""
    directory.mkdir(mode=0o700)
    account = server_account()
    account.give(directory)
    return Cluster(find_binaries(None, None), account, directory / "data", directory / "log")


def make_template(project: ZeroConfigProject) -> Path:
    """Make the template as a run's first server does, without the run around it."""
    cluster = scratch_cluster(project.tmpdir / "scratch")
    assert TemplateCache(cache_root(), cluster).provide() is None
    shutil.rmtree(cluster.datadir.parent)
    return template_of(cache_root().parent)


def test_a_stale_template_is_replaced(zero_config: ZeroConfigProject, cache: Path) -> None:
    template = make_template(zero_config)
    template_id = mark(template)
    recorded = json.loads((template / "template.json").read_text())
    recorded["key"]["version"] = "postgres (PostgreSQL) 9.6.0"
    (template / "template.json").write_text(json.dumps(recorded))
    assert not run_probe(zero_config)
    assert mark(template_of(cache)) != template_id


def test_a_damaged_template_is_replaced(zero_config: ZeroConfigProject, cache: Path) -> None:
    template = make_template(zero_config)
    template_id = mark(template)
    (template / "data" / "global" / "pg_control").unlink()
    assert not run_probe(zero_config)
    rebuilt = template_of(cache)
    assert (rebuilt / "data" / "global" / "pg_control").exists()
    assert mark(rebuilt) != template_id


def test_a_cache_deleted_during_the_run_is_made_again_by_the_next(
    zero_config: ZeroConfigProject, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELETE_CACHE", "1")
    run_probe(zero_config)
    assert not cache.exists()
    monkeypatch.delenv("DELETE_CACHE")
    run_probe(zero_config)
    template_of(cache)


def test_concurrent_runs_make_one_template(zero_config: ZeroConfigProject, cache: Path) -> None:
    zero_config.write_tests(COUNTING_TESTS)
    runs = [zero_config.start() for _ in range(2)]
    outputs = [zero_config.finish(process) for process in runs]
    assert [process.returncode for process in runs] == [0, 0], outputs
    template_of(cache)
    leftovers = [path.name for path in (cache / "pytest-sessionmaker").glob("*.*-*")]
    assert leftovers == []
    assert zero_config.run_directories() == []
