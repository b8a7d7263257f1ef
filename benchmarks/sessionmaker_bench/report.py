"""The printed report (reStructuredText tables, pasted as is into README.rst) and its JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from sessionmaker_bench.first_test import FirstTest
    from sessionmaker_bench.per_test import Slope
    from sessionmaker_bench.startup import Variant

PACKAGES = ("pytest", "SQLAlchemy", "psycopg", "pytest-postgresql", "pytest-sqla", "pytest-xdist")


def machine(server: str) -> str:
    """The facts a reader needs to compare a run with theirs."""
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            memory = f", {int(info.readline().split()[1]) / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for package in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{package} {version(package)}")
    return (
        f"{os.cpu_count()} CPUs{memory}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}, {server}"
    )


def load() -> str:
    """The load average: how busy the (possibly shared) machine was."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def spread(values: Sequence[float], scale: float, digits: int) -> str:
    if not values:
        return ""
    return f"{min(values) * scale:.{digits}f} to {max(values) * scale:.{digits}f}"


def note(problem: str | None) -> str:
    """A problem, short enough for a table cell (the JSON report keeps it whole)."""
    text = " ".join((problem or "").split())
    return text if len(text) <= 90 else text[:87] + "..."


def render(rows: list[list[str]]) -> str:
    """A reStructuredText simple table: labels and notes left-aligned, numbers right-aligned."""
    columns = len(rows[0])
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    rule = "  ".join("=" * width for width in widths)

    def line(row: list[str], header: bool = False) -> str:
        cells = [row[0].ljust(widths[0])]
        for index in range(1, columns):
            text = row[index]
            left = header or rows[0][index] == "note"
            cells.append(text.ljust(widths[index]) if left else text.rjust(widths[index]))
        return "  ".join(cells).rstrip()

    return "\n".join([rule, line(rows[0], header=True), rule, *map(line, rows[1:]), rule])


def per_test_table(slopes: list[Slope]) -> str:
    """Wall and CPU time per test: the slopes, median of the rounds, and their ratio to the
    floor's. A note column only when a strategy has a problem to report."""
    notes = any(slope.problem for slope in slopes)
    header = ["strategy", "tests", "per test ms", "range ms", "x floor", "CPU ms", "x floor"]
    rows = [header + ["note"] * notes]
    for slope in slopes:
        sizes = f"{slope.sizes[0]}/{slope.sizes[1]}"
        if not slope.per_test:
            cells = [slope.label, sizes, "-", "", "", "-", ""]
        else:
            cells = [
                slope.label,
                sizes,
                ms(statistics.median(slope.per_test)),
                spread(slope.per_test, 1000, 2),
                ratio(slope.x_floor),
                ms(statistics.median(slope.cpu_per_test)),
                ratio(slope.cpu_x_floor),
            ]
        rows.append(
            cells + [note(slope.problem or ("no runs" if not slope.per_test else ""))] * notes
        )
    return render(rows)


def setup_table(slopes: list[Slope]) -> str:
    """The one-time set-up of each strategy (the intercepts), median of the rounds."""
    rows = [["strategy", "set-up s", "range s"]]
    for slope in slopes:
        if slope.setup:
            median = f"{statistics.median(slope.setup):.2f}"
            rows.append([slope.label, median, spread(slope.setup, 1, 2)])
        else:
            rows.append([slope.label, "-", ""])
    return render(rows)


def ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else ""


def first_test_table(rows_in: list[FirstTest]) -> str:
    notes = any(row.problem for row in rows_in)
    header = ["one test", "median s", "range s", "over plain pytest", "over the ORM floor"]
    rows = [header + ["note"] * notes]
    for row in rows_in:
        if not row.walls:
            cells = [row.label, "-", "", "", ""]
        else:
            plain = row.label.startswith("plain") or not row.over_plain
            over = "" if plain else signed(statistics.median(row.over_plain))
            floor = signed(statistics.median(row.over_floor)) if row.over_floor else ""
            median = f"{statistics.median(row.walls):.2f}"
            cells = [row.label, median, spread(row.walls, 1, 2), over, floor]
        rows.append(cells + [note(row.problem or ("no runs" if not row.walls else ""))] * notes)
    return render(rows)


def signed(seconds: float) -> str:
    return f"{seconds:+.2f} s"


def startup_lines(variants: list[Variant], tests: int) -> list[str]:
    if not variants:
        return []
    base = variants[0]
    counted = [v for v in variants if v.values]
    if variants[0].unit == "instructions":
        lines = [f"Start-up, {tests} tests using no database, instructions (callgrind):"]
        for variant in variants:
            if not variant.values:
                lines.append(f"  {variant.label:32s} failed: {variant.problem}")
                continue
            count = variant.values[0]
            extra = (
                f"  (+{count / base.values[0] - 1:.2%})"
                if variant is not base and base.values
                else ""
            )
            lines.append(f"  {variant.label:32s} {count / 1e9:.3f} G{extra}")
        return lines
    runs = max((len(v.values) for v in counted), default=0)
    lines = [f"Start-up, {tests} tests using no database (median of {runs} runs):"]
    for variant in variants:
        if not variant.values:
            lines.append(f"  {variant.label:32s} failed: {variant.problem}")
            continue
        wall = statistics.median(variant.values)
        extra = ""
        if variant is not base and base.values:
            extra = f"  (+{ms(wall - statistics.median(base.values))} ms)"
        lines.append(f"  {variant.label:32s} {wall:.3f} s{extra}")
    return lines


def xdist_lines(walls: dict[str, list[float]], tests: int) -> list[str]:
    if not all(walls.values()):
        return ["xdist: failed"]
    (serial_label, serial), (parallel_label, parallel) = walls.items()
    a, b = statistics.median(serial), statistics.median(parallel)
    return [
        f"xdist, pytest-sessionmaker rollback, {tests} tests (median wall of {len(serial)} runs):",
        f"  {serial_label} {a:.2f} s, {parallel_label} {b:.2f} s: {a / b:.2f}x the throughput",
    ]


def write_json(path: Path, results: dict[str, Any]) -> None:
    def plain(value: Any) -> Any:
        if isinstance(value, list):
            return [plain(item) for item in value]
        if hasattr(value, "__dataclass_fields__"):
            return asdict(value)
        return value

    path.write_text(json.dumps({key: plain(value) for key, value in results.items()}, indent=2))
