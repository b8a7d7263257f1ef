"""The generated test suites: the same tests for every strategy, only the fixture differs.

A suite is a folder holding ``models.py`` (from ``benchmarks/suite/``), the strategy's files
(from ``benchmarks/strategies/<folder>/``), a ``pytest.ini`` with the strategy's settings, and
test modules of 100 tests each, as a real project splits its tests. Each test adds one row
through the ORM to one of the tables, commits, and counts the table's rows expecting one, so a
strategy that lets rows leak from one test to the next fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sessionmaker_bench.strategies import Strategy

BENCHMARKS = Path(__file__).resolve().parents[1]
REPO = BENCHMARKS.parent
STRATEGY_FILES = BENCHMARKS / "strategies"
SUITE_FILES = BENCHMARKS / "suite"
TESTS_PER_MODULE = 100

TEST_BODIES = {
    "orm": """
def test_{index:04d}({fixture}):
    model = MODELS[{index} % len(MODELS)]
    {fixture}.add(model(name="row {index}", amount={index}))
    {fixture}.commit()
    assert {fixture}.scalar(select(func.count()).select_from(model)) == 1
""",
    "async_orm": """
async def test_{index:04d}({fixture}):
    model = MODELS[{index} % len(MODELS)]
    {fixture}.add(model(name="row {index}", amount={index}))
    await {fixture}.commit()
    assert await {fixture}.scalar(select(func.count()).select_from(model)) == 1
""",
    "empty": """
def test_{index:04d}():
    pass
""",
}

ORM_HEADER = "import pytest\nfrom sqlalchemy import func, select\n\nfrom models import MODELS\n"
MODULE_HEADERS = {"orm": ORM_HEADER, "async_orm": ORM_HEADER, "empty": ""}


def write_suite(directory: Path, strategy: Strategy, tests: int) -> Path:
    """Write ``tests`` tests for ``strategy`` into ``directory`` (created; must not exist)."""
    directory.mkdir(parents=True)
    shutil.copy2(SUITE_FILES / "models.py", directory / "models.py")
    for source in (STRATEGY_FILES / strategy.directory).iterdir():
        if source.is_file():
            shutil.copy2(source, directory / source.name)
    settings = {"pythonpath": ".", **strategy.ini}
    ini = "".join(f"{key} = {value}\n" for key, value in settings.items())
    (directory / "pytest.ini").write_text("[pytest]\n" + ini)
    header = MODULE_HEADERS[strategy.body]
    if strategy.marker:
        header += f"\npytestmark = pytest.mark.{strategy.marker}\n"
    body = TEST_BODIES[strategy.body]
    for first in range(0, tests, TESTS_PER_MODULE):
        indexes = range(first, min(first + TESTS_PER_MODULE, tests))
        tests_source = "".join(body.format(index=i, fixture=strategy.fixture) for i in indexes)
        module = directory / f"test_bench_{first // TESTS_PER_MODULE:02d}.py"
        module.write_text(header + tests_source)
    return directory
