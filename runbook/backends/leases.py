"""Lock leases in DynamoDB: conditional put, heartbeat, epoch, fencing.

One item per key (``pk = "lock"``, ``sk = KEY``) names its holder as a local lock
file does (operator, host, process, run id, since, epoch) plus ``expires_at``. A new
run takes a free key with a conditional put (``attribute_not_exists``): exactly one
of any number of racing processes wins. While the process runs, a heartbeat thread
extends the lease; a lease past ``expires_at`` (or, on the same host, a holder whose
process is gone) is reported as stale. Resuming a run takes its lock back with the
next epoch; an emergency takeover does too. ``check`` -- the fence before every
side effect and journal segment -- is itself a conditional write (``run_id`` and
``epoch`` must still be ours), so a holder that lost its lease writes nothing more.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from typing import Any

from .. import identity
from ..errors import ExternalError, LockHeld, UsageError
from ..journal import utcnow
from ..locks import Fenced, Holder, acquire_waiting, held_message
from .awsio import Aws, Conflict, from_item, to_item, values
from .. import clock

PK = "lock"
FIELDS = ("key", "run_id", "runbook", "operator", "host", "pid", "pid_start", "since", "epoch", "expires_at")


def lease_seconds(configured: float | None = None) -> float:
    """The lease length: ``backend.lease_seconds``, else ``RUNBOOK_LEASE_SECONDS`` (tests), else 60 s.

    The heartbeat renews it every third of its length.
    """
    return float(os.environ.get("RUNBOOK_LEASE_SECONDS") or configured or 60)


class LeaseStore:
    """The LockStore interface over DynamoDB."""

    def __init__(self, io: Aws, table: str, lease: float | None = None):
        self.io = io
        self.table = table
        self.lease = lease_seconds(lease)
        self.heartbeat_s = self.lease / 3        # the fence watcher looks as often as the lease renews
        self._beats: dict[tuple[str, str], threading.Event] = {}
        self.fenced_epoch = 0      # the epoch of the last successful fence (journal segment keys)
        self.fence: tuple[str, str, int] | None = None   # (key, run id, epoch) of that fence

    # -- reading -----------------------------------------------------------------------
    def _key(self, key: str) -> dict[str, Any]:
        return to_item({"pk": PK, "sk": key})

    def read(self, key: str) -> Holder | None:
        got = self.io.call("dynamodb", "get_item", f"lock {key}", TableName=self.table, Key=self._key(key),
                           ConsistentRead=True)
        return _holder(got["Item"]) if got.get("Item") else None

    def all(self) -> list[Holder]:
        items: list[Holder] = []
        start: dict[str, Any] | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            got = self.io.call("dynamodb", "query", "locks", TableName=self.table, ConsistentRead=True,
                               KeyConditionExpression="pk = :pk", ExpressionAttributeValues=values(pk=PK), **extra)
            items.extend(_holder(i) for i in got.get("Items", []))
            start = got.get("LastEvaluatedKey")
            if not start:
                return items

    # -- writing -----------------------------------------------------------------------
    def _new(self, key: str, run_id: str, runbook: str, operator: str, epoch: int) -> Holder:
        pid = os.getpid()
        return Holder(key, run_id, runbook, operator, identity.host(), pid, identity.process_start(pid), utcnow(),
                      epoch, clock.time_s() + self.lease)

    def _put(self, holder: Holder, condition: str, **names: Any) -> None:
        """A conditional put of ``holder``; :class:`Refused` (with the item now there) when its condition failed.

        The SDK retries a call whose response was lost (a timeout, a dropped connection) and a
        conditional put is not idempotent: when the first attempt was applied, the retry is refused by
        the condition the first attempt made false. Refused, the item is read back (consistently): when
        it is exactly this holder (same run, process, start time, epoch and lease end), the put was ours.
        """
        item = to_item({"pk": PK, "sk": holder.key, "heartbeat": clock.time_s(), **asdict(holder)})
        try:
            self.io.call("dynamodb", "put_item", f"lock {holder.key}", TableName=self.table, Item=item,
                         ConditionExpression=condition,
                         **({"ExpressionAttributeValues": values(**names)} if names else {}))
        except Conflict as exc:
            current = self.read(holder.key)
            if current != holder:
                raise Refused(exc.code, current) from exc
        self._beat(holder)

    def acquire(self, key: str, run_id: str, runbook: str, operator: str, wait: float = 0.0,
                on_wait: Any = None) -> Holder:
        """Take a free key for a new run; LockHeld (exit 3) names the holder, live or stale."""
        def attempt() -> tuple[bool, Holder | None]:
            holder = self._new(key, run_id, runbook, operator, 1)
            try:
                self._put(holder, "attribute_not_exists(pk)")
                return True, holder
            except Refused as refused:
                return False, refused.current

        return acquire_waiting(attempt, wait, on_wait, self.held_message)

    def held_message(self, current: Holder) -> str:
        return held_message(current)

    def reclaim(self, key: str, run_id: str, runbook: str, operator: str) -> Holder:
        """A resuming run takes its own lock back (stale, or free) with the next epoch."""
        while True:
            current = self.read(key)
            if current is None:
                holder = self._new(key, run_id, runbook, operator, 1)
                try:
                    self._put(holder, "attribute_not_exists(pk)")
                    return holder
                except Conflict:
                    continue
            if current.run_id != run_id:
                raise LockHeld(self.held_message(current))
            mine = current.host == identity.host() and current.pid == os.getpid()
            if not current.is_stale() and not mine:
                raise LockHeld(f"run {run_id} is already running: {current.describe()}")
            holder = self._new(key, run_id, runbook, operator, current.epoch + 1)
            try:
                self._put(holder, "run_id = :run AND epoch = :epoch", run=run_id, epoch=current.epoch)
                return holder
            except Conflict:
                continue

    def take_over(self, key: str, run_id: str, runbook: str, operator: str) -> tuple[Holder, Holder | None]:
        """Emergency: take the lock from whoever holds it; the next epoch fences them."""
        while True:
            current = self.read(key)
            holder = self._new(key, run_id, runbook, operator, (current.epoch + 1) if current else 1)
            try:
                if current is None:
                    self._put(holder, "attribute_not_exists(pk)")
                else:
                    self._put(holder, "epoch = :epoch", epoch=current.epoch)
                return holder, current
            except Conflict:
                continue

    def check(self, key: str, run_id: str, epoch: int) -> None:
        """Fence: a conditional write (our run id and epoch) that also renews the lease."""
        try:
            self._renew(key, run_id, epoch)
        except Conflict:
            self._stop(key, run_id)
            current = self.read(key)
            who = current.describe() if current else "nobody (it was released)"
            raise Fenced(f"this run no longer holds lock {key!r}: now {who}; it stopped and did nothing more") \
                from None
        self.fenced_epoch = epoch
        self.fence = (key, run_id, epoch)

    def condition(self) -> dict[str, Any] | None:
        """The last fence as a DynamoDB ConditionCheck, for a transaction that must fail when it no longer holds."""
        if self.fence is None:
            return None
        key, run_id, epoch = self.fence
        return {"ConditionCheck": {"TableName": self.table, "Key": self._key(key),
                                   "ConditionExpression": "run_id = :run AND epoch = :epoch",
                                   "ExpressionAttributeValues": values(run=run_id, epoch=epoch)}}

    def _renew(self, key: str, run_id: str, epoch: int) -> None:
        self.io.call("dynamodb", "update_item", f"lock {key}", TableName=self.table, Key=self._key(key),
                     UpdateExpression="SET expires_at = :exp, heartbeat = :now",
                     ConditionExpression="run_id = :run AND epoch = :epoch",
                     ExpressionAttributeValues=values(exp=clock.time_s() + self.lease, now=clock.time_s(), run=run_id,
                                                      epoch=epoch))

    def release(self, key: str, run_id: str, epoch: int | None = None) -> None:
        """Free the key if RUN_ID still holds it (at EPOCH, when given)."""
        self._stop(key, run_id)
        condition, given = ("run_id = :run", values(run=run_id)) if epoch is None else \
            ("run_id = :run AND epoch = :epoch", values(run=run_id, epoch=epoch))
        try:
            self.io.call("dynamodb", "delete_item", f"lock {key}", TableName=self.table, Key=self._key(key),
                         ConditionExpression=condition, ExpressionAttributeValues=given)
        except Conflict:
            pass

    def unlock(self, key: str) -> Holder:
        """Free a key by hand: only when its holder is stale (lease expired, or its process gone)."""
        current = self.read(key)
        if current is None:
            raise UsageError(f"lock {key!r} is not held; `invoke runbook.status` lists the held locks")
        if not current.is_stale():
            raise UsageError(f"lock {key!r} is live: {current.describe()}; an emergency runbook can take it over")
        try:
            self.io.call("dynamodb", "delete_item", f"lock {key}", TableName=self.table, Key=self._key(key),
                         ConditionExpression="run_id = :run AND epoch = :epoch",
                         ExpressionAttributeValues=values(run=current.run_id, epoch=current.epoch))
        except Conflict:
            raise UsageError(f"lock {key!r} changed hands while being freed; look again with "
                             "`invoke runbook.status`") from None
        return current

    # -- heartbeat ---------------------------------------------------------------------
    def _beat(self, holder: Holder) -> None:
        """Renew the lease every third of it while this process runs, until released or fenced."""
        self._stop(holder.key, holder.run_id)
        stop = threading.Event()
        self._beats[(holder.key, holder.run_id)] = stop

        def loop() -> None:
            while not stop.wait(self.lease / 3):
                try:
                    self._renew(holder.key, holder.run_id, holder.epoch)
                except Conflict:
                    return          # lost: the next fence says so
                except ExternalError:
                    continue        # transient: the SDK retried already; try again next beat

        threading.Thread(target=loop, name=f"lease {holder.key}", daemon=True).start()

    def _stop(self, key: str, run_id: str) -> None:
        stop = self._beats.pop((key, run_id), None)
        if stop is not None:
            stop.set()


class Refused(Conflict):
    """A conditional put of a lock item was refused; ``current`` is the item read right after (None: gone)."""

    def __init__(self, code: str, current: Holder | None):
        super().__init__(code)
        self.current = current


def _holder(item: dict[str, Any]) -> Holder:
    data = from_item(item)
    fields: dict[str, Any] = {k: data.get(k) for k in FIELDS}
    return Holder(**fields)
