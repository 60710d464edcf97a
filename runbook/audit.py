"""Audit verification: every journal chain, the ledger chain, and the two against each other."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .journal import Problem, record_hash_at, verify_chain
from .store import LocalStore


@dataclass
class Report:
    runs: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: LocalStore, run_id: str | None = None, whole_ledger: bool = True) -> Report:
    """Verify the ledger and one run (or all); name the first bad record of each.

    With ``run_id`` and ``whole_ledger=False`` (what `audit.show` and `audit.export` print),
    the ledger is checked from that run's start record to its end: every ledger record
    about the run lies there, and an edit of any of them breaks a link checked there;
    edits before the run began are `audit.verify`'s to find.
    """
    report = Report()
    prepare = getattr(store, "prepare_verify", None)   # a team backend: local copies, and its own problems
    if prepare is not None:
        report.problems.extend(prepare(run_id))
    suffix = None if whole_ledger or not run_id else _ledger_from_start(store.ledger.path, run_id)
    if suffix is not None:
        data, start, seq0, prev0 = suffix
        ledger_problems, ledger_len, _ = verify_chain(store.ledger.path, "ledger", data, start, seq0, prev0)
        starts, anchors = ledger_marks(store.ledger.path, ledger_len - seq0, run_id, data[start:])
        on_disk = {run_id} if store.run_dir(run_id).is_dir() else set()
    else:
        ledger_problems, ledger_len, _ = verify_chain(store.ledger.path, "ledger")
        starts, anchors = ledger_marks(store.ledger.path, ledger_len, run_id)
        on_disk = set(store.run_ids())
    report.problems.extend(ledger_problems)
    wanted = [run_id] if run_id else sorted(on_disk | set(starts))
    for rid in wanted:
        label = f"run {rid}"
        path = store.journal_path(rid)
        if rid not in on_disk or not path.exists():
            if rid in starts:
                report.problems.append(Problem(label, f"deleted: the ledger recorded its start at "
                                                      f"{starts[rid].get('time')} but its journal is gone"))
            continue
        report.runs += 1
        problems, length, head = verify_chain(path, label)
        report.records += length
        report.problems.extend(problems)
        if rid not in starts:
            report.problems.append(Problem(label, "not in the ledger: this run was not started by the engine "
                                                  "here, or the ledger was cut"))
            continue
        anchor = anchors.get(rid)
        if anchor is None or problems:
            continue
        if length < anchor["length"]:
            report.problems.append(Problem(f"{label} record {length + 1}",
                                           f"tail cut: the ledger recorded {anchor['length']} records, "
                                           f"the journal has {length}"))
        elif (head if length == anchor["length"] else record_hash_at(path, anchor["length"])) != anchor["head"]:
            report.problems.append(Problem(f"{label} record {anchor['length']}",
                                           "edited: its hash differs from the head the ledger recorded"))
    return report


# A start and an anchor as the engine writes them (flat up to these keys, in this order).
_ANCHOR = re.compile(rb'"type":"run\.anchor","run":"([^"\\]+)","length":(\d+),"head":"([0-9a-f]{64})"[,}]')
_START = re.compile(rb'"time":"([^"\\]*)","type":"run\.start","run":"([^"\\]+)"')


def _ledger_from_start(path: Any, run_id: str) -> tuple[bytes, int, int, str] | None:
    """The ledger's bytes, where the run's start record begins, its number, and the hash
    of the record before it; None when the start is not found the quick way."""
    import hashlib

    from .journal import ZERO

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    at = data.find(b'"type":"run.start","run":"%s"' % run_id.encode())
    if at < 0:
        return None
    start = data.rfind(b"\n", 0, at) + 1
    if start == 0:
        return data, 0, 0, ZERO
    before = data.rfind(b"\n", 0, start - 1) + 1
    prev_line = data[before:start]
    m = re.match(rb'\{"prev":"[0-9a-f]{64}","seq":(\d+),', prev_line)
    if m is None:
        return None
    return data, start, int(m.group(1)) + 1, hashlib.sha256(prev_line).hexdigest()


def ledger_marks(path: Any, length: int, run_id: str | None = None, data: bytes | None = None
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each run's ``run.start`` (its ``run`` and ``time``) and its last ``run.anchor``
    (``length``, ``head``) among the ledger's first LENGTH records.

    The ledger is searched for both kinds with patterns in one pass each, not parsed
    line by line; when the counts do not add up (a record written another way, a ledger
    longer than its intact chain), every line is parsed as JSON instead.
    """
    if data is None:
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return {}, {}
    complete = data[:data.rfind(b"\n") + 1]
    if complete.count(b"\n") == length:
        found_starts = _START.findall(complete)
        found_anchors = _ANCHOR.findall(complete)
        # A start also names its parent run (nested, later in the record): the counts must match.
        if len(found_starts) == complete.count(b'"type":"run.start"') \
                and len(found_anchors) == complete.count(b'"type":"run.anchor"'):
            last = {r: (n, h) for r, n, h in found_anchors}
            if run_id:
                key = run_id.encode()
                found_starts = [(t, r) for t, r in found_starts if r == key]
                last = {key: last[key]} if key in last else {}
            starts = {r.decode(): {"run": r.decode(), "time": t.decode()} for t, r in found_starts}
            anchors = {r.decode(): {"length": int(n), "head": h.decode()} for r, (n, h) in last.items()}
            return starts, anchors
    starts, anchors = {}, {}
    for n, line in enumerate(data.splitlines(keepends=True)):
        if n >= length:
            break
        if b'"type":"run.' not in line:
            continue
        rec = json.loads(line)
        if rec.get("type") == "run.start":
            starts[rec["run"]] = rec
        elif rec.get("type") == "run.anchor":
            anchors[rec["run"]] = rec
    return starts, anchors
