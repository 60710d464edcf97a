"""Storage of runs under the state home: journals, the ledger, evidence blobs, locks.

``LocalStore`` is the one storage door the engine uses; a team backend implements the
same methods on other services.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterator

from . import clock
from .errors import UsageError
from .journal import ChainedFile, Ledger, atomic_write, fsync_dir, read_records
from .locks import LockStore
from .state import RunState, derive


def new_run_id() -> str:
    """Time-ordered (to the microsecond) and unique: ``20261128T053012.481516Z-4f2a9c``."""
    return clock.now().strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


class LocalStore:
    def __init__(self, home: Path, durable: bool = True):
        self.home = Path(home)
        self.durable = durable
        self.runs_dir = self.home / "runs"
        self.ledger = Ledger(self.home, durable)
        self.locks = LockStore(self.home, durable)

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def journal_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "journal.jsonl"

    def create_run(self, run_id: str) -> Path:
        folder = self.run_dir(run_id)
        new_parent = not self.runs_dir.exists()
        folder.mkdir(parents=True, exist_ok=False)
        if self.durable:
            fsync_dir(self.runs_dir)
            if new_parent:
                fsync_dir(self.home)
        return folder

    def journal(self, run_id: str, before_write: Callable[[], None] | None = None, repair: bool = False) -> ChainedFile:
        return ChainedFile(self.journal_path(run_id), self.durable, before_write, repair)

    def records(self, run_id: str) -> list[dict[str, Any]]:
        return read_records(self.journal_path(run_id))

    def state(self, run_id: str) -> RunState:
        return derive(self.records(run_id))

    def run_ids(self) -> list[str]:
        try:
            with os.scandir(self.runs_dir) as it:     # the folder's own type field: no stat per run
                return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def find(self, prefix: str) -> str:
        """A run id from any unique prefix."""
        matches = [r for r in self.run_ids() if r.startswith(prefix)]
        if not matches:
            raise UsageError(f"<command line>: no run {prefix!r} in {self.home}; `invoke audit.list` lists runs")
        if len(matches) > 1:
            raise UsageError(f"<command line>: run id {prefix!r} is ambiguous: {', '.join(matches[:5])}"
                             f"{' ...' if len(matches) > 5 else ''}")
        return matches[0]

    def states(self) -> Iterator[RunState]:
        for run_id in self.run_ids():
            yield self.state(run_id)

    verifies_approvals = False      # prompt gates on protected environments need the team backend

    def verified_approvals(self, run_id: str, digest: str, params: dict[str, Any],
                           environment: str | None) -> tuple[list[Any], list[str]]:
        """Approvals recorded under the approvers' own identities (``runbook.approve``): none locally."""
        return [], []

    def store_blob(self, run_id: str, data: bytes) -> str:
        """Content-addressed evidence; returns the SHA-256 it is stored under."""
        digest = hashlib.sha256(data).hexdigest()
        folder = self.run_dir(run_id) / "blobs"
        target = folder / digest
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data, self.durable)
        return digest

    def workdir(self, run_id: str) -> Path:
        """A folder the run owns (its git checkout lives here)."""
        path = self.run_dir(run_id) / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path


def salted_hash(value: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    return salt + "$" + hashlib.sha256((salt + "\0" + value).encode()).hexdigest()


def check_salted(value: str, stored: str) -> bool:
    salt = stored.split("$", 1)[0]
    return secrets.compare_digest(salted_hash(value, salt), stored)

