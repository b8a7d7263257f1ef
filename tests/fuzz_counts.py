"""How many generated test sequences ran, per backend, for the fuzz test's summary line."""

from __future__ import annotations

from collections import Counter

from hypothesis import settings

SEQUENCES: Counter[str] = Counter()


def program_sizes() -> tuple[int, int]:
    """Fewest and most tests per program. A long profile's programs are longer: fewer inner
    runs for the same number of sequences. Hypothesis shrinks a failing one to the few tests
    that matter."""
    return (20, 60) if _long_profile() else (8, 14)


def count_sequences(backend: str, tests: int) -> None:
    SEQUENCES[backend] += tests


def commit_program_sizes() -> tuple[int, int]:
    """The same for db_commit programs (each of their tests restores, so they are slower)."""
    return (10, 30) if _long_profile() else (4, 8)


def _long_profile() -> bool:
    current = settings.default
    return current is not None and current.max_examples >= 100
