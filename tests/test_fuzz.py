"""Property: whatever a sequence of rolled-back tests does, each test starts from the baseline.

Hypothesis generates programs (tests/fuzzing.py): sequences of tests that use sessions of
db_session, db_sessionmaker and the application's rebound factory, raw SQL on db_connection,
savepoints, IntegrityErrors, session state a rollback keeps, and the ways a commit escapes. Each
program runs as one inner pytest run; after every generated test a db_commit test compares the
whole database (rows and identity counters) with the baseline and looks for leftover session
state, and the escapes must be reported on exactly the tests that took them.

Profiles (tests/conftest.py): "quick" runs in the default suite with a fixed seed; "long"
(``--hypothesis-profile=long`` or HYPOTHESIS_PROFILE=long) runs at least 10,000 sequences per
backend and prints the count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import given

from fuzz_counts import count_sequences, program_sizes
from fuzzing import Program, describe, expected_errors, programs, render

if TYPE_CHECKING:
    from helpers import Project


@given(program=programs(*program_sizes()))
def test_no_sequence_of_tests_leaves_anything_behind(
    fuzz_project: Project, program: Program
) -> None:
    backend = fuzz_project.backend.name
    fuzz_project.pytester.makepyfile(test_generated=render(program, backend))
    result = fuzz_project.run("-p", "no:cacheprovider")
    errors = [
        line.split("::")[1].split(" ")[0]
        for line in result.stdout.lines
        if line.startswith("ERROR test_generated.py::")
    ]
    expected = expected_errors(program, backend)
    outcomes = result.parseoutcomes()
    failed = outcomes.get("failed", 0)
    assert (failed, errors) == (0, expected), (
        f"{result.stdout.str()}\n\nThe generated module:\n{describe(program, backend)}"
    )
    assert outcomes.get("passed") == 2 * len(program.tests)
    count_sequences(backend, len(program.tests))
