"""audit.verify over the team backend: segment list against S3 objects and their versions.

The chains themselves are checked by :func:`runbook.audit.verify` on local copies
materialised here (the ledger from its DynamoDB items, each journal from its
segments). This module adds what only the backend can show: gaps in a run's segment
list, segments whose bytes differ from their recorded hash, objects no segment names
(orphans), extra versions or delete markers of a segment, and ledger copies in S3 that
disagree with the ledger.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from ..journal import Problem, atomic_write


def check_backend(store: Any, run_id: str | None = None) -> list[Problem]:
    """Materialise the ledger and journals locally; return the backend's own problems."""
    problems: list[Problem] = []
    lines = store.ledger.lines()
    atomic_write(_mkparent(store.ledger.path), b"".join(lines), durable=False)
    versions = _versions(store, "ledger/")
    for seq, line in enumerate(lines):
        key = f"ledger/{seq:09d}.jsonl"
        found = versions.get(key, [])
        etag = hashlib.md5(line, usedforsecurity=False).hexdigest()
        if not any(v.get("ETag", "").strip('"') == etag for v in found if not v.get("marker")):
            problems.append(Problem(f"ledger record {seq + 1}", f"its write-once copy {key} is missing or differs"))
        elif len(found) > 1:
            problems.append(Problem(f"ledger record {seq + 1}",
                                    f"{key} has {len(found)} versions (written again or deleted after it was written)"))
    for rid in [run_id] if run_id else store.run_ids():
        problems.extend(check_run(store, rid))
    return problems


def check_run(store: Any, run_id: str) -> list[Problem]:
    """One run: contiguous segments with the recorded bytes, and no other objects or versions."""
    label = f"run {run_id}"
    problems: list[Problem] = []
    segs = store.segments(run_id)
    expected = 0
    bodies = []
    for seg in segs:
        first, end = int(seg["first"]), int(seg["end"])
        if first != expected:
            problems.append(Problem(f"{label} record {expected + 1}",
                                    f"gap: the segment list jumps from record {expected} to {first}"))
        body = store.segment_body(seg)
        if hashlib.sha256(body).hexdigest() != seg.get("sha256"):
            problems.append(Problem(f"{label} segment {seg['key']}",
                                    "its bytes differ from the hash recorded when it was written"))
        bodies.append(body)
        expected = end
    path = store.journal_path(run_id)
    atomic_write(_mkparent(path), b"".join(bodies), durable=False)
    named = {seg["key"]: str(seg.get("version") or "") for seg in segs}
    for key, found in sorted(_versions(store, f"runs/{run_id}/journal/").items()):
        if key not in named:
            problems.append(Problem(f"{label} object {key}",
                                    "orphan: no segment of the run's list names it (a writer that crashed or was "
                                    "fenced)"))
            continue
        markers = [v for v in found if v.get("marker")]
        if markers:
            problems.append(Problem(f"{label} object {key}", f"deleted: {len(markers)} delete marker(s) hide it"))
        objects = [v for v in found if not v.get("marker")]
        if len(objects) > 1:
            problems.append(Problem(f"{label} object {key}", f"{len(objects)} versions: it was written again after "
                                                             "the segment was recorded"))
        if named[key] and named[key] not in {v.get("VersionId") for v in objects}:
            problems.append(Problem(f"{label} object {key}", "the recorded version is gone"))
    return problems


def _versions(store: Any, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every object version and delete marker under a prefix, by key."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    extra: dict[str, Any] = {}
    while True:
        got = store.io.call("s3", "list_object_versions", prefix, Bucket=store.bucket, Prefix=prefix, **extra)
        for version in got.get("Versions", []):
            out[version["Key"]].append(version)
        for marker in got.get("DeleteMarkers", []):
            out[marker["Key"]].append({**marker, "marker": True})
        if not got.get("IsTruncated"):
            return out
        extra = {"KeyMarker": got.get("NextKeyMarker"), "VersionIdMarker": got.get("NextVersionIdMarker")}


def _mkparent(path: Any) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
