"""db_commit restores exactly, whatever the test did, on every backend (issue 11).

Inner modules: tests/examples/restore/ (a schema with foreign keys to other tables and to the
same table, a composite key, unique values, a computed column, an identity column, a table
without key, a standalone sequence on PostgreSQL; seed rows from a session fixture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpers import Project


def test_every_operation_of_a_commit_test_is_undone_exactly(catalog_project: Project) -> None:
    catalog_project.copy_tests("restore/test_exact_restore.py")
    result = catalog_project.run()
    result.assert_outcomes(passed=26)


def test_counters_are_the_same_in_any_order(catalog_project: Project) -> None:
    catalog_project.copy_tests("restore/test_counters.py")
    catalog_project.run().assert_outcomes(passed=6)
    catalog_project.run("-p", "randomly", "-p", "no:cacheprovider").assert_outcomes(passed=6)


def test_a_modules_seed_data_is_its_baseline_and_undone_after_it(catalog_project: Project) -> None:
    catalog_project.copy_tests("restore/test_scoped_seed_a.py", "restore/test_scoped_seed_b.py")
    catalog_project.run().assert_outcomes(passed=3)
