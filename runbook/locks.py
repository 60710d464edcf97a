"""Locks: one holder per key (by default the environment), with stale detection and fencing.

A lock is a small JSON file under ``HOME/locks/`` named by the SHA-256 of its key,
created atomically (``link`` of a complete temporary file, which fails if it exists).
It names its holder: operator, host, process, run id, since when, and an epoch that an
emergency takeover increases. The holder checks the file before every durable write
(``fence``): when its run id or epoch no longer match, it has been fenced and stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import hints, identity
from .errors import LockHeld, RunbookError, UsageError
from .journal import atomic_write, utcnow
from . import clock


@dataclass
class LockRef:
    """The lock a run writes under: key, the run that owns it, and its epoch (for fencing)."""

    key: str | None
    owner: str
    epoch: int


class Fenced(RunbookError):
    """This run's lock was taken over: it must not write or act any more."""

    exit_code = 3


@dataclass
class Holder:
    key: str
    run_id: str
    runbook: str
    operator: str
    host: str
    pid: int
    pid_start: str
    since: str
    epoch: int = 1
    expires_at: float | None = None     # a lease's end (team backend); local locks have none

    def describe(self) -> str:
        return (f"{self.operator} on {self.host} (pid {self.pid}) holds lock {self.key!r} since {self.since} "
                f"for run {self.run_id} of {self.runbook}")

    def is_stale(self) -> bool:
        """Its lease expired, or same host and the process is gone (another host's process is not judged here)."""
        if self.expires_at is not None and clock.time_s() > self.expires_at:
            return True
        return self.host == identity.host() and not identity.alive(self.pid, self.pid_start)


def held_message(current: Holder) -> str:
    """Why a key cannot be taken, and what to do: the same words for both backends."""
    if current.is_stale():
        why = (f"its lease from {current.host} pid {current.pid} expired; held since {current.since}"
               if current.expires_at is not None else
               f"pid {current.pid} on {current.host} is gone, since {current.since}")
        return (f"lock {current.key!r} is stale: run {current.run_id} of {current.runbook} by {current.operator} "
                f"stopped ({why}); resume it with `{hints.resume(current.run_id)}`, close it with "
                f"`{hints.abandon(current.run_id)}`, or free the key with `{hints.unlock(current.key)}`")
    return (f"lock {current.key!r} is held: {current.describe()}; wait with --wait-lock 10m, or see "
            f"`{hints.status()}`")


HEARTBEAT_S = 1.0     # how often a running holder looks whether its lock was taken over


