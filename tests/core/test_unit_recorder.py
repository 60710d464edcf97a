"""The one place records are written (``runbook.recorder``): buffered, redacted records written as one
group commit and folded into the run's state; anchors of the journal in the ledger; a final record
written from outside a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runbook.audit import verify
from runbook.locks import Fenced
from runbook.model import LedgerRecord
from runbook.recorder import Recorder, append_final, ledger_event
from runbook.redact import Redactor
from runbook.state import Event, Status
from runbook.store import LocalStore

SECRET = "hunter2-very-secret"


class Console:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def event(self, rec: dict[str, Any]) -> None:
        self.events.append(rec)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "home", durable=False)


@pytest.fixture
def rec(store: LocalStore) -> Recorder:
    """A new run's recorder with its journal created and its run started."""
    r = Recorder(store, "R1", "op@example.com", Redactor([SECRET]), console=Console())
    r.open(create=True)
    started = r.start({"runbook": "release", "environment": "production"})
    r.emit(Event.RUN_STARTED, {"runbook": "release", "ledger": {"seq": started["seq"], "hash": started["hash"]},
                               "params": {}})
    r.emit(Event.SESSION, {"resume": False}, flush=True)
    return r


def anchors(store: LocalStore) -> list[dict[str, Any]]:
    return [r for r in store.ledger.records() if r["type"] == LedgerRecord.ANCHOR.value]


def test_records_wait_in_the_buffer_until_a_flush_writes_them_as_one_commit(store: LocalStore,
                                                                            rec: Recorder) -> None:
    length = len(store.records("R1"))
    rec.emit(Event.STEP_STARTED, {"step": "a"})
    rec.emit(Event.ITEM_RESULT, {"step": "a", "item": "c", "kind": "check", "passed": True})
    assert len(store.records("R1")) == length and "a" not in rec.state.steps     # nothing written, nothing folded
    size = store.journal_path("R1").stat().st_size
    rec.flush()
    records = store.records("R1")
    assert [r["type"] for r in records[length:]] == ["step.started", "item.result"]
    assert store.journal_path("R1").stat().st_size > size
    assert rec.state.steps["a"].items["c"].result is not None and rec.state.length == len(records)


def test_every_record_is_timed_signed_and_shown(store: LocalStore, rec: Recorder) -> None:
    first = store.records("R1")[0]
    assert (first["run"], first["operator"], first["type"], first["seq"]) == ("R1", "op@example.com", "run.started", 0)
    assert first["time"].endswith("Z")
    assert [e["type"] for e in rec.console.events] == ["run.started", "session.started"]


def test_secrets_are_redacted_before_anything_is_written_or_shown(store: LocalStore, rec: Recorder) -> None:
    rec.emit(Event.ITEM_RESULT, {"step": "a", "item": "c", "passed": False, "summary": f"token {SECRET} refused",
                                 "evidence": {"argv": ["login", SECRET], SECRET: 1}}, flush=True)
    written = store.journal_path("R1").read_text()
    assert SECRET not in written and SECRET not in str(rec.console.events)
    last = store.records("R1")[-1]["data"]
    assert last["summary"] == "token [REDACTED] refused"
    assert last["evidence"] == {"argv": ["login", "[REDACTED]"], "[REDACTED]": 1}


def test_the_run_start_goes_to_the_ledger_and_its_journal_points_at_it(store: LocalStore, rec: Recorder) -> None:
    [start] = [r for r in store.ledger.records() if r["type"] == "run.start"]
    assert (start["run"], start["runbook"], start["seq"]) == ("R1", "release", 0)
    assert store.records("R1")[0]["data"]["ledger"]["seq"] == 0


def test_an_anchor_records_the_journals_length_and_head(store: LocalStore, rec: Recorder) -> None:
    rec.emit(Event.STEP_STARTED, {"step": "a"})
    rec.flush(anchor_it=True)
    [anchor] = anchors(store)
    journal = store.journal("R1")
    assert (anchor["run"], anchor["length"], anchor["head"]) == ("R1", journal.length, journal.head)
    assert "time" not in anchor
    assert verify(store, "R1").ok


