"""Audit verification: every journal chain, the ledger chain, and the two against each other.

Each cross-reference closes a gap a chain alone leaves, because nothing later points at a
chain's newest record:

* a journal's records are covered by the ledger's ``run.anchor`` records (length and head);
* the ledger's anchors carry nothing but what the journal can confirm (run, length, head),
  and a journal that ends in a record after which the engine always anchors (a run
  status) must be anchored to its very end, so cutting or editing the ledger's newest
  anchors is seen;
* the ledger's ``run.start`` records are covered by each run's first journal record,
  which holds the start record's number and hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hints
from .journal import ZERO, Problem, record_hash_at, verify_chain
from .model import LedgerRecord
from .store import LocalStore

# Records after which the engine writes an anchor before it does anything else: every run status
# (a finished step is anchored only when it acted or asked, see engine.Runner.finish_step).
ANCHORED = frozenset({"run.parked", "run.interrupted", "run.failed", "run.succeeded", "run.abandoned"})


@dataclass
class Report:
    runs: int = 0
    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Marks:
    """What the ledger says about runs: each run's start and its newest anchor."""

    starts: dict[str, dict[str, Any]] = field(default_factory=dict)    # run -> time, hash, pos
    anchors: dict[str, dict[str, Any]] = field(default_factory=dict)   # run -> length, head, pos
    problems: list[Problem] = field(default_factory=list)


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
    ledger_path = Path(store.ledger.path)
    try:
        ledger = ledger_path.read_bytes()
    except FileNotFoundError:
        ledger = None
    suffix = None if whole_ledger or not run_id or ledger is None else _ledger_from_start(ledger, run_id)
    if suffix is not None and ledger is not None and run_id is not None:
        start, seq0, prev0 = suffix
        ledger_problems, ledger_len, _ = verify_chain(ledger_path, "ledger", ledger, start, seq0, prev0)
        marks = ledger_marks(ledger[start:], ledger_len - seq0, seq0, run_id)
        on_disk = {run_id} if store.run_dir(run_id).is_dir() else set()
    else:
        ledger_problems, ledger_len, _ = verify_chain(ledger_path, "ledger", ledger)
        marks = ledger_marks(ledger or b"", ledger_len, 0, run_id)
        on_disk = set(store.run_ids())
    report.problems.extend(ledger_problems)
    report.problems.extend(marks.problems)
    starts, anchors = marks.starts, marks.anchors
    for rid in sorted(set(anchors) - set(starts) - on_disk) if not run_id else ():
        report.problems.append(Problem(f"ledger record {anchors[rid]['seq'] + 1}",
                                       f"an anchor of run {rid}, which the ledger never started and which has "
                                       "no journal (edited)"))
    wanted = [run_id] if run_id else sorted({str(r) for r in on_disk | set(starts)})
    for rid in wanted:
        label = f"run {rid}"
        path = store.journal_path(rid)
        try:
            data = path.read_bytes() if rid in on_disk else None
        except FileNotFoundError:
            data = None
        if data is None:
            if rid in starts:
                report.problems.append(Problem(label, f"deleted: the ledger recorded its start at "
                                                      f"{starts[rid].get('time')} but its journal is gone"))
            continue
        report.runs += 1
        problems, length, head = verify_chain(path, label, data)
        report.records += length
        report.problems.extend(problems)
        if rid not in starts:
            report.problems.append(Problem(label, "not in the ledger: this run was not started by the engine "
                                                  "here, or the ledger was cut"))
            continue
        if problems:
            continue
        report.problems.extend(_cross_check(rid, path, data, length, head, starts[rid], anchors.get(rid)))
    return report


# The first journal record names the ledger's start record: "ledger":{"seq":N,"hash":"H"}.
_LEDGER_REF = re.compile(rb'"ledger":\{"seq":(\d+),"hash":"([0-9a-f]{64})"\}')


def _cross_check(rid: str, path: Path, data: bytes, length: int, head: str, start: dict[str, Any],
                 anchor: dict[str, Any] | None) -> list[Problem]:
    """A run's journal against the ledger: its start record, and its newest anchor."""
    label = f"run {rid}"
    first_end = data.find(b"\n") + 1
    ref = _LEDGER_REF.search(data, 0, first_end)
    if ref is not None and ref.group(2).decode() != start["hash"]:
        return [Problem(f"ledger record {int(ref.group(1)) + 1}",
                        f"edited: the start of run {rid} differs from the record its journal names")]
    anchored = anchor["length"] if anchor else 0
    if length < anchored:
        return [Problem(f"{label} record {length + 1}",
                        f"tail cut: ledger record {anchor['seq'] + 1} recorded {anchored} "  # type: ignore[index]
                        "records, "
                        f"the journal has {length}")]
    if anchor is not None and (head if length == anchored else record_hash_at(path, anchored)) != anchor["head"]:
        return [Problem(f"{label} record {anchored}",
                        f"edited: its hash differs from the head ledger record {anchor['seq'] + 1} recorded "
                        "(one of the two was changed)")]
    if length > anchored:
        last = data[data.rfind(b"\n", 0, len(data) - 1) + 1:]
        try:
            kind = json.loads(last).get("type")
        except ValueError:
            kind = None
        if kind in ANCHORED:
            where = f"its newest anchor covers {anchored} records" if anchor else "it has no anchor"
            return [Problem(f"ledger (the newest anchor of {label})",
                            f"missing: the journal ends with record {length} ({kind}), which the engine anchors "
                            f"at once, but {where}: the ledger's newest records were cut or edited, or the "
                            f"engine stopped between the two writes (then `{hints.resume(rid)}` "
                            "completes the anchor)")]
    return []


