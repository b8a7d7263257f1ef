"""Initialised clusters kept in the user's cache directory, copied instead of running initdb.

initdb is most of a throwaway server's start (1.2 to 1.4 s measured here, where copying its
result takes about 0.1 s). A template is kept per PostgreSQL version, initdb options and
account, in ``$XDG_CACHE_HOME/pytest-sessionmaker`` (else ``~/.cache/pytest-sessionmaker``):
one directory per key, holding ``data`` and a ``template.json`` naming the key. Templates are
never changed in place: one is built under a file lock in a directory of its own and renamed
into place, and a stale or damaged one (its ``template.json`` names another key, a file is
missing, or a server copied from it did not start) is renamed away and removed the same way.

The files are copied, not hard-linked: PostgreSQL writes into its relation files in place (hint
bits, pruning, vacuum), so a link would let one run change the template under the next.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_sessionmaker.postgres_cluster import INITDB_OPTIONS

if TYPE_CHECKING:
    from filelock import FileLock

    from pytest_sessionmaker.postgres_cluster import Account, Cluster

# Bump when what a template holds changes, so old ones are not used.
TEMPLATE_FORMAT = 1
LOCK_TIMEOUT = 300.0
MARKER = "template.json"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "pytest-sessionmaker")


def copy_cluster(source: Path, target: Path, owner: Account | None = None) -> None:
    """Copy a data directory file by file, keeping modes; given ``owner``, that account owns
    the copy (PostgreSQL accepts only a data directory owned by the user it runs as)."""
    target.mkdir(mode=source.stat().st_mode & 0o777)
    made = [target]
    for directory, subdirectories, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        for name in subdirectories:
            made.append(target / relative / name)
            made[-1].mkdir(mode=(Path(directory) / name).stat().st_mode & 0o777)
        for name in files:
            made.append(target / relative / name)
            shutil.copyfile(Path(directory) / name, made[-1], follow_symlinks=False)
            made[-1].chmod((Path(directory) / name).stat().st_mode & 0o777)
    if owner is not None:
        for path in made:
            owner.give(path)


@dataclass(frozen=True)
class TemplateCache:
    """The template for one cluster: its installation, initdb options and account."""

    root: Path
    cluster: Cluster

    @property
    def key(self) -> dict[str, Any]:
        return {
            "format": TEMPLATE_FORMAT,
            "version": self.cluster.binaries.version,
            "initdb_options": list(INITDB_OPTIONS),
            "account": self.cluster.account.name,
        }

    @property
    def directory(self) -> Path:
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        major = self.cluster.binaries.major_version
        return self.root / f"postgresql-{major}-{self.cluster.account.name}-{digest[:12]}"

    def _valid_id(self) -> str | None:
        """The id of the template in place, when it is complete and made for this key."""
        try:
            recorded = json.loads((self.directory / MARKER).read_text())
            version = (self.directory / "data" / "PG_VERSION").read_text().strip()
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or recorded.get("key") != self.key:
            return None
        if version != self.cluster.binaries.major_version:
            return None
        template_id = recorded.get("id")
        return template_id if isinstance(template_id, str) else None

    def copy_into(self, datadir: Path) -> str | None:
        """Copy the template to ``datadir``; its id, or None (and no ``datadir``) when there is
        no usable template or it was replaced or removed while it was being copied."""
        template_id = self._valid_id()
        if template_id is None:
            return None
        try:
            copy_cluster(self.directory / "data", datadir, self.cluster.account)
        except OSError:
            template_id = None
        if template_id is None or self._valid_id() != template_id:
            shutil.rmtree(datadir, ignore_errors=True)
            return None
        return template_id

    def _lock(self) -> FileLock:
        from filelock import FileLock

        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory) + ".lock", timeout=LOCK_TIMEOUT)

    def provide(self) -> str | None:
        """Fill the cluster's data directory from the template, running initdb to make the
        template first when there is none; the id of the template copied, or None when initdb
        made the data directory itself.

        Concurrent runs wait for one of them to make the template and then copy it. Without a
        usable cache directory (a read-only home) every run runs initdb.
        """
        datadir = self.cluster.datadir
        copied = self.copy_into(datadir)
        if copied is not None:
            return copied
        try:
            lock = self._lock()
            lock.acquire()
        except Exception:  # an unwritable cache, or a lock held for minutes
            self.cluster.initdb()
            return None
        try:
            copied = self.copy_into(datadir)
            if copied is not None:
                return copied
            self.cluster.initdb()
            with contextlib.suppress(OSError):
                self._store(datadir)
            return None
        finally:
            lock.release()

    def _store(self, datadir: Path) -> None:
        """Put a copy of ``datadir`` in place as the template (the caller holds the lock)."""
        for leftover in self.root.glob(f"{self.directory.name}.*-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # of runs killed while building
        staging = self.directory.with_name(f"{self.directory.name}.new-{uuid.uuid4().hex}")
        staging.mkdir()
        copy_cluster(datadir, staging / "data")
        marker = {"key": self.key, "id": uuid.uuid4().hex}
        (staging / MARKER).write_text(json.dumps(marker, indent=1))
        self._remove_current()
        staging.rename(self.directory)

    def _remove_current(self) -> None:
        if not self.directory.exists():
            return
        retired = self.directory.with_name(f"{self.directory.name}.old-{uuid.uuid4().hex}")
        self.directory.rename(retired)
        shutil.rmtree(retired, ignore_errors=True)

    def discard(self, template_id: str) -> None:
        """Remove the template a server would not start from, unless it was replaced since."""
        with contextlib.suppress(Exception), self._lock():
            if self._valid_id() == template_id:
                self._remove_current()
