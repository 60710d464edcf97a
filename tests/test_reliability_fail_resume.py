"""Fail, then resume (the short sample of `invoke reliability`): every case held.

The figure's journal rules are checked on their own first (fast): a step that succeeded after a
failed item without a later pass is caught, a journaled skip is not; steps started after the
failing one are found, in the run and after its linking step in the parent. Then the synthetic
figure (every pair) and the sandbox sample (slow).
"""

from __future__ import annotations

import json

import pytest

from reliability import fail_resume as fr
from reliability import sandbox_kills as sk
from reliability.suite import PROJECT

from helpers import processes_with


def _rec(type_: str, **data: object) -> dict:
    return {"type": type_, "data": data}


def test_a_step_passed_after_a_failure_without_a_later_pass_is_caught() -> None:
    failed = {"passed": False, "summary": "failed by RUNBOOK_FAIL_AT=s.a (test hook)"}
    run = sk.Run("R", "rb", None, [
        _rec("step.started", step="s"), _rec("item.result", step="s", item="a", **failed),
        _rec("step.finished", step="s", status="succeeded"),                        # walked past
        _rec("step.started", step="t"), _rec("item.result", step="t", item="a", **failed),
        _rec("step.started", step="t", restart=True), _rec("item.result", step="t", item="a", passed=True),
        _rec("step.finished", step="t", status="succeeded"),                        # passed on the retry
        _rec("prompt.answered", id="u.confirm", kind="confirm", answer={"done": False}),
        _rec("step.finished", step="u", status="skipped", decision="skip", reason="typed"),   # a journaled skip
        _rec("prompt.answered", id="v.approval", kind="approval", answer={}, refused="too few"),
        _rec("step.finished", step="v", status="succeeded"),                        # past a refused gate
        _rec("child.finished", step="w", status="failed"), _rec("child.finished", step="w", status="succeeded"),
        _rec("step.finished", step="w", status="succeeded"),
    ])
    assert fr.passed_without_success(run) == ["rb s succeeded after a failed", "rb v succeeded after approval failed"]


def test_failing_records_and_later_steps() -> None:
    pair = fr.Pair("child", "c2", "action", "x")
    parent = sk.Run("P", "top", None, [_rec("step.started", step=s) for s in ("p1", "link", "p3")])
    child = sk.Run("C", "child", {"run": "P", "step": "link"}, [
        _rec("step.started", step="c1"), _rec("step.started", step="c2"),
        _rec("item.result", step="c2", item="x", passed=False, summary="failed by RUNBOOK_FAIL_AT=c2.x (test hook)"),
        _rec("step.started", step="c3")])
    orders = {"top": ["p1", "link", "p3"], "child": ["c1", "c2", "c3"]}
    assert len(fr.failing_records(child, pair)) == 1 and fr.failing_records(child, pair, since=3) == []
    assert fr.started_after([parent, child], pair, orders) == ["child c3", "top p3"]
    rollback = sk.Run("C", "child", {"run": "P", "step": "run.on_failure"}, child.records[:3])
    assert fr.started_after([parent, rollback], pair, orders) == []     # an on_failure run starts after the failure


def test_every_way_of_the_synthetic_runbook_is_a_pair() -> None:
    pairs, notes = fr.pairs_of(PROJECT, "crashy", {})
    ways = {(p.runbook, p.step, p.way) for p in pairs}
    assert {("crashy", "prep", "guard"), ("crashy", "prep", "abort"), ("crashy", "gate", "approval"),
            ("crashy", "last", "verify"), ("crashy-child", "cstep", "action")} <= ways
    cont = next(p for p in pairs if p.step == "cont")
    assert cont.once and cont.first_exit == 0 and cont.final == "succeeded with 1 deviation(s)"
    gate = next(p for p in pairs if p.way == "approval")
    assert gate.first_exit == 4


def test_sandbox_pairs_cover_both_runbooks_and_say_what_is_honest() -> None:
    every, _, _ = fr.sandbox_pairs()
    by = {(p.runbook, p.step, p.way): p for _, p in every}
    assert by[("production-release", "merge", "abort")].final == "succeeded"          # before the merge
    # after it the rollback is accepted; it finds its target once the release recorded what it deployed
    assert by[("production-release", "tag", "action")].final == "failed"
    assert by[("production-release", "verification.health", "verify")].final == "rolled-back"
    assert by[("rollback-fast", "revert-approvals", "approval")].first_exit == 4
    assert by[("rollback-fast", "rollback", "abort")].prompt == "run.on_failure/rollback.confirm"
    assert by[("production-release", "prerequisites", "abort")].declined == {"choice": "abort"}
    assert ("post-rollback", "fix", "abort") not in by         # manual items only: no abort in an answers file
    assert len(sk.spread(every, fr.SANDBOX_SAMPLE["short"])) == fr.SANDBOX_SAMPLE["short"]


def test_synthetic_every_pair_fails_resumes_and_ends_honestly() -> None:
    fig = fr.fail_then_resume(True)
    report = "\n".join(fig.notes)
    assert fig.tried >= 15 and fig.failed == 0 and fig.held == fig.tried, report
    assert json.dumps(fig.as_tuple())


@pytest.mark.sweep
def test_sandbox_sample_fails_resumes_and_ends_honestly() -> None:
    fig = fr.sandbox_fail_then_resume(True)
    report = "\n".join(fig.notes)
    assert fig.tried >= 2 and fig.failed == 0 and fig.held == fig.tried, report
    left = processes_with("rel-sandbox-fail-")        # every sandbox stopped, no engine process left behind
    assert not left, left


def test_both_figures_are_in_the_sweep_beside_their_kin(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from reliability import suite
    from reliability.__main__ import main

    figures = suite.FIGURES
    assert figures[figures.index(suite.crash_points) + 1] is fr.fail_then_resume
    assert figures[figures.index(sk.sandbox_kills) - 1] is fr.sandbox_fail_then_resume
    ran: list[str] = []

    def fake(fn):
        def figure(short: bool) -> fr.Figure:
            ran.append(fn.__name__)
            return fr.Figure(fn.__name__.replace("_", " "), tried=1, held=1)
        figure.__name__ = fn.__name__
        return figure

    monkeypatch.setattr(suite, "FIGURES", [fake(fn) for fn in figures])
    assert main(["--only", "fail_then_resume"]) == 0
    assert ran == ["fail_then_resume", "sandbox_fail_then_resume"]
    assert "sandbox fail then resume" in capsys.readouterr().out
