"""Storage backends: the one storage interface the engine uses, and how to open one.

``backend: {kind: local}`` (the default) keeps everything under the state home
(:class:`runbook.store.LocalStore`); ``backend: {kind: aws, bucket, table, region}``
keeps locks in DynamoDB and journals, the ledger and evidence in S3
(:class:`runbook.backends.aws_store.AwsStore`). Both expose the methods of
:class:`Store`; the engine does not know which one it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from ..state import RunState


class Journal(Protocol):
    """An append-only, hash-chained journal of one run (``runbook.journal.ChainedFile``)."""

    length: int
    head: str
    repaired: dict[str, Any] | None

    def append(self, records: Any) -> list[dict[str, Any]]: ...


class Ledger(Protocol):
    """The chained ledger of runs."""

    def append(self, fields: dict[str, Any]) -> dict[str, Any]: ...

    def lines(self) -> list[bytes]: ...

    def records(self) -> Iterator[dict[str, Any]]: ...


class Locks(Protocol):
    """Lock leases (``runbook.locks.LockStore``)."""

    def acquire(self, key: str, run_id: str, runbook: str, operator: str, wait: float = 0.0,
                on_wait: Any = None) -> Any: ...

    def reclaim(self, key: str, run_id: str, runbook: str, operator: str) -> Any: ...

    def take_over(self, key: str, run_id: str, runbook: str, operator: str) -> tuple[Any, Any]: ...

    def check(self, key: str, run_id: str, epoch: int) -> None: ...

    def release(self, key: str, run_id: str, epoch: int | None = None) -> None: ...

    def unlock(self, key: str) -> Any: ...

    def read(self, key: str) -> Any: ...

    def all(self) -> list[Any]: ...

    def held_message(self, current: Any) -> str: ...


class Store(Protocol):
    """What the engine, the session and the audit commands ask of storage."""

    home: Path
    ledger: Any
    locks: Any

    def create_run(self, run_id: str) -> Path: ...

    def journal(self, run_id: str, before_write: Callable[[], None] | None = None, repair: bool = False) -> Any: ...

    def records(self, run_id: str) -> list[dict[str, Any]]: ...

    def state(self, run_id: str) -> RunState: ...

    def run_ids(self) -> list[str]: ...

    def find(self, prefix: str) -> str: ...

    def states(self) -> Iterator[RunState]: ...

    def store_blob(self, run_id: str, data: bytes) -> str: ...

    def run_dir(self, run_id: str) -> Path: ...

    def workdir(self, run_id: str) -> Path: ...

    def journal_path(self, run_id: str) -> Path: ...


def backend_of(env_data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The environment's backend section; ``{kind: local}`` when it has none."""
    section = (env_data or {}).get("backend") or {}
    return dict(section) if section.get("kind") else {"kind": "local"}


def open_store(env_data: Mapping[str, Any] | None, home: Path) -> Any:
    """The store an environment selects: local under ``home``, or the AWS team backend."""
    backend = backend_of(env_data)
    if backend["kind"] == "aws":
        from .aws_store import AwsStore

        return AwsStore(dict(env_data or {}), Path(home))
    from ..store import LocalStore

    return LocalStore(Path(home))


def same_backend(store: Any, env_data: Mapping[str, Any] | None) -> bool:
    """Whether ``store`` already is the store the environment selects."""
    backend = backend_of(env_data)
    if backend["kind"] != "aws":
        return getattr(store, "kind", "local") == "local"
    return getattr(store, "kind", "local") == "aws" and store.bucket == backend["bucket"] \
        and store.table == backend["table"]


def store_for(root: Path, env_name: str | None) -> Any:
    """The store of a project for a named environment (``--env``), or the local one."""
    from ..project import Project, state_home

    if not env_name:
        return open_store(None, state_home(root))
    from ..plan import load_environment

    env = load_environment(Project(Path(root)), env_name)
    return open_store(env.data, state_home(root))


def store_of(root: Path, env: str | None = None) -> Any:
    """The store the environment names (its team backend), else the local state home.

    An environment without a file (a name only found in old runs) filters, it selects nothing.
    """
    from ..project import Project

    if env and env not in Project(root).environment_names():
        env = None
    return store_for(root, env)
