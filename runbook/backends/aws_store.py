"""The team backend: the LocalStore interface over DynamoDB and S3.

Layout (one table with ``pk``/``sk`` string keys, one bucket):

* locks: ``pk=lock, sk=KEY`` lease items (:mod:`runbook.backends.leases`);
* runs: ``pk=runs, sk=RUN_ID`` (a query lists them in time order);
* journal segments: one S3 object per group commit,
  ``runs/RUN/journal/EPOCH(6)-SEQ(9).jsonl``, written once (``IfNoneMatch: *``, Object
  Lock retention in compliance mode when the bucket has Object Lock), then recorded in
  the authoritative segment list ``pk=run#RUN, sk=seg#SEQ(9)`` with its version id,
  hash and length (conditional: one writer per sequence number). Lines are chained
  exactly as in a local journal (:func:`runbook.journal.encode`);
* the ledger: ``pk=ledger, sk=rec#SEQ(9)`` items holding the raw chained line
  (conditional put: one writer per sequence number), each copied once to
  ``ledger/SEQ(9).jsonl`` in S3;
* evidence: ``runs/RUN/blobs/SHA256``, content-addressed, written once.

Working folders (git checkouts) and a cache of fetched segments stay under the local
state home. A write that cannot be made raises (the step fails loudly); the records
it carried are kept under ``HOME/runs/RUN/unsent/`` so no evidence is dropped.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .. import clock
from ..errors import ExternalError, UsageError
from ..journal import (ZERO, JournalError, atomic_write, chain_records, encode, ledger_fields, line_hash, scan_tail,
                       utcnow)
from ..state import RunState, derive
from .awsio import Aws, Conflict, backend_env, from_item, to_item, values
from .leases import LeaseStore

RETENTION_DAYS_DEFAULT = 365


class AwsStore:
    """Runs, journals, the ledger, evidence and locks in one DynamoDB table and one S3 bucket."""

    kind = "aws"

    def __init__(self, env_data: dict[str, Any], home: Path, durable: bool = True):
        backend = env_data.get("backend") or {}
        self.bucket: str = backend["bucket"]
        self.table: str = backend["table"]
        self.env = backend_env(env_data)
        self.io = Aws(self.env)
        self.home = Path(home)
        self.durable = durable
        self.runs_dir = self.home / "runs"
        self.cache = self.home / "backend" / self.table
        self.locks = LeaseStore(self.io, self.table, backend.get("lease_seconds"))
        self.retention_days = int(backend.get("retention_days") or RETENTION_DAYS_DEFAULT)
        self.ledger = AwsLedger(self)
        self._object_lock: bool | None = None
        self._operating: set[str] = set()
        self._principal = ""

    # -- local folders ---------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def journal_path(self, run_id: str) -> Path:
        """The local copy of the run's journal (rebuilt from the segments by ``records``)."""
        return self.run_dir(run_id) / "journal.jsonl"

    def workdir(self, run_id: str) -> Path:
        path = self.run_dir(run_id) / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- runs --------------------------------------------------------------------------
    def create_run(self, run_id: str) -> Path:
        try:
            self.io.call("dynamodb", "put_item", f"run {run_id}", TableName=self.table,
                         Item=to_item({"pk": "runs", "sk": run_id, "created": utcnow()}),
                         ConditionExpression="attribute_not_exists(pk)")
        except Conflict:
            raise UsageError(f"run {run_id} already exists in table {self.table}") from None
        from .approvals import note_operator

        note_operator(self, run_id)
        self._operating.add(run_id)
        folder = self.run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def run_ids(self) -> list[str]:
        return [item["sk"] for item in self.query("runs", "runs")]

    def find(self, prefix: str) -> str:
        """A run id from any unique prefix."""
        matches = [r for r in self.run_ids() if r.startswith(prefix)]
        if not matches:
            raise UsageError(f"<command line>: no run {prefix!r} in table {self.table}; "
                             "`invoke audit.list` lists runs")
        if len(matches) > 1:
            raise UsageError(f"<command line>: run id {prefix!r} is ambiguous: {', '.join(matches[:5])}"
                             f"{' ...' if len(matches) > 5 else ''}")
        return matches[0]

    def records(self, run_id: str) -> list[dict[str, Any]]:
        data = self.journal_bytes(run_id)
        return [json.loads(line) for line in data.splitlines()]

    def state(self, run_id: str) -> RunState:
        return derive(self.records(run_id))

    def states(self) -> Iterator[RunState]:
        for run_id in self.run_ids():
            yield self.state(run_id)

    # -- journals ----------------------------------------------------------------------
    def journal(self, run_id: str, before_write: Callable[[], None] | None = None,
                repair: bool = False) -> "SegmentJournal":
        from .approvals import note_operator

        if run_id not in self._operating:
            note_operator(self, run_id)      # whoever writes a run can never approve it
            self._operating.add(run_id)
        return SegmentJournal(self, run_id, before_write)

    def segments(self, run_id: str) -> list[dict[str, Any]]:
        """The authoritative segment list of a run, in sequence order."""
        return self.query(f"run#{run_id}", "segments", prefix="seg#")

    def segment_body(self, seg: dict[str, Any]) -> bytes:
        """A segment's bytes at its recorded version (cached locally: versions never change)."""
        cached = self.cache / "objects" / seg["key"] / str(seg.get("version") or "null")
        if cached.exists():
            return cached.read_bytes()
        extra = {"VersionId": seg["version"]} if seg.get("version") else {}
        got = self.io.call("s3", "get_object", seg["key"], Bucket=self.bucket, Key=seg["key"], **extra)
        body: bytes = got["Body"].read()
        if hashlib.sha256(body).hexdigest() == seg.get("sha256"):
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, body, durable=False)
        return body

    def journal_bytes(self, run_id: str) -> bytes:
        """The run's journal: its segments in order, also written to the local copy."""
        data = b"".join(self.segment_body(seg) for seg in self.segments(run_id))
        path = self.journal_path(run_id)
        if not path.exists() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data, durable=False)
        return data

    # -- objects -----------------------------------------------------------------------
    def object_lock(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once)."""
        if self._object_lock is None:
            try:
                got = self.io.call("s3", "get_object_lock_configuration", "object lock", Bucket=self.bucket)
                config = got.get("ObjectLockConfiguration") or {}
                self._object_lock = config.get("ObjectLockEnabled") == "Enabled"
            except ExternalError as exc:
                if "ObjectLockConfigurationNotFound" not in str(exc):
                    raise
                self._object_lock = False
        return self._object_lock

    def put_once(self, key: str, body: bytes) -> str:
        """Write an object that must not exist yet; its version id. Conflict when it does."""
        extra: dict[str, Any] = {}
        if self.object_lock():
            import os

            days = int(os.environ.get("RUNBOOK_RETENTION_DAYS") or self.retention_days)
            extra = {"ObjectLockMode": "COMPLIANCE",
                     "ObjectLockRetainUntilDate": clock.now() + timedelta(days=days)}
        got = self.io.call("s3", "put_object", key, Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*",
                           ChecksumAlgorithm="SHA256", **extra)
        return str(got.get("VersionId") or "")

    verifies_approvals = True

    def verified_approvals(self, run_id: str, digest: str, params: dict[str, Any],
                           environment: str | None) -> tuple[list[Any], list[str]]:
        """Approvals given with ``runbook.approve`` under the approvers' own AWS principals that are
        still bound to this run's digest, parameters and environment; and why the others are void."""
        from .approvals import valid_approvals

        return valid_approvals(self, run_id, digest, params, environment)

    def store_blob(self, run_id: str, data: bytes) -> str:
        """Content-addressed evidence in S3 (and a local copy); returns its SHA-256."""
        digest = hashlib.sha256(data).hexdigest()
        try:
            self.put_once(f"runs/{run_id}/blobs/{digest}", data)
        except Conflict:
            pass        # the same content is already there
        target = self.run_dir(run_id) / "blobs" / digest
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, data, self.durable)
        return digest

    # -- table -------------------------------------------------------------------------
    def query(self, pk: str, what: str, prefix: str = "", reverse: bool = False,
              limit: int = 0) -> list[dict[str, Any]]:
        """Every item of one partition (``sk`` starting with ``prefix``), in key order."""
        condition = "pk = :pk" + (" AND begins_with(sk, :prefix)" if prefix else "")
        names = values(pk=pk, **({"prefix": prefix} if prefix else {}))
        out: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        while True:
            extra: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            if limit:
                extra["Limit"] = limit
            got = self.io.call("dynamodb", "query", what, TableName=self.table, ConsistentRead=True,
                               KeyConditionExpression=condition, ExpressionAttributeValues=names,
                               ScanIndexForward=not reverse, **extra)
            out.extend(from_item(i) for i in got.get("Items", []))
            start = got.get("LastEvaluatedKey")
            if not start or (limit and len(out) >= limit):
                return out

    def keep_unsent(self, run_id: str, name: str, body: bytes) -> Path:
        """Records that could not be written to the backend, kept locally as evidence."""
        path = self.run_dir(run_id) / "unsent" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, body, self.durable)
        return path

    # -- audit -------------------------------------------------------------------------
    def prepare_verify(self, run_id: str | None = None) -> list[Any]:
        """Materialise the ledger and journals locally for audit.verify; backend problems found on the way."""
        from .verify import check_backend

        return check_backend(self, run_id)


