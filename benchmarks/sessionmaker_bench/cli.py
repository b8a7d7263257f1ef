"""``python benchmarks/compare.py``: options, the benchmark's folder and server, the report."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sessionmaker_bench import environment
from sessionmaker_bench.settings import DEFAULT_MODES, DEFAULT_URL, MODES, Settings
from sessionmaker_bench.strategies import COMPARED
from sessionmaker_bench.suite import BENCHMARKS

SCRIPT = BENCHMARKS / "compare.py"
USAGE = """\
Modes (default: per-test first-test startup xdist, about 16 minutes on 2 quiet CPUs):
  per-test    per-test cost: slope of whole-process wall time between two suite sizes
  first-test  time to the first test: the whole process of running one test
  startup     1000 tests that use no database: what loading the plugin costs
  xdist       our rollback suite with -n 0 and -n 2
  profile     a pyinstrument profile of our rollback suite
"""


def sizes(text: str) -> tuple[int, int]:
    small, _, large = text.partition(",")
    try:
        pair = (int(small), int(large))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SMALL,LARGE, got {text!r}") from None
    if not 0 < pair[0] < pair[1]:
        raise argparse.ArgumentTypeError(f"expected 0 < SMALL < LARGE, got {text!r}")
    return pair


def strategy_sizes(text: str) -> tuple[str, tuple[int, int]]:
    key, _, pair = text.partition("=")
    if key not in COMPARED:
        raise argparse.ArgumentTypeError(f"unknown strategy {key!r} (one of {', '.join(COMPARED)})")
    return key, sizes(pair)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/compare.py",
        description="What pytest-sessionmaker costs next to what users would otherwise pick.",
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default = Settings()
    add = parser.add_argument
    add("modes", nargs="*", metavar="MODE", help="what to measure (below)")
    add("--url", default=DEFAULT_URL, help=f"the database server (default {DEFAULT_URL})")
    add(
        "--only",
        nargs="+",
        choices=COMPARED[1:],
        default=list(COMPARED[1:]),
        metavar="KEY",
        help=f"strategies to compare per test (default all: {' '.join(COMPARED[1:])})",
    )
    add("--rounds", type=int, default=default.rounds, help="per-test and xdist rounds (default 5)")
    add(
        "--sizes",
        type=sizes,
        default=default.sizes,
        metavar="SMALL,LARGE",
        help="suite sizes per strategy (default 100,600)",
    )
    add(
        "--slow-sizes",
        type=sizes,
        default=default.slow_sizes,
        metavar="SMALL,LARGE",
        help="sizes for strategies costing 0.1 s or more per test (default 20,60)",
    )
    add(
        "--size",
        type=strategy_sizes,
        action="append",
        default=[],
        metavar="KEY=SMALL,LARGE",
        help="sizes for one strategy (repeatable), e.g. --size template=10,30",
    )
    add("--tables", type=int, default=default.tables, help="tables in the schema (default 32)")
    add(
        "--first-test-runs",
        type=int,
        default=default.first_test_runs,
        help="runs per first-test row (default 7)",
    )
    add(
        "--first-test-tables",
        type=int,
        nargs="+",
        default=list(default.first_test_tables),
        help="schema sizes for first-test (default 1 32)",
    )
    add(
        "--startup-tests",
        type=int,
        default=default.startup_tests,
        help="tests of the start-up suite (default 1000)",
    )
    add(
        "--startup-runs",
        type=int,
        default=default.startup_runs,
        help="runs per start-up variant (default 15)",
    )
    add(
        "--callgrind",
        action="store_true",
        help="start-up in instructions under valgrind (slow, immune to a busy machine)",
    )
    add(
        "--xdist-tests", type=int, default=default.xdist_tests, help="tests for xdist (default 600)"
    )
    add("--xdist-workers", type=int, default=default.xdist_workers, help="workers (default 2)")
    add(
        "--venv",
        type=Path,
        default=environment.DEFAULT_VENV,
        help="virtualenv holding the peers (default benchmarks/.venv, made on first use)",
    )
    add("--python", action="store_true", help="run in this interpreter, not in --venv")
    add("--keep", action="store_true", help="keep the generated suites")
    add("--json", dest="json_path", help="also write the results to this JSON file")
    return parser


def settings_from(arguments: argparse.Namespace) -> Settings:
    return Settings(
        modes=tuple(arguments.modes) or DEFAULT_MODES,
        url=arguments.url,
        only=tuple(arguments.only),
        rounds=arguments.rounds,
        sizes=arguments.sizes,
        slow_sizes=arguments.slow_sizes,
        sizes_for=dict(arguments.size),
        tables=arguments.tables,
        first_test_runs=arguments.first_test_runs,
        first_test_tables=tuple(arguments.first_test_tables),
        startup_tests=arguments.startup_tests,
        startup_runs=arguments.startup_runs,
        callgrind=arguments.callgrind,
        xdist_tests=arguments.xdist_tests,
        xdist_workers=arguments.xdist_workers,
        keep=arguments.keep,
        json_path=arguments.json_path,
    )


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    arguments = cli.parse_args(argv)
    unknown = [mode for mode in arguments.modes if mode not in MODES]
    if unknown:
        cli.error(f"unknown mode {unknown[0]!r} (choose from {', '.join(MODES)})")
    if not arguments.python:
        given = sys.argv[1:] if argv is None else argv
        code = environment.run_in_venv(arguments.venv.resolve(), SCRIPT, given)
        if code is not None:
            return code
    return run(settings_from(arguments))


def run(settings: Settings) -> int:
    from sessionmaker_bench import first_test, per_test, profiling, report, startup
    from sessionmaker_bench.databases import Server

    # A short name: the throwaway servers put their Unix sockets under it (TMPDIR), and a
    # socket's path may not exceed 107 bytes. They run as the postgres user when the benchmark
    # runs as root, so that user must be able to reach their folders.
    workdir = Path(tempfile.mkdtemp(prefix="smb-"))
    workdir.chmod(0o755)
    (workdir / "tmp").mkdir(mode=0o1777)
    (workdir / "tmp").chmod(0o1777)
    server = Server(settings.url, workdir)
    # A benchmark stopped with kill still drops its databases and folder (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": report.machine(server.describe()),
        "load_before": report.load(),
    }
    lines: list[str] = []
    try:
        if "per-test" in settings.modes:
            slopes = per_test.measure(settings, server, workdir)
            results["per_test"] = slopes
            lines += [
                "",
                f"Per test: {settings.rounds} rounds, {settings.tables} tables.",
                report.per_test_table(slopes),
                "",
                "One-time set-up (intercept at 0 tests):",
                report.setup_table(slopes),
            ]
        if "first-test" in settings.modes:
            rows = first_test.measure(settings, server, workdir)
            results["first_test"] = rows
            lines += [
                "",
                f"Time to the first test: {settings.first_test_runs} runs.",
                report.first_test_table(rows),
            ]
        if "startup" in settings.modes:
            variants = startup.startup(settings, server, workdir)
            results["startup"] = variants
            lines += ["", *report.startup_lines(variants, settings.startup_tests)]
        if "xdist" in settings.modes:
            walls = startup.xdist(settings, server, workdir)
            results["xdist"] = walls
            lines += ["", *report.xdist_lines(walls, settings.xdist_tests)]
        if "profile" in settings.modes:
            lines += ["", profiling.profile(settings, server, workdir)]
    finally:
        server.drop_ours()
        if settings.keep:
            print(f"suites kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["load_after"] = report.load()
    results["seconds"] = time.perf_counter() - started
    print()
    print(f"Machine: {results['machine']}")
    print(f"Load average before {results['load_before']}, after {results['load_after']}")
    for line in lines:
        print(line)
    print(f"\ntotal {results['seconds']:.0f} s")
    if settings.json_path:
        report.write_json(Path(settings.json_path), results)
    return 0
