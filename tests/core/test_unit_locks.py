"""Locks in a temp folder (``runbook.locks.LockStore``): one holder per key, epochs, stale holders,
reclaim by the run that owned it, emergency takeovers that fence, and the watcher that stops a
fenced holder within a heartbeat."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from runbook import identity, signals
from runbook.errors import LockHeld, UsageError
from runbook.locks import Fenced, Holder, LockStore, held_message, watch

KEY = "production"


def dead_pid() -> int:
    """A pid no process has right now."""
    for pid in range(4_000_000, 3_000_000, -7919):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise AssertionError("no free pid found")


@pytest.fixture
def locks(tmp_path: Path) -> LockStore:
    return LockStore(tmp_path / "home", durable=False)


def plant(locks: LockStore, run_id: str = "R0", **changes: Any) -> Holder:
    """Write a lock file as another process would have left it."""
    holder = dataclasses.replace(Holder(KEY, run_id, "release", "alice@example.com", identity.host(), os.getpid(),
                                        identity.process_start(os.getpid()), "2026-11-30T10:00:00.000000Z"),
                                 **changes)
    locks.dir.mkdir(parents=True, exist_ok=True)
    locks.path(KEY).write_text(json.dumps(dataclasses.asdict(holder)))
    return holder


# -- acquire and release -----------------------------------------------------------------------

def test_acquire_names_the_holder_at_epoch_one(locks: LockStore) -> None:
    holder = locks.acquire(KEY, "R1", "release", "tester@example.com")
    assert (holder.key, holder.run_id, holder.runbook, holder.operator, holder.epoch) == \
        (KEY, "R1", "release", "tester@example.com", 1)
    assert (holder.host, holder.pid) == (identity.host(), os.getpid()) and not holder.is_stale()
    assert locks.read(KEY) == holder and locks.all() == [holder]


def test_the_key_is_hashed_for_the_file_name(locks: LockStore) -> None:
    locks.acquire("db/../../etc passwd", "R1", "migrate", "op")
    [path] = locks.dir.glob("*.json")
    assert path == locks.path("db/../../etc passwd") and len(path.stem) == 32 and "passwd" not in path.name


def test_a_second_run_is_refused_naming_who_holds_it(locks: LockStore) -> None:
    locks.acquire(KEY, "R1", "release", "alice@example.com")
    with pytest.raises(LockHeld) as caught:
        locks.acquire(KEY, "R2", "hotfix", "bob@example.com")
    message = str(caught.value)
    assert message.startswith(f"lock 'production' is held: alice@example.com on {identity.host()} (pid {os.getpid()})")
    assert "for run R1 of release" in message and "--wait-lock" in message and caught.value.exit_code == 3


def test_waiting_for_a_lock_reports_each_look(locks: LockStore) -> None:
    locks.acquire(KEY, "R1", "release", "alice@example.com")
    seen: list[str] = []
    with pytest.raises(LockHeld, match=r"waited 0.15 s"):
        locks.acquire(KEY, "R2", "hotfix", "bob", wait=0.15, on_wait=lambda h: seen.append(h.run_id))
    assert seen and set(seen) == {"R1"}


@pytest.mark.parametrize("run_id,epoch,freed", [("R1", None, True), ("R1", 1, True), ("R1", 2, False),
                                                ("R2", None, False)])
def test_only_the_holder_at_its_epoch_frees_the_key(
        locks: LockStore, run_id: str, epoch: int | None, freed: bool) -> None:
    locks.acquire(KEY, "R1", "release", "op")
    locks.release(KEY, run_id, epoch)
    assert (locks.read(KEY) is None) is freed


def test_a_freed_key_can_be_taken_again(locks: LockStore) -> None:
    locks.acquire(KEY, "R1", "release", "op")
    locks.release(KEY, "R1")
    locks.release(KEY, "R1")                                   # twice is harmless
    assert locks.acquire(KEY, "R2", "release", "op").run_id == "R2"


def test_unreadable_lock_files_are_left_out_of_the_listing(locks: LockStore) -> None:
    locks.acquire(KEY, "R1", "release", "op")
    (locks.dir / "junk.json").write_text("{not json")
    (locks.dir / "other.json").write_text(json.dumps({"key": "x"}))
    assert [h.run_id for h in locks.all()] == ["R1"]
    assert LockStore(Path("/nonexistent/home")).all() == []


# -- stale holders ------------------------------------------------------------------------------

@pytest.mark.parametrize("changes,stale", [
    ({}, False),
    ({"pid": dead_pid()}, True),
    ({"pid_start": "1"}, True),                                   # the pid was reused by another process
    ({"pid": dead_pid(), "host": "elsewhere.example"}, False),    # another host's process is not judged here
    ({"expires_at": time.time() - 1}, True),                      # a lease that ran out (team backend)
    ({"expires_at": time.time() + 600}, False),
    ({"pid": 0}, True),
])
def test_a_holder_is_stale_when_its_process_is_gone(changes: dict[str, Any], stale: bool) -> None:
    holder = dataclasses.replace(Holder(KEY, "R0", "release", "op", identity.host(), os.getpid(),
                                        identity.process_start(os.getpid()), "T"), **changes)
    assert holder.is_stale() is stale


def test_a_stale_lock_still_refuses_a_new_run_and_says_what_to_do(locks: LockStore) -> None:
    plant(locks, pid=dead_pid())
    with pytest.raises(LockHeld) as caught:
        locks.acquire(KEY, "R2", "hotfix", "bob")
    message = str(caught.value)
    assert message.startswith("lock 'production' is stale: run R0 of release by alice@example.com stopped (pid ")
    assert "is gone, since 2026-11-30T10:00:00.000000Z" in message
    for hint in ("runbook.resume", "runbook.abandon R0", "runbook.unlock"):
        assert hint in message


def test_the_lease_message_names_the_expiry() -> None:
    holder = Holder(KEY, "R0", "release", "op", "other-host", 1, "", "T", expires_at=time.time() - 5)
    assert "its lease from other-host pid 1 expired; held since T" in held_message(holder)


# -- reclaim -------------------------------------------------------------------------------------

def test_the_run_that_held_a_stale_lock_takes_it_back_at_the_same_epoch(locks: LockStore) -> None:
    plant(locks, pid=dead_pid(), epoch=4)
    holder = locks.reclaim(KEY, "R0", "release", "bob@example.com")
    assert (holder.run_id, holder.epoch, holder.pid, holder.operator) == ("R0", 4, os.getpid(), "bob@example.com")
    assert locks.read(KEY) == holder


def test_another_run_cannot_reclaim(locks: LockStore) -> None:
    plant(locks, pid=dead_pid())
    with pytest.raises(LockHeld, match="is stale"):
        locks.reclaim(KEY, "R9", "release", "op")


def test_a_run_live_in_another_process_cannot_be_reclaimed(locks: LockStore) -> None:
    parent = os.getppid()
    plant(locks, pid=parent, pid_start=identity.process_start(parent))
    with pytest.raises(LockHeld, match="run R0 is already running"):
        locks.reclaim(KEY, "R0", "release", "op")


def test_a_free_key_is_reclaimed_at_epoch_one(locks: LockStore) -> None:
    assert locks.reclaim(KEY, "R0", "release", "op").epoch == 1


# -- takeover and fencing ----------------------------------------------------------------------

def test_a_takeover_raises_the_epoch_and_fences_the_holder(locks: LockStore) -> None:
    first = locks.acquire(KEY, "R1", "release", "alice")
    holder, previous = locks.take_over(KEY, "R2", "rollback", "bob")
    assert previous == first and holder.epoch == 2 and locks.read(KEY) == holder
    locks.check(KEY, "R2", 2)
    with pytest.raises(Fenced, match=r"this run no longer holds lock 'production': now bob on .* for run R2 of "
                                     r"rollback; it stopped and did nothing more") as caught:
        locks.check(KEY, "R1", 1)
    assert caught.value.exit_code == 3
    locks.release(KEY, "R1", 1)                          # the fenced holder never frees its successor's lock
    assert locks.read(KEY) == holder
    again, before = locks.take_over(KEY, "R3", "rollback", "carol")
    assert before == holder and again.epoch == 3


def test_a_takeover_of_a_free_key_starts_at_epoch_one(locks: LockStore) -> None:
    holder, previous = locks.take_over(KEY, "R2", "rollback", "bob")
    assert previous is None and holder.epoch == 1


def test_a_released_lock_fences_its_former_holder(locks: LockStore) -> None:
    locks.acquire(KEY, "R1", "release", "op")
    locks.release(KEY, "R1")
    with pytest.raises(Fenced, match="nobody \\(it was released\\)"):
        locks.check(KEY, "R1", 1)


# -- unlock --------------------------------------------------------------------------------------

def test_unlock_refuses_a_live_lock(locks: LockStore) -> None:
    locks.acquire(KEY, "R1", "release", "op")
    with pytest.raises(UsageError, match="lock 'production' is live: .*an emergency runbook can take it over"):
        locks.unlock(KEY)
    assert locks.read(KEY) is not None


@pytest.mark.parametrize("changes", [{"pid": dead_pid()}, {"host": "elsewhere.example"}])
def test_unlock_frees_a_stale_lock_or_another_hosts_and_returns_its_holder(
        locks: LockStore, changes: dict[str, Any]) -> None:
    planted = plant(locks, **changes)
    assert locks.unlock(KEY) == planted and locks.read(KEY) is None


def test_unlock_of_a_free_key_says_so(locks: LockStore) -> None:
    with pytest.raises(UsageError, match="lock 'production' is not held"):
        locks.unlock(KEY)


# -- the watcher ---------------------------------------------------------------------------------

@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("RUNBOOK_HEARTBEAT_S", "0.05")
    return 0.05


def test_a_takeover_stops_the_holder_in_its_main_thread_within_a_heartbeat(
        locks: LockStore, fast_heartbeat: float) -> None:
    holder = locks.acquire(KEY, "R1", "release", "alice")
    with signals.handled():
        with pytest.raises(Fenced, match="now bob"):
            with watch(locks, KEY, "R1", holder.epoch):
                locks.take_over(KEY, "R2", "rollback", "bob")
                deadline = time.monotonic() + 120          # only a bound on a broken watcher, never reached
                while time.monotonic() < deadline:
                    time.sleep(0.01)                       # plugin code, busy or asleep: interrupted by Fenced
                raise AssertionError("the watcher never stopped the holder")


def _watchers() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith("fence-watch")]


def test_the_watcher_is_quiet_while_the_lock_is_held_and_after_it_ends(
        locks: LockStore, fast_heartbeat: float, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import wait_for

    checks: list[int] = []
    real_check = locks.check

    def counted(*args: Any) -> None:
        real_check(*args)
        checks.append(1)

    monkeypatch.setattr(locks, "check", counted)
    holder = locks.acquire(KEY, "R1", "release", "alice")
    with signals.handled():
        with watch(locks, KEY, "R1", holder.epoch):
            wait_for(lambda: len(checks) >= 3)           # three heartbeats looked, and found the lock held
        wait_for(lambda: not _watchers())                 # the watcher has ended with the run
        locks.take_over(KEY, "R2", "rollback", "bob")     # a take-over after the end fences nobody


def test_a_run_without_a_lock_is_not_watched(locks: LockStore, fast_heartbeat: float) -> None:
    with signals.handled():
        with watch(locks, None, "R1", 0):
            assert not _watchers()