@contextlib.contextmanager
def watch(locks: Any, key: str | None, owner: str, epoch: int) -> Iterator[None]:
    """While a run executes: every heartbeat, check that it still holds its lock; when it was
    taken over, raise Fenced in the main thread at once (a fenced holder stops within one
    heartbeat, not at its next write)."""
    import threading

    from . import signals

    if key is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    stop = threading.Event()
    interval = float(os.environ.get("RUNBOOK_HEARTBEAT_S") or getattr(locks, "heartbeat_s", None) or HEARTBEAT_S)

    def loop() -> None:
        while not stop.wait(interval):
            try:
                locks.check(key, owner, epoch)
            except Fenced as exc:
                if not stop.is_set():
                    signals.tell_main(exc)
                return
            except Exception:   # noqa: BLE001 - a transient read error: the next beat looks again
                continue

    thread = threading.Thread(target=loop, name=f"fence-watch {key}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def waited(seconds: float) -> str:
    """What a refusal after ``--wait-lock`` adds: how long it waited."""
    return f" (waited {seconds:g} s with --wait-lock)" if seconds > 0 else ""


class LockStore:
    """Local locks under a state home."""

    def __init__(self, home: Path, durable: bool = True):
        self.dir = Path(home) / "locks"
        self.durable = durable

    def path(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def read(self, key: str) -> Holder | None:
        try:
            data = json.loads(self.path(key).read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        return Holder(**data)

    def all(self) -> list[Holder]:
        out = []
        for p in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                out.append(Holder(**json.loads(p.read_text())))
            except (ValueError, TypeError, OSError):
                continue
        return out

    def _new(self, key: str, run_id: str, runbook: str, operator: str, epoch: int) -> Holder:
        pid = os.getpid()
        return Holder(key, run_id, runbook, operator, identity.host(), pid, identity.process_start(pid), utcnow(), epoch)

    def _create(self, holder: Holder) -> bool:
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.path(holder.key)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "w") as fh:
            json.dump(asdict(holder), fh)
            if self.durable:
                fh.flush()
                os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def _replace(self, holder: Holder) -> None:
        atomic_write(self.path(holder.key), json.dumps(asdict(holder)).encode(), self.durable)

    def acquire(self, key: str, run_id: str, runbook: str, operator: str, wait: float = 0.0,
                on_wait: Any = None) -> Holder:
        """Take the lock for a new run; LockHeld (exit 3) names the holder."""
        def attempt() -> tuple[bool, Holder | None]:
            holder = self._new(key, run_id, runbook, operator, 1)
            return (True, holder) if self._create(holder) else (False, self.read(key))

        return acquire_waiting(attempt, wait, on_wait, self.held_message)

    def held_message(self, current: Holder) -> str:
        return held_message(current)

    @contextlib.contextmanager
    def _guarded(self, key: str) -> Iterator[None]:
        """Read-then-replace of one key under an exclusive file lock (takeovers, reclaims), so
        two of them cannot both win."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.path(key).with_suffix(".guard"), "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def reclaim(self, key: str, run_id: str, runbook: str, operator: str) -> Holder:
        """A resuming run takes back its own lock (stale, or free again)."""
        with self._guarded(key):
            return self._reclaim(key, run_id, runbook, operator)

    def _reclaim(self, key: str, run_id: str, runbook: str, operator: str) -> Holder:
        current = self.read(key)
        if current is None:
            holder = self._new(key, run_id, runbook, operator, 1)
            if self._create(holder):
                return holder
            current = self.read(key)
            assert current is not None
        if current.run_id != run_id:
            raise LockHeld(self.held_message(current))
        if not current.is_stale() and current.pid != os.getpid():
            raise LockHeld(f"run {run_id} is already running: {current.describe()}")
        holder = self._new(key, run_id, runbook, operator, current.epoch)
        self._replace(holder)
        return holder

    def take_over(self, key: str, run_id: str, runbook: str, operator: str) -> tuple[Holder, Holder | None]:
        """Emergency: take the lock from whoever holds it, fencing them (epoch + 1)."""
        with self._guarded(key):
            current = self.read(key)
            epoch = (current.epoch + 1) if current else 1
            holder = self._new(key, run_id, runbook, operator, epoch)
            if current is None and self._create(holder):
                return holder, None
            self._replace(holder)
            return holder, current

    def check(self, key: str, run_id: str, epoch: int) -> None:
        """Fence: raise Fenced when this run no longer holds the lock at this epoch."""
        current = self.read(key)
        if current is None or current.run_id != run_id or current.epoch != epoch:
            who = current.describe() if current else "nobody (it was released)"
            raise Fenced(f"this run no longer holds lock {key!r}: now {who}; it stopped and did nothing more")

    def release(self, key: str, run_id: str, epoch: int | None = None) -> None:
        """Free the key if RUN_ID still holds it (at EPOCH, when given: a fenced holder never
        frees its successor's lock)."""
        current = self.read(key)
        if current is not None and current.run_id == run_id and (epoch is None or current.epoch == epoch):
            try:
                self.path(key).unlink()
            except FileNotFoundError:
                pass

    def unlock(self, key: str) -> Holder:
        """Free a key by hand (its holder must be gone)."""
        current = self.read(key)
        if current is None:
            raise UsageError(f"lock {key!r} is not held; `invoke runbook.status` lists the held locks")
        if not current.is_stale() and current.host == identity.host():
            raise UsageError(f"lock {key!r} is live: {current.describe()}; an emergency runbook can take it over")
        self.path(key).unlink()
        return current


def acquire_waiting(attempt: Callable[[], tuple[bool, Holder | None]], wait: float, on_wait: Any,
                    message: Callable[[Holder], str]) -> Holder:
    """A key for a new run, for both stores: ``attempt()`` is (True, ours) when it took the key,
    (False, the holder) when someone holds it, (False, None) when it was released in between (try
    again at once). Looks again within a second until ``wait`` s have passed (last at the end),
    telling ``on_wait(holder)``; then LockHeld naming the holder."""
    held: list[Holder] = []

    def take() -> Holder | None:
        while True:
            ours, holder = attempt()
            if holder is None:
                continue
            if ours:
                return holder
            held.append(holder)
            return None

    def tick(waited_s: float) -> None:
        if on_wait is not None:
            on_wait(held[-1])
        clock.sleep(min(1.0, max(0.05, wait - waited_s)))

    got = clock.wait_until(take, wait, 0.0, on_tick=tick, sleep=False)
    if got is None:
        raise LockHeld(message(held[-1]) + waited(wait))
    return got
