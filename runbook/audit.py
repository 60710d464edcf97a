"""Audit verification: every journal chain, the ledger chain, and the two against each other."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


def verify(store: LocalStore, run_id: str | None = None) -> Report:
    """Verify the ledger and one run (or all); name the first bad record of each."""
    report = Report()
    prepare = getattr(store, "prepare_verify", None)   # a team backend: local copies, and its own problems
    if prepare is not None:
        report.problems.extend(prepare(run_id))
    ledger_problems, ledger_len, _ = verify_chain(store.ledger.path, "ledger")
    report.problems.extend(ledger_problems)
    starts: dict[str, dict[str, Any]] = {}
    anchors: dict[str, dict[str, Any]] = {}
    if store.ledger.path.exists():
        with open(store.ledger.path, "rb") as fh:
            for n, line in enumerate(fh):
                if n >= ledger_len:
                    break
                rec = json.loads(line)
                if rec.get("type") == "run.start":
                    starts[rec["run"]] = rec
                elif rec.get("type") == "run.anchor":
                    anchors[rec["run"]] = rec
    on_disk = set(store.run_ids())
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
        elif record_hash_at(path, anchor["length"]) != anchor["head"]:
            report.problems.append(Problem(f"{label} record {anchor['length']}",
                                           "edited: its hash differs from the head the ledger recorded"))
    return report
