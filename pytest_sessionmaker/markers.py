"""The ``db_commit`` marker: its registration, signature and reading."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pytest

COMMIT_MARKER = "db_commit"
COMMIT_MARKER_HELP = (
    f"{COMMIT_MARKER}(allow_unrestored=False): the test commits for real (threads, other "
    "connections, subprocesses see its rows); the plugin restores the tables it wrote "
    "afterwards. allow_unrestored=True permits such a test where exact restore is impossible "
    "(db_database = as_given with db_schema = none); its rows then stay."
)


class CommitOptions(NamedTuple):
    allow_unrestored: bool = False


def _commit_signature(*, allow_unrestored: bool = False) -> CommitOptions:
    return CommitOptions(allow_unrestored=allow_unrestored)


def commit_marker_options(node: pytest.Item) -> CommitOptions | None:
    """The closest ``db_commit`` marker's options (function, class or module), or None."""
    marker = node.get_closest_marker(COMMIT_MARKER)
    if marker is None:
        return None
    return _commit_signature(*marker.args, **marker.kwargs)
