"""Step features at run time, in process: continue, wait, retry, when, timeout and the runbook's on_failure.

(Moved from a subprocess per test: they prove the engine, not the command line; `invoke runbook`
itself is driven as a process by tests/test_run.py, tests/test_prompts.py and tests/test_outcomes_cli.py.)
"""

from __future__ import annotations

from pathlib import Path

from runbook import clock

from .harness import of_type, world


def finished(recs: list[dict]) -> dict[str, str]:
    return {r["data"]["step"]: r["data"]["status"] for r in recs if r["type"] == "step.finished"}


def reason(recs: list[dict], step: str) -> str:
    return of_type(recs, "step.finished", step=step)[0]["data"].get("reason", "")


def test_flow_without_failures(tmp_path: Path) -> None:
    w = world(tmp_path)
    with clock.installed(clock.VirtualClock()):          # the polls' 0.1 s intervals pass at once
        assert w.run("flow") == 0
    recs = w.records()
    assert finished(recs) == {"soft": "failed", "eventually": "succeeded", "retrying": "succeeded",
                              "early-fail": "skipped", "mark": "succeeded", "late-fail": "skipped",
                              "slow": "skipped"}
    assert (w.work / "polls").read_text() == "3"        # polled until it passed
    assert (w.work / "attempts").read_text() == "2"     # retried once
    assert "tolerated: expected 2, found 1 (on_failure: continue)" in reason(recs, "soft")
    assert not of_type(recs, "run.offer")


def test_failure_before_the_after_step_offers_nothing(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("flow", params={"fail_before": "true"}, answers={"run.on_failure": True}) == 1
    recs = w.records()
    assert "expected 'fine', found 'early'" in reason(recs, "early-fail")
    assert recs[-1]["type"] == "run.failed" and not of_type(recs, "run.offer")
    assert not (w.work / "cleanup.txt").exists()


def test_failure_after_the_after_step_offers_the_linked_runbook(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("flow", params={"fail_after": "true"}, answers={"run.on_failure": True}) == 1
    parent, child = w.runs()
    recs = w.records(parent)
    offer = of_type(recs, "run.offer")[0]
    assert offer["data"]["accepted"] is True and offer["data"]["runbook"] == "cleanup"
    assert (w.work / "cleanup.txt").read_text() == f"cleanup after {parent}\n"
    kid = w.records(child)
    assert kid[0]["data"]["parent"] == {"run": parent, "step": "run.on_failure"}
    assert kid[0]["data"]["lock"] == recs[0]["data"]["lock"]        # inherits the parent's lock
    assert kid[-1]["type"] == "run.succeeded"


def test_step_timeout(tmp_path: Path) -> None:
    w = world(tmp_path)
    assert w.run("flow", params={"slow": "true"}) == 1
    assert "step slow timed out after 1 s" in reason(w.records(), "slow")
