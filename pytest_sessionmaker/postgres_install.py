"""Where PostgreSQL is installed: the pg_ctl chosen or found, its programs and their version."""

from __future__ import annotations

import glob
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_sessionmaker.errors import DatabaseUnavailable

PG_CTL_LOCATIONS = (
    "/usr/lib/postgresql/*/bin/pg_ctl",
    "/usr/pgsql-*/bin/pg_ctl",
    "/usr/local/pgsql/bin/pg_ctl",
    "/opt/homebrew/opt/postgresql*/bin/pg_ctl",
    "/usr/local/opt/postgresql*/bin/pg_ctl",
    "/Applications/Postgres.app/Contents/Versions/*/bin/pg_ctl",
)

MISSING_BINARIES = (
    "No database URL is configured, so the plugin would start a throwaway PostgreSQL, but "
    "PostgreSQL is not installed (no pg_ctl in {places}): install it (Debian/Ubuntu: apt-get "
    "install postgresql; macOS: brew install postgresql), point --postgresql-exec at its pg_ctl, "
    "or choose a database with --db-url (e.g. --db-url sqlite://), $PYTEST_DB_URL or the db_url "
    "ini key."
)
NOT_PG_CTL = (
    "{path} ({source}) is not PostgreSQL's pg_ctl ({problem}): point --postgresql-exec at the "
    "pg_ctl of a PostgreSQL installation (e.g. /usr/lib/postgresql/15/bin/pg_ctl), or choose a "
    "database with --db-url (e.g. --db-url sqlite://)."
)


@dataclass(frozen=True)
class Binaries:
    """The server programs of one PostgreSQL installation, and their version."""

    bindir: Path
    version: str

    @property
    def postgres(self) -> str:
        return str(self.bindir / "postgres")

    @property
    def initdb(self) -> str:
        return str(self.bindir / "initdb")

    @property
    def major_version(self) -> str:
        words = [word for word in self.version.split() if word[:1].isdigit()]
        return words[0].split(".")[0] if words else "unknown"


def _version_key(path: str) -> tuple[int, ...]:
    digits = [int(part) for part in Path(path).parts if part.isdigit()]
    return tuple(digits) or (0,)


def _search_pg_ctl() -> str | None:
    """pg_ctl from PATH, pg_config --bindir, or the usual install places (newest first)."""
    found = shutil.which("pg_ctl")
    if found:
        return found
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run(  # noqa: S603 - fixed argument list
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir and Path(bindir, "pg_ctl").is_file():
            return str(Path(bindir, "pg_ctl"))
    candidates = [path for pattern in PG_CTL_LOCATIONS for path in glob.glob(pattern)]
    return max(candidates, key=_version_key) if candidates else None


def find_binaries(chosen: str | None, ini_choice: str | None) -> Binaries:
    """The installation of ``chosen`` (--postgresql-exec), else of ``ini_choice`` when that file
    exists, else of the pg_ctl found by searching.

    An ini value naming a missing file is passed over: pytest-postgresql's own default names
    PostgreSQL 14's Debian path, and without its private default nothing tells the two apart.
    """
    if chosen is not None:
        pg_ctl, source = Path(chosen), "from --postgresql-exec"
        if not pg_ctl.is_file():
            raise DatabaseUnavailable(
                NOT_PG_CTL.format(source=source, path=chosen, problem="no such file")
            )
    elif ini_choice and Path(ini_choice).is_file():
        pg_ctl, source = Path(ini_choice), "from the postgresql_exec ini key"
    else:
        found = _search_pg_ctl()
        if found is None:
            looked = ("PATH", "pg_config --bindir", *PG_CTL_LOCATIONS)
            places = ", ".join((*looked, ini_choice) if ini_choice else looked)
            raise DatabaseUnavailable(MISSING_BINARIES.format(places=places))
        pg_ctl, source = Path(found), "found by searching"
    # /usr/local/bin/pg_ctl is often a link into the real bindir, where postgres and initdb are.
    bindir = pg_ctl.resolve().parent
    missing = [name for name in ("postgres", "initdb") if not (bindir / name).is_file()]
    if missing:
        problem = f"no {' or '.join(missing)} next to it in {bindir}"
        raise DatabaseUnavailable(NOT_PG_CTL.format(source=source, path=pg_ctl, problem=problem))
    try:
        version = subprocess.run(  # noqa: S603 - the installation's own program
            [str(bindir / "postgres"), "-V"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        problem = f"its postgres does not run: {exc}"
        raise DatabaseUnavailable(
            NOT_PG_CTL.format(source=source, path=pg_ctl, problem=problem)
        ) from None
    return Binaries(bindir, version)
