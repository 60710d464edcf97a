"""Answers files, --yes and parking, in process (the engine's decisions, not the command line).

Moved from tests/test_prompts.py, where each ran `invoke runbook` as a process; that file keeps
what needs the command line (protected-environment refusals as exit-2 lines, crashes, abandon).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import of_type, world

GATES_DONE = {"confirm-it.confirm": True, "confirm-it.tick": True,
              "evidence.link": {"done": True, "link": "https://dash.example/x"}}


def test_non_interactive_parks_then_resumes_with_answers(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("gates") == 4
    run_id = w.last()
    parked = w.records(run_id)[-1]
    assert parked["type"] == "run.parked" and "needs a person: confirm-it.confirm" in parked["data"]["reason"]
    assert w.state(run_id).status == "parked"
    assert w.run(resume=run_id, answers={**GATES_DONE, "approve.approval": {"approvers": ["bob", "carol"]}}) == 0
    recs = w.records(run_id)
    assert len(of_type(recs, "run.parked")) == 1
    approval = of_type(recs, "item.result", item="approval")[0]
    assert approval["data"]["outputs"]["approvers"] == ["bob", "carol"] and approval["data"]["verified"] is False


def test_yes_answers_confirmations_but_not_evidence_or_approvals(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("gates", yes=True) == 4
    recs = w.records()
    assert "needs a person: evidence.link (with a link)" in recs[-1]["data"]["reason"]
    assert {r["data"]["id"]: r["data"]["source"] for r in of_type(recs, "prompt.answered")} == {
        "confirm-it.confirm": "--yes", "confirm-it.tick": "--yes"}


@pytest.mark.parametrize("approvers,problem", [
    (["tester@example.com", "bob"], "the operator (tester@example.com) cannot approve their own run"),
    (["bob", "bob"], "the same person is named twice"),
    (["bob"], "1 approver(s) named, 2 needed"),
])
def test_prompt_approvals_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, approvers: list[str],
                                      problem: str) -> None:
    monkeypatch.setenv("RUNBOOK_OPERATOR", "tester@example.com")
    w = world(tmp_path)
    # refused, and nobody to ask for another approver: parked, not failed
    assert w.run("gates", answers={**GATES_DONE, "approve.approval": {"approvers": approvers}}) == 4
    recs = w.records()
    refusal = of_type(recs, "prompt.answered", id="approve.approval")
    assert refusal[0]["data"]["refused"] == problem
    assert recs[-1]["type"] == "run.parked" and f"approval refused: {problem}" in recs[-1]["data"]["reason"]
    assert not of_type(recs, "step.finished", step="approve")
