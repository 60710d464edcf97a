"""The storage contract: the same tests against LocalStore and the AWS team backend (moto on loopback)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from runbook.errors import LockHeld, UsageError
from runbook.journal import PREFIX, ZERO, line_hash

AWS_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-west-1"}


_SERVER: list[Any] = []


def endpoint() -> str:
    """One moto server on loopback for the test process (every test uses its own table and bucket)."""
    if not _SERVER:
        import atexit

        from runbook.standins.ecs import AwsStandIn

        for key, value in AWS_KEYS.items():
            os.environ.setdefault(key, value)
        _SERVER.append(AwsStandIn(tick=None).start())
        atexit.register(_SERVER[0].stop)
    return str(_SERVER[0].endpoint_url)


@pytest.fixture
def moto_endpoint() -> str:
    return endpoint()


def team_env(endpoint: str, object_lock: bool = True) -> dict[str, Any]:
    """An environment whose backend is a fresh table and bucket on the moto server, created."""
    from runbook.backends import admin

    token = secrets.token_hex(4)
    env = {"name": "team", "aws": {"region": "us-west-1", "endpoint_url": endpoint},
           "backend": {"kind": "aws", "bucket": f"runbook-{token}", "table": f"runbook-{token}", "region": "us-west-1"}}
    admin.init(env, object_lock=object_lock)
    return env


@pytest.fixture
def aws_env(moto_endpoint: str) -> dict[str, Any]:
    return team_env(moto_endpoint)


@pytest.fixture(params=["local", "aws"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from runbook.backends import open_store

    env = None if request.param == "local" else team_env(request.getfixturevalue("moto_endpoint"))
    return open_store(env, tmp_path / "home")


def event(n: int) -> dict[str, Any]:
    return {"time": "2026-01-01T00:00:00Z", "run": "r", "operator": "op", "type": "note", "data": {"n": n}}


def test_open_store_picks_the_backend(tmp_path: Path, aws_env: dict[str, Any]) -> None:
    from runbook.backends import open_store, same_backend
    from runbook.backends.aws_store import AwsStore
    from runbook.store import LocalStore

    assert isinstance(open_store(None, tmp_path), LocalStore)
    assert isinstance(open_store({"backend": {"kind": "local"}}, tmp_path), LocalStore)
    aws = open_store(aws_env, tmp_path)
    assert isinstance(aws, AwsStore) and same_backend(aws, aws_env) and not same_backend(aws, None)


def test_append_read_back_and_continue(store: Any) -> None:
    store.create_run("r1")
    journal = store.journal("r1")
    assert (journal.length, journal.head, journal.repaired) == (0, ZERO, None)
    first = journal.append([event(0), event(1)])
    assert [r["seq"] for r in first] == [0, 1] and first[0]["prev"] == ZERO
    again = store.journal("r1")                      # a new writer continues the same chain
    assert (again.length, again.head) == (2, journal.head)
    again.append([event(2)])
    records = store.records("r1")
    assert [r["data"]["n"] for r in records] == [0, 1, 2]
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert records[2]["prev"] == journal.head
    assert store.journal_path("r1").read_bytes().startswith(PREFIX)
    assert store.run_dir("r1").is_dir() and store.workdir("r1").is_dir()


def test_chain_and_ledger_verify(store: Any) -> None:
    from runbook.audit import verify

    store.create_run("r1")
    store.ledger.append({"type": "run.start", "run": "r1"})
    journal = store.journal("r1")
    journal.append([event(0)])
    journal.append([event(1), event(2)])
    store.ledger.append({"type": "run.anchor", "run": "r1", "length": journal.length, "head": journal.head})
    report = verify(store)
    assert report.ok, [str(p) for p in report.problems]
    assert (report.runs, report.records) == (1, 3)
    lines = store.journal_path("r1").read_bytes().splitlines(keepends=True)
    assert line_hash(lines[-1]) == journal.head
    assert [r["type"] for r in store.ledger.records()] == ["run.start", "run.anchor"]


def test_run_ids_and_find_by_prefix(store: Any) -> None:
    for run_id in ("20260101T000000.000001Z-aaaaaa", "20260101T000000.000002Z-bbbbbb"):
        store.create_run(run_id)
    assert store.run_ids() == ["20260101T000000.000001Z-aaaaaa", "20260101T000000.000002Z-bbbbbb"]
    assert store.find("20260101T000000.000002") == "20260101T000000.000002Z-bbbbbb"
    with pytest.raises(UsageError, match="ambiguous"):
        store.find("2026")
    with pytest.raises(UsageError, match="no run"):
        store.find("1999")
    store.journal("20260101T000000.000001Z-aaaaaa").append([event(0)])
    assert len(list(store.states())) == 2


def test_blobs_are_content_addressed(store: Any) -> None:
    import hashlib

    store.create_run("r1")
    digest = store.store_blob("r1", b"evidence")
    assert digest == hashlib.sha256(b"evidence").hexdigest()
    assert store.store_blob("r1", b"evidence") == digest
    assert (store.run_dir("r1") / "blobs" / digest).read_bytes() == b"evidence"


def test_lock_acquire_held_release(store: Any) -> None:
    holder = store.locks.acquire("prod", "r1", "deploy", "alice@example.com")
    assert (holder.key, holder.run_id, holder.epoch, holder.pid) == ("prod", "r1", 1, os.getpid())
    with pytest.raises(LockHeld, match=r"alice@example.com on .* holds lock 'prod' .* for run r1 of deploy"):
        store.locks.acquire("prod", "r2", "deploy", "bob@example.com")
    assert [h.run_id for h in store.locks.all()] == ["r1"]
    assert store.locks.read("prod").operator == "alice@example.com"
    store.locks.check("prod", "r1", 1)
    with pytest.raises(UsageError, match="is live"):
        store.locks.unlock("prod")
    store.locks.release("prod", "r1")
    assert store.locks.read("prod") is None
    assert store.locks.acquire("prod", "r2", "deploy", "bob@example.com").run_id == "r2"


def test_takeover_bumps_the_epoch_and_fences_the_holder(store: Any) -> None:
    from runbook.locks import Fenced

    holder = store.locks.acquire("prod", "r1", "deploy", "alice@example.com")
    store.create_run("r1")
    journal = store.journal("r1", before_write=lambda: store.locks.check("prod", "r1", holder.epoch))
    journal.append([event(0)])
    taken, previous = store.locks.take_over("prod", "r2", "rollback", "bob@example.com")
    assert taken.epoch == holder.epoch + 1 and previous.run_id == "r1"
    with pytest.raises(Fenced, match="no longer holds lock 'prod': now bob@example.com"):
        journal.append([event(1)])
    assert [r["data"]["n"] for r in store.records("r1")] == [0]     # the fenced holder wrote nothing
    store.locks.check("prod", "r2", taken.epoch)
    with pytest.raises(LockHeld):
        store.locks.reclaim("prod", "r1", "deploy", "alice@example.com")


def test_reclaim_by_the_same_run(store: Any) -> None:
    holder = store.locks.acquire("prod", "r1", "deploy", "alice@example.com")
    again = store.locks.reclaim("prod", "r1", "deploy", "alice@example.com")
    assert again.run_id == "r1" and again.epoch >= holder.epoch
    store.locks.check("prod", "r1", again.epoch)
    store.locks.release("prod", "r1")
    assert store.locks.reclaim("prod", "r1", "deploy", "alice@example.com").epoch == 1
