"""Protected environments, forced and secret resumes and abandon, through the command line.

(The answers file, --yes and parking are proved in process: tests/core/test_answers_and_gates.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook.errors import Parked
from runbook.prompts import AnswersPrompter, Chain, Prompt, ScriptedPrompter, ScriptError, YesPrompter

from helpers import copy_project, invoke, write_answers


@pytest.fixture
def proj(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = copy_project("runtime", tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    return root, tmp_path / "home", work


def records(home: Path) -> list[dict]:
    run = sorted((home / "runs").iterdir())[-1]
    return [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]


def test_chain_order_and_parking() -> None:
    confirm = Prompt("s.confirm", "confirm", "Go?")
    link = Prompt("s.link", "manual", "Link it", evidence="link")
    chain = Chain([AnswersPrompter({"s.confirm": False}), YesPrompter()])
    assert chain.ask(confirm) == ({"done": False}, "answers-file")     # the answers file wins over --yes
    with pytest.raises(Parked, match="needs a person: s.link"):
        chain.ask(link)                                                 # --yes never supplies evidence
    with pytest.raises(ScriptError, match="unscripted prompt 's.link'"):
        Chain([], ScriptedPrompter({})).ask(link)


def test_protected_environment(proj: tuple[Path, Path, Path]) -> None:
    root, home, work = proj
    yes = invoke("runbook", "effects", "--env", "prod-like", "--param", f"dir={work}", "--yes", root=root, home=home)
    assert yes.returncode == 2 and "--yes is refused on protected environment 'prod-like'" in yes.stderr
    gate = invoke("runbook", "gates", "--env", "prod-like", root=root, home=home)
    assert gate.returncode == 2 and "prompt approvals are refused on protected environment" in gate.stderr
    untyped = invoke("runbook", "effects", "--env", "prod-like", "--param", f"dir={work}", root=root, home=home)
    assert untyped.returncode == 2 and "needs its name typed" in untyped.stderr
    assert not home.exists()
    wrong = write_answers(home.parent / "w.yaml", "effects", {"run.environment": {"choice": "production"}})
    bad = invoke("runbook", "effects", "--env", "prod-like", "--param", f"dir={work}", "--answers", str(wrong),
                 root=root, home=home)
    assert bad.returncode == 1 and "typed 'production', not 'prod-like'" in bad.stderr
    right = write_answers(home.parent / "r.yaml", "effects", {"run.environment": {"choice": "prod-like"}})
    ok = invoke("runbook", "effects", "--env", "prod-like", "--param", f"dir={work}", "--answers", str(right),
                root=root, home=home)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_changed_plan_refuses_resume_unless_forced_with_a_reason(proj: tuple[Path, Path, Path]) -> None:
    root, home, work = proj
    crashed = invoke("runbook", "effects", "--param", f"dir={work}", root=root, home=home,
                     env={"RUNBOOK_CRASH_AT": "plain.write:before-intent"})
    assert crashed.returncode == -9
    rb = root / "runbooks" / "effects.yaml"
    rb.write_text(rb.read_text().replace("title: A final check", "title: A final check (edited)"))
    refused = invoke("runbook", "effects", "--resume", root=root, home=home)
    assert refused.returncode == 2 and "the plan changed since run" in refused.stderr
    answers = write_answers(home.parent / "f.yaml", "effects", {"run.force": {"reason": "typo fix in a title"}})
    forced = invoke("runbook", "effects", "--resume", "--answers", str(answers), root=root, home=home)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert any(r["type"] == "run.forced" and r["data"]["reason"] == "typo fix in a title" for r in records(home))


def test_secret_parameter_is_asked_again_and_checked_on_resume(proj: tuple[Path, Path, Path]) -> None:
    root, home, work = proj
    token = "correct-horse-battery"
    crashed = invoke("runbook", "secretive", "--param", f"dir={work}", root=root, home=home,
                     env={"RUNBOOK_PARAM_TOKEN": token, "RUNBOOK_CRASH_AT": "write.write:after-intent"})
    assert crashed.returncode == -9
    missing = invoke("runbook", "secretive", "--resume", root=root, home=home)
    assert missing.returncode == 2 and "parameter 'token' is needed and nobody can be asked" in missing.stderr
    wrong = invoke("runbook", "secretive", "--resume", root=root, home=home, env={"RUNBOOK_PARAM_TOKEN": "wrong-one-xx"})
    assert wrong.returncode == 2 and "not the value the run started with" in wrong.stderr
    right = invoke("runbook", "secretive", "--resume", root=root, home=home, env={"RUNBOOK_PARAM_TOKEN": token})
    assert right.returncode == 0, right.stdout + right.stderr
    assert (work / "secretive.txt").read_text() == "done\n"
    assert token not in "".join(p.read_text() for p in home.rglob("*.jsonl"))


def test_abandon_closes_a_run_and_frees_its_lock(proj: tuple[Path, Path, Path]) -> None:
    root, home, work = proj
    crashed = invoke("runbook", "effects", "--param", f"dir={work}", root=root, home=home,
                     env={"RUNBOOK_CRASH_AT": "plain.write:after-intent"})
    assert crashed.returncode == -9
    status = invoke("runbook.status", root=root, home=home).stdout
    assert "interrupted" in status and "STALE" in status
    run_id = sorted((home / "runs").iterdir())[0].name
    no_reason = invoke("runbook.abandon", run_id[:12], root=root, home=home)
    assert no_reason.returncode == 2
    done = invoke("runbook.abandon", run_id[:12], "--reason", "superseded by a new release", root=root, home=home)
    assert done.returncode == 0, done.stderr
    assert invoke("runbook.status", root=root, home=home).stdout.startswith("No unfinished runs and no locks held")
    assert records(home)[-1]["type"] == "run.abandoned"
    again = invoke("runbook.resume", "--run-id", run_id, root=root, home=home)
    assert again.returncode == 2 and "has abandoned" in again.stderr
    assert invoke("audit.verify", root=root, home=home).returncode == 0
