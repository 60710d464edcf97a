"""Step features at run time: continue, wait, retry, when, timeout and the runbook's on_failure."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import copy_project, invoke, write_answers


def records(home: Path, index: int = 0) -> list[dict]:
    run = sorted((home / "runs").iterdir())[index]
    return [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]


def finished(recs: list[dict]) -> dict[str, str]:
    return {r["data"]["step"]: r["data"]["status"] for r in recs if r["type"] == "step.finished"}


def test_flow_without_failures(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    result = invoke("runbook", "flow", "--param", f"dir={work}", root=root, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    recs = records(home)
    assert finished(recs) == {"soft": "failed", "eventually": "succeeded", "retrying": "succeeded",
                              "early-fail": "skipped", "mark": "succeeded", "late-fail": "skipped",
                              "slow": "skipped"}
    assert (work / "polls").read_text() == "3"        # polled until it passed
    assert (work / "attempts").read_text() == "2"     # retried once
    soft = next(r for r in recs if r["type"] == "step.finished" and r["data"]["step"] == "soft")
    assert "tolerated: expected 2, found 1 (on_failure: continue)" in soft["data"]["reason"]
    assert not any(r["type"] == "run.offer" for r in recs)


def test_failure_before_the_after_step_offers_nothing(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    answers = write_answers(tmp_path / "a.yaml", "flow", {"run.on_failure": True})
    result = invoke("runbook", "flow", "--param", f"dir={work}", "--param", "fail_before=true",
                    "--answers", str(answers), root=root, home=home)
    assert result.returncode == 1
    assert "expected 'fine', found 'early'" in result.stdout
    recs = records(home)
    assert recs[-1]["type"] == "run.failed" and not any(r["type"] == "run.offer" for r in recs)
    assert not (work / "cleanup.txt").exists()


def test_failure_after_the_after_step_offers_the_linked_runbook(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    answers = write_answers(tmp_path / "a.yaml", "flow", {"run.on_failure": True})
    result = invoke("runbook", "flow", "--param", f"dir={work}", "--param", "fail_after=true",
                    "--answers", str(answers), root=root, home=home)
    assert result.returncode == 1
    recs = records(home)
    run_id = recs[0]["run"]
    offer = next(r for r in recs if r["type"] == "run.offer")
    assert offer["data"]["accepted"] is True and offer["data"]["runbook"] == "cleanup"
    assert (work / "cleanup.txt").read_text() == f"cleanup after {run_id}\n"
    child = records(home, 1)
    assert child[0]["data"]["parent"] == {"run": run_id, "step": "run.on_failure"}
    assert child[0]["data"]["lock"] == recs[0]["data"]["lock"]        # inherits the parent's lock
    assert child[-1]["type"] == "run.succeeded"


def test_step_timeout(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    result = invoke("runbook", "flow", "--param", f"dir={work}", "--param", "slow=true", root=root, home=home)
    assert result.returncode == 1
    assert "step slow timed out after 1 s" in result.stdout
