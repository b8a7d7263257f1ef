"""Print the declared minimum version of every runtime dependency (and of the [mysql] extra) as
an exact requirement, one per line: "psycopg[binary]>=3.1.4" gives "psycopg[binary]==3.1.4".

A dependency without a ">=" floor is an error: every floor must be declared to be tested. Needs
Python 3.11 or later (tomllib), as the CI has.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

FLOOR = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*>=\s*(?P<version>[^,;\s]+)"
)
EXTRAS = ("mysql",)


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    exact = []
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match is None:
            print(f"pyproject.toml: {requirement!r} declares no >= floor", file=sys.stderr)
            return 1
        exact.append(f"{match['name']}=={match['version']}")
    print("\n".join(exact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