def test_an_anchor_is_written_even_with_nothing_buffered(store: LocalStore, rec: Recorder) -> None:
    rec.flush(anchor_it=True)
    rec.flush(anchor_it=True)
    assert [a["length"] for a in anchors(store)] == [2, 2]


def test_acted_says_whether_something_was_done_or_decided_since_the_last_anchor(rec: Recorder) -> None:
    assert not rec.acted
    rec.emit(Event.STEP_STARTED, {"step": "a"})
    rec.emit(Event.ITEM_RESULT, {"step": "a", "item": "c", "kind": "check", "passed": True})
    assert not rec.acted                                  # checks alone wait for the next anchor
    rec.emit(Event.ITEM_INTENT, {"step": "a", "item": "w"})
    assert rec.acted
    rec.flush(anchor_it=True)
    assert not rec.acted
    rec.emit(Event.PROMPT, {"id": "a.confirm", "answer": {"done": True}})
    assert rec.acted


def test_a_cut_tail_is_found_against_the_ledgers_anchor(store: LocalStore, rec: Recorder) -> None:
    rec.emit(Event.STEP_STARTED, {"step": "a"})
    rec.emit(Event.STEP_FINISHED, {"step": "a", "status": "succeeded"})
    rec.flush(anchor_it=True)
    path = store.journal_path("R1")
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    problems = [str(p) for p in verify(store, "R1").problems]
    assert len(problems) == 1 and "tail cut" in problems[0] and "recorded 4 records, the journal has 3" in problems[0]


def test_a_fenced_recorder_writes_nothing_and_drop_forgets_the_buffer(store: LocalStore) -> None:
    def fence() -> None:
        raise Fenced("this run no longer holds lock 'production'")
    r = Recorder(store, "R2", "op", Redactor(), fence=fence)
    r.open(create=True)
    r.emit(Event.RUN_STARTED, {"runbook": "x"})
    with pytest.raises(Fenced):
        r.flush()
    assert not store.journal_path("R2").exists()
    r.drop()
    r.flush()                                             # nothing left to write, the fence is not asked
    assert not store.journal_path("R2").exists()


def test_reopening_folds_the_records_and_repairs_a_torn_tail(store: LocalStore, rec: Recorder) -> None:
    path = store.journal_path("R1")
    with open(path, "ab") as fh:
        fh.write(b'{"prev":"0123')
    again = Recorder(store, "R1", "bob", Redactor())
    again.open(create=False, records=store.records("R1"))
    assert again.state.runbook == "release" and again.state.status is Status.RUNNING
    again.flush()
    last = store.records("R1")[-1]
    assert (last["type"], last["operator"], last["data"]["bytes"], last["data"]["after_record"]) == \
        ("journal.repaired", "bob", 13, 2)
    assert (path.parent / last["data"]["kept_in"]).read_bytes() == b'{"prev":"0123'
    assert verify(store, "R1").ok


def test_a_new_run_folder_must_not_exist_yet(store: LocalStore, rec: Recorder) -> None:
    with pytest.raises(FileExistsError):
        Recorder(store, "R1", "op", Redactor()).open(create=True)


def test_a_final_record_from_outside_the_run_is_appended_redacted_and_anchored(
        store: LocalStore, rec: Recorder) -> None:
    append_final(store, "R1", "lead@example.com", Redactor([SECRET]), Event.ABANDONED,
                 {"reason": f"superseded; old token {SECRET}"})
    last = store.records("R1")[-1]
    assert (last["type"], last["operator"]) == ("run.abandoned", "lead@example.com")
    assert SECRET not in last["data"]["reason"]
    assert store.state("R1").status is Status.ABANDONED
    assert anchors(store)[-1]["length"] == len(store.records("R1"))
    assert verify(store, "R1").ok


def test_a_ledger_event_of_the_session(store: LocalStore) -> None:
    written = ledger_event(store, LedgerRecord.UNLOCK, key="production", reason="host died", by="op")
    assert (written["type"], written["key"], written["reason"]) == ("lock.unlock", "production", "host died")
    assert [r["type"] for r in store.ledger.records()] == ["lock.unlock"]
