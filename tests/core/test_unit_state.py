"""The state fold (``runbook.state``) beyond what test_state_fold.py checks: the rehearsals' linked
runs, offers, reasons, operators and step statuses, and the fold's small rules one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook.state import (TERMINAL, UNFINISHED, Event, ItemState, RunState, Status, StepState, apply, derive,
                           deviation, outcome_text, restart)

FOLD = Path(__file__).resolve().parent.parent / "scenarios" / "fold"
EXTRA = ("children", "offer", "reason", "operators", "lock", "steps")


def fold(raw: list[dict[str, Any]]) -> RunState:
    """Records as a journal holds them (time, run, operator), folded."""
    return derive([{"time": f"2026-11-30T10:00:{i:02d}.000000Z", "run": "R1", "operator": "op", **r}
                   for i, r in enumerate(raw)])


def cases() -> list[str]:
    return sorted(p.name for p in FOLD.glob("*.yaml")
                  if set(EXTRA) & set((yaml.safe_load(p.read_text()) or {}).get("expect", {})))


@pytest.mark.parametrize("case", cases())
def test_rehearsal_links_offers_reasons_and_operators(case: str) -> None:
    spec = yaml.safe_load((FOLD / case).read_text())
    state, expect = fold(spec["records"]), spec["expect"]
    if "children" in expect:
        assert state.children == expect["children"]
    if "offer" in expect:
        assert state.offer == expect["offer"]
    if "reason" in expect:
        assert state.reason == expect["reason"]
    if "operators" in expect:
        assert state.operators == expect["operators"]
    if "lock" in expect:
        assert state.lock == expect["lock"]
    if "steps" in expect:
        assert {sid: state.steps[sid].status.value for sid in expect["steps"]} == expect["steps"]


# -- the fold's rules ------------------------------------------------------------------------

def test_the_first_record_names_the_run() -> None:
    state = fold([{"type": "run.started", "data": {"runbook": "r", "environment": "production", "digest": "d",
                                                   "params": {"v": 1}, "secret_hashes": {"t": "s$h"},
                                                   "parent": {"run": "P", "step": "s"}, "lock": "production",
                                                   "file": "/x/r.yaml"}}])
    assert (state.run_id, state.runbook, state.env, state.digest, state.params, state.secret_hashes, state.parent,
            state.lock, state.plan_file, state.started, state.length) == (
        "R1", "r", "production", "d", {"v": 1}, {"t": "s$h"}, {"run": "P", "step": "s"}, "production", "/x/r.yaml",
        "2026-11-30T10:00:00.000000Z", 1)


def test_a_forced_resume_adopts_the_new_digest() -> None:
    state = fold([{"type": "run.started", "data": {"digest": "old"}},
                  {"type": "run.forced", "data": {"reason": "hotfix", "old_digest": "old", "digest": "new"}}])
    assert state.digest == "new" and [d["kind"] for d in state.deviations] == ["forced resume"]


@pytest.mark.parametrize("last,status", [
    ("run.parked", Status.PARKED), ("run.interrupted", Status.INTERRUPTED), ("run.failed", Status.FAILED),
    ("run.succeeded", Status.SUCCEEDED), ("run.rolled-back", Status.ROLLED_BACK), ("run.abandoned", Status.ABANDONED),
    ("session.started", Status.RUNNING), ("step.started", Status.FAILED),
])
def test_the_status_is_the_last_status_record(last: str, status: Status) -> None:
    state = fold([{"type": "run.started", "data": {}}, {"type": "run.failed", "data": {"reason": "x"}},
                  {"type": last, "data": {"step": "s"}}])
    assert state.status is status


def test_terminal_and_unfinished_split_every_status() -> None:
    assert TERMINAL | UNFINISHED == set(Status) and not TERMINAL & UNFINISHED
    assert TERMINAL == {Status.SUCCEEDED, Status.ROLLED_BACK, Status.ABANDONED}


@pytest.mark.parametrize("intent,result,kept", [
    (None, None, False),
    ({"step": "s"}, None, True),                                                     # to be probed
    ({"step": "s"}, {"kind": "action", "passed": True}, True),
    ({"step": "s"}, {"kind": "action", "passed": False, "skipped": True}, True),    # skipped by a decision
    ({"step": "s"}, {"kind": "action", "passed": False}, False),                    # a failed action runs again
    (None, {"kind": "check", "passed": True}, False),                               # checks run again
    (None, {"manual": True, "passed": False, "skipped": True}, True),               # an answer stays
])
def test_what_a_restarted_step_keeps(intent: Any, result: Any, kept: bool) -> None:
    assert ItemState("k", intent, result).kept_on_restart() is kept


def test_restart_forgets_only_this_steps_decisions_confirm_and_gate() -> None:
    state = RunState(prompts={p: {} for p in ("s.confirm", "s.approval", "s.on_fail", "s.c.on_fail", "s.m",
                                              "s2.confirm", "t.on_fail", "s.approval.timeout")})
    step = StepState("s", items={"c": ItemState("c", None, {"kind": "check", "passed": True}),
                                 "m": ItemState("m", None, {"manual": True, "passed": True})})
    restart(state, step)
    assert sorted(state.prompts) == ["s.approval.timeout", "s.m", "s2.confirm", "t.on_fail"]
    assert list(step.items) == ["m"]


@pytest.mark.parametrize("status,continued,done", [
    ("succeeded", False, True), ("skipped", False, True), ("failed", True, True), ("failed", False, False),
    ("running", False, False),
])
def test_a_step_is_done_when_it_never_runs_again(status: str, continued: bool, done: bool) -> None:
    state = fold([{"type": "step.started", "data": {"step": "s"}},
                  {"type": "step.finished", "data": {"step": "s", "status": status, "continued": continued}}])
    assert state.finished("s") is done
    assert not state.finished("never-started")


@pytest.mark.parametrize("record", [
    {"type": "item.result", "data": {"step": "s", "item": "c", "passed": False}},
    {"type": "item.result", "data": {"step": "s", "item": "a", "passed": True, "recovered": "probe"}},
    {"type": "item.result", "data": {"step": "s", "item": "a", "skipped": True, "recovered": "operator"}},
    {"type": "step.finished", "data": {"step": "s", "status": "skipped", "reason": "when: x is false"}},
    {"type": "step.finished", "data": {"step": "s", "status": "failed"}},
    {"type": "run.offer", "data": {"runbook": "undo", "accepted": True}},
    {"type": "prompt.answered", "data": {"id": "s.approval", "refused": "own run"}},
])
def test_what_is_not_a_deviation(record: dict[str, Any]) -> None:
    assert deviation(record) is None


def test_a_deviation_says_what_where_and_why() -> None:
    found = deviation({"time": "T", "type": "item.result",
                       "data": {"step": "s", "item": "m", "manual": True, "skipped": True, "reason": "ticket down"}})
    assert found == {"time": "T", "kind": "item not done", "step": "s", "detail": "m: ticket down"}
    takeover = deviation({"type": Event.TAKEOVER.value, "data": {"key": "prod", "from_run": "R0",
                                                                 "from_operator": "al", "reason": "site down"}})
    assert takeover is not None and takeover["detail"] == "took 'prod' from run R0 (al): site down"


@pytest.mark.parametrize("status,count,text", [
    ("succeeded", 0, "succeeded"), ("succeeded", 2, "succeeded with 2 deviation(s)"), ("failed", 2, "failed"),
    ("rolled-back", 1, "rolled-back")])
def test_outcome_text(status: str, count: int, text: str) -> None:
    assert outcome_text(status, count) == text


def test_a_child_finished_without_its_start_is_still_known() -> None:
    state = fold([{"type": "child.finished", "data": {"step": "run.on_failure", "run": "C1", "status": "failed"}}])
    assert state.children == {"run.on_failure": {"run": "C1", "status": "failed"}}


def test_apply_counts_records_and_keeps_the_latest_time() -> None:
    state = RunState()
    apply(state, {"type": "journal.repaired", "time": "T1", "data": {}})
    apply(state, {"type": "unknown.kind", "time": "T2"})
    assert state.length == 2 and state.updated == "T2" and state.status is Status.RUNNING