class SegmentJournal:
    """The ChainedFile interface over S3 segments: one object per group commit."""

    def __init__(self, store: AwsStore, run_id: str, before_write: Callable[[], None] | None = None):
        self.store = store
        self.run_id = run_id
        self.before_write = before_write
        self.repaired: dict[str, Any] | None = None     # S3 objects are whole or absent: nothing torn
        segs = store.segments(run_id)
        last = segs[-1] if segs else None
        self.length = int(last["end"]) if last else 0
        self.head = str(last["head"]) if last else ZERO
        self.path = store.journal_path(run_id)
        local = scan_tail(self.path)
        self._synced = (local.length, local.head, local.torn) == (self.length, self.head, b"")

    def append(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fence, write the chained records as one new segment, record it; returns them with seq/prev."""
        from .. import signals

        records = list(records)
        if not records:
            return []
        with signals.deferred():
            if self.before_write is not None:
                self.before_write()
            body, written, prev, seq = chain_records(records, self.head, self.length)
            self._write(body, prev, seq)
            self.head, self.length = prev, seq
            self._cache(body)
            return written

    def _write(self, body: bytes, head: str, end: int) -> None:
        first = self.length
        epoch = self.store.locks.fenced_epoch
        name = f"{epoch:06d}-{first:09d}.jsonl"
        try:
            key, version = self._put_object(name, body)
            entry = {"Put": {"TableName": self.store.table, "ConditionExpression": "attribute_not_exists(pk)",
                             "Item": to_item({"pk": f"run#{self.run_id}", "sk": f"seg#{first:09d}", "key": key,
                                              "version": version, "epoch": epoch, "first": first, "end": end,
                                              "prev": self.head, "head": head,
                                              "sha256": hashlib.sha256(body).hexdigest(), "time": utcnow()})}}
            fence = self.store.locks.condition() if self.before_write is not None else None
            # one transaction: the segment enters the authoritative list only while this run still holds the lock
            self.store.io.call("dynamodb", "transact_write_items", f"segment {key}",
                               TransactItems=([fence] if fence else []) + [entry])
        except Conflict:
            kept = self.store.keep_unsent(self.run_id, name, body)
            raise JournalError(f"run {self.run_id}: journal record {first} was not recorded: another writer got "
                               f"there first or this run lost its lock (segment list in table "
                               f"{self.store.table}); this run stopped and wrote nothing more (the records are "
                               f"kept in {kept})") from None
        except ExternalError as exc:
            kept = self.store.keep_unsent(self.run_id, name, body)
            raise JournalError(f"run {self.run_id}: the journal segment could not be written to the backend "
                               f"({exc}); the run stopped so nothing happens unrecorded (the records are kept in "
                               f"{kept})") from exc

    def _put_object(self, name: str, body: bytes) -> tuple[str, str]:
        """Write the segment object once; a leftover of a crashed writer at the same key gets a suffix."""
        base = f"runs/{self.run_id}/journal/{name}"
        for attempt in range(5):
            key = base if attempt == 0 else base.replace(".jsonl", f".{attempt}.jsonl")
            try:
                return key, self.store.put_once(key, body)
            except Conflict:
                continue
        raise Conflict("PreconditionFailed")

    def _cache(self, body: bytes) -> None:
        """Keep the local copy in step when it was (the next ``records`` rebuilds it otherwise)."""
        if not self._synced:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            fh.write(body)


class AwsLedger:
    """The chained ledger of runs as DynamoDB items (one writer per sequence number), copied to S3."""

    def __init__(self, store: AwsStore):
        self.store = store
        self.path = store.cache / "ledger.jsonl"     # the local copy audit.verify reads

    def _tail(self) -> tuple[int, str]:
        last = self.store.query("ledger", "ledger tail", prefix="rec#", reverse=True, limit=1)
        if not last:
            return 0, ZERO
        return int(last[0]["seq"]) + 1, line_hash(last[0]["line"].encode())

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        fields = ledger_fields(fields)
        for _ in range(50):
            seq, prev = self._tail()
            line = encode(prev, seq, fields)
            try:
                self.store.io.call("dynamodb", "put_item", "ledger", TableName=self.store.table,
                                   Item=to_item({"pk": "ledger", "sk": f"rec#{seq:09d}", "seq": seq,
                                                 "line": line.decode()}),
                                   ConditionExpression="attribute_not_exists(pk)")
            except Conflict:
                continue
            try:
                self.store.put_once(f"ledger/{seq:09d}.jsonl", line)
            except Conflict:
                pass        # a copy is already there; verify compares it
            return {"prev": prev, "seq": seq, **fields, "hash": line_hash(line)}
        raise JournalError(f"the ledger in table {self.store.table} is too busy: 50 attempts lost the race")

    def lines(self) -> list[bytes]:
        return [item["line"].encode() for item in self.store.query("ledger", "ledger", prefix="rec#")]

    def records(self) -> Iterator[dict[str, Any]]:
        for line in self.lines():
            yield json.loads(line)