# A start and an anchor as the engine writes them: top-level keys right after the prefix.
_START_LINE = re.compile(rb'\{"prev":"[0-9a-f]{64}","seq":(\d+),"time":"([^"\\]*)",'
                         rb'"type":"run\.start","run":"([^"\\]+)"')
_ANCHOR_KEY = b'"type":"run.anchor","run":"'
_ANCHOR_REST = re.compile(rb'([^"\\]+)","length":(\d+),"head":"([0-9a-f]{64})"\}\n')
_ANCHOR_HEAD = re.compile(rb'\{"prev":"[0-9a-f]{64}","seq":(\d+),\Z')
_SEQ = re.compile(rb'\{"prev":"[0-9a-f]{64}","seq":(\d+),')


def _ledger_from_start(data: bytes, run_id: str) -> tuple[int, int, str] | None:
    """Where the run's start record begins in the ledger's bytes, its number, and the hash
    of the record before it; None when the start is not found the quick way."""
    at = data.find(b'"type":"run.start","run":"%s"' % run_id.encode())
    if at < 0:
        return None
    start = data.rfind(b"\n", 0, at) + 1
    if start == 0:
        return 0, 0, ZERO
    before = data.rfind(b"\n", 0, start - 1) + 1
    prev_line = data[before:start]
    m = _SEQ.match(prev_line)
    if m is None:
        return None
    return start, int(m.group(1)) + 1, hashlib.sha256(prev_line).hexdigest()


def ledger_marks(data: bytes, length: int, seq0: int = 0, run_id: str | None = None) -> Marks:
    """Each run's ``run.start`` (``time``, ``hash``, ``seq``) and its newest ``run.anchor``
    (``length``, ``head``, ``seq``) among the first LENGTH records of the ledger's bytes
    DATA (whose first record is number SEQ0).

    The quick way splits the ledger at every anchor and keeps each run's last (C code and
    one short step per anchor), then checks the few it kept, and finds the starts by
    search; when anything there is unexpected (a record written another way, an edit, a
    ledger longer than its intact chain), every line is parsed as JSON instead, and a line
    that is not a JSON record is named.
    """
    complete = data[:data.rfind(b"\n") + 1]
    if complete.count(b"\n") == length:
        marks = _marks_quick(complete, run_id)
        if marks is not None:
            return marks
    return _marks_careful(complete, length, seq0, run_id)


def _marks_quick(data: bytes, run_id: str | None) -> Marks | None:
    marks = Marks()
    key = run_id.encode() if run_id else None
    pieces = data.split(_ANCHOR_KEY)
    last: dict[bytes, int] = {}
    for i in range(1, len(pieces)):
        piece = pieces[i]
        last[piece[:piece.find(b'"')]] = i
    for run, i in last.items():
        if key is not None and run != key:
            continue
        before = pieces[i - 1]
        head = _ANCHOR_HEAD.match(before, before.rfind(b"\n") + 1)
        rest = _ANCHOR_REST.match(pieces[i])
        if head is None or rest is None:
            return None                 # not a top-level anchor as the engine writes it
        marks.anchors[run.decode()] = {"length": int(rest.group(2)), "head": rest.group(3).decode(),
                                       "seq": int(head.group(1))}
    needle = b'"type":"run.start","run":"' + (key + b'"' if key else b"")
    at = data.find(needle)
    while at >= 0:
        begin = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at) + 1
        m = _START_LINE.match(data, begin, end)
        if m is None:
            return None
        marks.starts[m.group(3).decode()] = {"time": m.group(2).decode(), "seq": int(m.group(1)),
                                             "hash": hashlib.sha256(data[begin:end]).hexdigest()}
        at = data.find(needle, end)
    return marks


def _marks_careful(complete: bytes, length: int, seq0: int, run_id: str | None) -> Marks:
    marks = Marks()
    key = run_id.encode() if run_id else None
    for n, line in enumerate(complete.splitlines(keepends=True)[:length]):
        if b'"type":"run.' not in line:
            continue
        try:
            rec = json.loads(line)
            kind, run = rec.get("type"), rec.get("run")
        except (ValueError, AttributeError):
            marks.problems.append(Problem(f"ledger record {seq0 + n + 1}", "edited: not a JSON record"))
            continue
        if kind in (LedgerRecord.START, LedgerRecord.ANCHOR) and not isinstance(run, str):
            marks.problems.append(Problem(f"ledger record {seq0 + n + 1}", f"edited: a {kind} without its run"))
            continue
        if key is not None and run != run_id:
            continue
        if kind == LedgerRecord.START:
            marks.starts[run] = {"time": rec.get("time"), "seq": seq0 + n, "hash": hashlib.sha256(line).hexdigest()}
        elif kind == LedgerRecord.ANCHOR:
            if not isinstance(rec.get("length"), int) or not isinstance(rec.get("head"), str):
                marks.problems.append(Problem(f"ledger record {seq0 + n + 1}", "edited: an anchor without its "
                                                                               "length and head"))
                continue
            marks.anchors[run] = {"length": rec["length"], "head": rec["head"], "seq": seq0 + n}
    return marks
