"""A prompt approval on a protected environment: the refusal names the way that works without
GitHub (the team backend and `invoke runbook.approve`), with commands that parse as printed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from helpers import copy_project, invoke
from runbook.approvals import run_gate
from runbook.errors import Parked
from runbook.steps import Step

COMMAND = re.compile(r"`(invoke [^`]+)`")


def test_prompt_approval_on_a_protected_environment_names_the_team_backend_way(tmp_path: Path) -> None:
    root, home = copy_project("runtime", tmp_path), tmp_path / "home"
    result = invoke("runbook", "gates", "--env", "prod-like", root=root, home=home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"{root / 'runbooks' / 'gates.yaml'}: prompt approvals are refused on protected environment 'prod-like' "
        "(steps approve): a name typed at a prompt proves nothing. Use a github-pr approval, or, for teams without "
        "GitHub, the team backend: add `backend: {kind: aws, bucket: ..., table: ..., region: ...}` to "
        "environments/prod-like.yaml, run `invoke backend.init --env prod-like` once, and start the run again; it "
        "parks at the gate and each approver runs `invoke runbook.approve RUN_ID --env prod-like` (the run id the "
        "parked run prints) under their own AWS identity, then the operator resumes it")
    assert not home.exists()
    # each command printed parses as printed (the task exists, its flags and positional run id are right): what
    # stops it here is the missing team backend, never invoke's parser
    commands = COMMAND.findall(result.stderr)
    assert [c.split()[1] for c in commands] == ["backend.init", "runbook.approve"]
    for command in commands:
        ran = invoke(*shlex.split(command)[1:], root=root, home=home)
        assert ran.returncode == 2, (command, ran.stdout + ran.stderr)
        assert "team backend" in ran.stderr and "did not receive" not in ran.stderr and "No idea" not in ran.stderr


class _Store:
    def __init__(self, verifies: bool):
        self.verifies_approvals = verifies

    def verified_approvals(self, *args: Any) -> tuple[list[Any], list[str]]:
        return [], []


def _runner(verifies: bool) -> Any:
    env = SimpleNamespace(name="prod-like", protected=True, data={})
    plan = SimpleNamespace(env=env, digest="d", params=SimpleNamespace(public=lambda: {}), name="gates")
    return SimpleNamespace(plan=plan, store=_Store(verifies), run_id="01J0RUNID0000", operator="op",
                           resolve=lambda value, sid: value)


STEP = Step.of({"id": "approve", "title": "Approve", "approval": {"source": "prompt", "min": 1}})


def test_protected_gate_on_the_team_backend_parks_with_the_exact_approve_and_resume_commands() -> None:
    with pytest.raises(Parked) as parked:
        run_gate(_runner(verifies=True), STEP)
    assert str(parked.value) == (
        "prompt approvals are refused on protected environment 'prod-like': the gate opens on approvals recorded "
        "with runbook.approve; each approver runs `invoke runbook.approve 01J0RUNID0000 --env prod-like` under "
        "their own AWS identity, then `invoke runbook.resume --run-id 01J0RUNID0000 --env prod-like` continues the run")


def test_protected_gate_without_the_team_backend_fails_naming_it() -> None:
    failed = run_gate(_runner(verifies=False), STEP)             # the gate's result, a value
    assert failed.failed
    assert "the team backend: add `backend: {kind: aws" in failed.reason
    assert "`invoke runbook.approve RUN_ID --env prod-like`" in failed.reason
