"""Audit review and reports from records alone (``runbook.review.view``, ``select``, ``report.text``,
``report.markdown``): what a reviewer reads about a run, deviations kept apart from notes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from runbook import report
from runbook.report import common
from runbook.errors import InputError
from runbook.review import RunView, describe, parse_since, select, shown_status, view

RECORDS: list[tuple[str, str, dict[str, Any]]] = [
    ("run.started", "op", {"runbook": "release", "title": "Deploy to Production", "environment": "production",
                           "digest": "d" * 64, "params": {"version": "v1.2.0"}, "secret_hashes": {"token": "s$h"}}),
    ("session.started", "op", {"resume": False, "host": "laptop"}),
    ("step.started", "op", {"step": "checks", "title": "Pre-flight"}),
    ("item.result", "op", {"step": "checks", "item": "clean", "uses": "git.clean_worktree", "kind": "check",
                           "passed": False, "summary": "2 files modified", "evidence": {"files": ["a", "b"]}}),
    ("item.result", "op", {"step": "checks", "item": "clean", "uses": "git.clean_worktree", "kind": "check",
                           "passed": True, "summary": "clean"}),
    ("prompt.answered", "op", {"id": "checks.ready", "kind": "manual", "question": "Ready?",
                               "answer": {"done": False, "reason": "ticket system down"}, "source": "answers-file"}),
    ("item.result", "op", {"step": "checks", "item": "ready", "manual": True, "passed": False, "skipped": True,
                           "reason": "ticket system down", "summary": "not done"}),
    ("step.finished", "op", {"step": "checks", "status": "succeeded"}),
    ("run.interrupted", "op", {"reason": "interrupted by SIGINT"}),
    ("journal.repaired", "bob", {"bytes": 12, "offset": 900, "kept_in": "journal.jsonl.torn-at-900"}),
    ("session.started", "bob", {"resume": True, "host": "bastion"}),
    ("step.started", "bob", {"step": "deploy", "title": "Deploy"}),
    ("item.intent", "bob", {"step": "deploy", "item": "push", "uses": "git.push"}),
    ("item.result", "bob", {"step": "deploy", "item": "push", "uses": "git.push", "kind": "action", "passed": True,
                            "recovered": "probe", "summary": "main at abc123", "outputs": {"sha": "abc123"}}),
    ("step.finished", "bob", {"step": "deploy", "status": "succeeded"}),
    ("step.started", "bob", {"step": "approve", "title": "Approve"}),
    ("prompt.answered", "bob", {"id": "approve.approval", "kind": "approval", "answer": {"approvers": ["bob"]},
                                "source": "interactive", "refused": "the operator (bob) cannot approve their own run"}),
    ("item.result", "bob", {"step": "approve", "item": "approval", "passed": True,
                            "summary": "approved by carol (unverified prompt approval)",
                            "outputs": {"approvers": ["carol"], "head_sha": "f" * 40, "verified": False}}),
    ("step.finished", "bob", {"step": "approve", "status": "succeeded"}),
    ("step.finished", "bob", {"step": "smoke", "status": "skipped", "reason": "when: ${params.smoke} is false"}),
    ("step.started", "bob", {"step": "monitor", "title": "Monitor"}),
    ("step.finished", "bob", {"step": "monitor", "status": "failed", "continued": True,
                              "reason": "5xx above 1% (on_failure: continue)"}),
    ("child.started", "bob", {"step": "postmortem", "run": "C1", "runbook": "post-rollback"}),
    ("child.finished", "bob", {"step": "postmortem", "run": "C1", "status": "succeeded"}),
    ("run.offer", "bob", {"runbook": "rollback-fast", "accepted": False}),
    ("run.succeeded", "bob", {"deviations": 2}),
]


def journal(records: list[tuple[str, str, dict[str, Any]]] = RECORDS) -> list[dict[str, Any]]:
    return [{"seq": i, "time": f"2026-11-30T10:{i:02d}:00.000000Z", "run": "R1", "operator": op, "type": kind,
             "data": data} for i, (kind, op, data) in enumerate(records)]


@pytest.fixture
def run() -> RunView:
    return view(journal())


def test_the_run_its_status_and_who_ran_it(run: RunView) -> None:
    assert (run.run_id, run.runbook, run.title, run.environment, run.version) == \
        ("R1", "release", "Deploy to Production", "production", "v1.2.0")
    assert (run.status, run.outcome, run.records) == ("succeeded", "succeeded with 2 deviation(s)", len(RECORDS))
    assert run.operators == ["op", "bob"] and run.secret_params == ["token"]
    assert [(s["resume"], s["host"], s["operator"]) for s in run.sessions] == [
        (False, "laptop", "op"), (True, "bastion", "bob")]
    assert run.started == "2026-11-30T10:00:00.000000Z" and run.duration == 25 * 60


def test_steps_in_order_with_status_duration_and_reason(run: RunView) -> None:
    assert [(s.id, s.status) for s in run.steps] == [("checks", "succeeded"), ("deploy", "succeeded"),
                                                     ("approve", "succeeded"), ("smoke", "skipped"),
                                                     ("monitor", "failed")]
    checks = run.steps[0]
    assert checks.title == "Pre-flight" and checks.duration == 5 * 60
    assert run.steps[3].reason == "when: ${params.smoke} is false" and run.steps[3].duration is None


def test_items_keep_their_last_result_and_count_attempts(run: RunView) -> None:
    clean, ready = run.steps[0].items
    assert (clean.kind, clean.passed, clean.attempts, clean.summary, clean.uses) == \
        ("check", True, 2, "clean", "git.clean_worktree")
    assert (ready.kind, ready.skipped, ready.attempts, ready.reason) == ("manual", True, 0, "ticket system down")
    [push] = run.steps[1].items
    assert (push.kind, push.recovered, push.outputs) == ("action", "probe", {"sha": "abc123"})


def test_prompts_say_who_answered_from_where(run: RunView) -> None:
    assert [(p["id"], p["by"], p["source"]) for p in run.prompts] == [
        ("checks.ready", "op", "answers-file"), ("approve.approval", "bob", "interactive")]
    assert run.prompts[1]["refused"].startswith("the operator (bob)") and "refused" not in run.prompts[0]


def test_an_approval_records_its_approvers_and_head_sha(run: RunView) -> None:
    assert run.approvals == [{"step": "approve", "time": "2026-11-30T10:17:00.000000Z", "approvers": ["carol"],
                              "head_sha": "f" * 40, "verified": False,
                              "summary": "approved by carol (unverified prompt approval)"}]


def test_deviations_and_notes_are_kept_apart(run: RunView) -> None:
    assert [(d["kind"], d["step"]) for d in run.deviations] == [("item not done", "checks"),
                                                                ("step failed (on_failure: continue)", "monitor")]
    assert [(n["kind"], n["step"]) for n in run.notes] == [
        ("retry", "checks"), ("torn journal tail cut", ""), ("recovered after interruption", "deploy"),
        ("approval refused", "approve"), ("on_failure offered", "")]
    assert "clean ran again after: 2 files modified" in run.notes[0]["detail"]
    assert run.notes[-1]["detail"] == "rollback-fast: declined"


def test_linked_runs(run: RunView) -> None:
    assert run.children == [{"run": "C1", "step": "postmortem", "runbook": "post-rollback", "status": "succeeded",
                             "started": "2026-11-30T10:22:00.000000Z", "finished": "2026-11-30T10:23:00.000000Z"}]
    assert view(journal([("run.started", "op", {"runbook": "child", "parent": {"run": "P", "step": "s"}})])) \
        .parent == {"run": "P", "step": "s"}


def test_a_resumed_run_is_running_again_until_it_ends() -> None:
    interrupted = view(journal(RECORDS[:9]))
    assert (interrupted.status, interrupted.reason, interrupted.ended) == \
        ("interrupted", "interrupted by SIGINT", "2026-11-30T10:08:00.000000Z")
    resumed = view(journal(RECORDS[:11]))
    assert (resumed.status, resumed.ended, resumed.duration) == ("running", "", None)


def test_the_summary_and_the_dict(run: RunView) -> None:
    summary = run.summary()
    assert {k: summary[k] for k in ("run", "runbook", "environment", "operator", "status", "deviations", "outcome",
                                    "version", "children")} == {
        "run": "R1", "runbook": "release", "environment": "production", "operator": "op", "status": "succeeded",
        "deviations": 2, "outcome": "succeeded with 2 deviation(s)", "version": "v1.2.0", "children": ["C1"]}
    data = run.to_dict()
    assert "events" not in data and data["steps"][0]["duration_s"] == 300 and data["outcome"] == summary["outcome"]


@pytest.mark.parametrize("index,text", [
    (0, "started release in production version=v1.2.0"),
    (3, "checks.clean FAILED: 2 files modified"),
    (6, "checks.ready skipped: not done (reason: ticket system down)"),
    (10, "resumed"),
    (12, "deploy.push: about to run git.push"),
    (19, "step smoke skipped: when: ${params.smoke} is false"),
    (22, "linked run C1 (post-rollback) started"),
    (8, "run.interrupted: interrupted by SIGINT"),
])
def test_describe_gives_one_line_per_record(index: int, text: str) -> None:
    assert describe(journal()[index]) == text


# -- select ------------------------------------------------------------------------------------

SUMMARIES = [
    {"run": "A", "runbook": "release", "environment": "production", "status": "succeeded", "operators": ["al"],
     "started": "2026-11-30T08:00:00.000000Z", "ended": "2026-11-30T08:30:00.000000Z"},
    {"run": "B", "runbook": "rollback", "environment": "production", "status": "failed", "operators": ["al", "bo"],
     "started": "2026-11-30T09:00:00.000000Z", "ended": "2026-11-30T09:10:00.000000Z"},
    {"run": "C", "runbook": "release", "environment": "staging", "status": "running", "operators": ["cy"],
     "started": "2026-11-30T11:00:00.000000Z", "ended": ""},
]


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 30, hour, minute, tzinfo=timezone.utc)


@pytest.mark.parametrize("filters,runs", [
    ({}, ["A", "B", "C"]),
    ({"runbook": "release"}, ["A", "C"]),
    ({"env": "production"}, ["A", "B"]),
    ({"status": "failed"}, ["B"]),
    ({"operator": "bo"}, ["B"]),
    ({"operator": "al", "runbook": "release"}, ["A"]),
    ({"since": at(8, 45)}, ["B", "C"]),            # ended after, or still running
    ({"until": at(8, 59)}, ["A"]),                 # started before
    ({"since": at(8, 45), "until": at(10)}, ["B"]),
])
def test_select_filters_summaries(filters: dict[str, Any], runs: list[str]) -> None:
    assert [s["run"] for s in select(SUMMARIES, **filters)] == runs


def test_since_takes_a_duration_or_an_iso_time() -> None:
    now = at(12)
    assert parse_since("2h", now=now) == at(10) and parse_since("90m", now=now) == at(10, 30)
    assert parse_since("2026-11-30T09:00:00Z") == at(9) and parse_since("2026-11-30T09:00:00") == at(9)
    assert parse_since(None) is None
    with pytest.raises(InputError, match="'soon' is not a duration \\(2h, 3d\\) or an ISO time \\(at --until\\)"):
        parse_since("soon", "--until")


def test_a_running_run_without_a_live_lock_is_shown_interrupted() -> None:
    class Live:
        def is_stale(self) -> bool:
            return False
    assert shown_status("running", "R1", None, {"R1": Live()}) == "running"
    assert shown_status("running", "C1", {"run": "R1"}, {"R1": Live()}) == "running"      # its parent holds it
    assert shown_status("running", "R1", None, {}) == "interrupted"
    assert shown_status("failed", "R1", None, {}) == "failed"


# -- reports ------------------------------------------------------------------------------------

def test_the_text_report(run: RunView) -> None:
    text = report.text(run, "chain verified")
    for part in ("Run R1: release (Deploy to Production)", "status: succeeded with 2 deviation(s)",
                 "journal: chain verified", "parameters: version=v1.2.0, token=******** (secret)",
                 "operators: op, bob    sessions: 2", "linked run: C1 post-rollback (succeeded) from step postmortem",
                 "    Pre-flight [checks]: succeeded", "ok       clean (git.clean_worktree): clean [2 attempts]",
                 "not done Ready? [ready]: no; reason: ticket system down (by op at 10:05:00, answers-file)",
                 "    smoke: skipped", "2. 10:10:00 bob on bastion resumed after 2m00s (the previous session ended: "
                 "interrupted: interrupted by SIGINT)",
                 "approve: carol at ffffffffffff (unverified prompt approval)",
                 "  deviations from the runbook:", "10:06:00 item not done in checks: ready: ticket system down",
                 "  notes (retries, recoveries, offers; not deviations):",
                 "10:24:00 on_failure offered: rollback-fast: declined",
                 "REFUSED: the operator (bob) cannot approve their own run"):
        assert part in text, part
    assert text.index("deviations from the runbook") < text.index("notes (retries")
    assert "s$h" not in text


def test_a_failed_items_evidence_is_shown_only_while_it_fails() -> None:
    failing = view(journal(RECORDS[:4]))
    assert 'evidence: {"files": ["a", "b"]}' in report.text(failing, "ok")
    assert "evidence:" not in report.text(view(journal(RECORDS[:5])), "ok")


def test_the_markdown_report(run: RunView) -> None:
    md = report.markdown(run, "chain verified", ["10:00:00 op: started"], {"children": run.children})
    assert md.startswith("# release run `R1`: succeeded with 2 deviation(s)\n")
    for part in ("| Runbook | release: Deploy to Production |", "| Status | **✓ succeeded with 2 deviation(s)** |",
                 "| Plan digest | `dddddddddddddddd` |", "- `token`: `******** (secret)`",
                 "- Linked run `C1` (post-rollback): succeeded",
                 "| Monitor (`monitor`) | ✗ failed | 10:20:00 | 1m00s | 5xx above 1% (on_failure: continue) |",
                 "## Approvals", "## Deviations from the runbook",
                 "- 10:06:00 **item not done** in checks: ready: ticket system down",
                 "## Notes (retries, recoveries, offers)", "**recovered after interruption** in deploy",
                 "## Answers", "**refused: the operator (bob) cannot approve their own run**",
                 "## Timeline", "10:00:00 op: started"):
        assert part in md, part
    assert md.index("## Deviations") < md.index("## Notes")


def test_markdown_escapes_table_cells_and_lists_failed_checks() -> None:
    records = RECORDS[:4] + [("step.finished", "op", {"step": "checks", "status": "failed",
                                                      "reason": "a | b\nc"})]
    md = report.markdown(view(journal(records)), "ok", [], {})
    assert "| Pre-flight (`checks`) | ✗ failed | 10:02:00 | 2m00s | a \\| b c |" in md
    assert "## Failed checks" in md and "- **checks.clean** (git.clean_worktree): 2 files modified" in md


def test_a_clean_run_has_no_deviation_or_note_sections() -> None:
    clean = view(journal([RECORDS[0], ("step.started", "op", {"step": "a"}),
                          ("step.finished", "op", {"step": "a", "status": "succeeded"}),
                          ("run.succeeded", "op", {})]))
    md = report.markdown(clean, "ok", [], {})
    text = report.text(clean, "ok")
    assert clean.outcome == "succeeded"
    assert "## Deviations" not in md and "## Notes" not in md
    assert "deviations from" not in text and "notes (" not in text


def test_durations_read_in_seconds_or_minutes() -> None:
    assert (common.duration(None), common.duration(4.25), common.duration(125)) == ("-", "4.2s", "2m05s")
