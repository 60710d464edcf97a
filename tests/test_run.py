"""Running runbooks for real: answers files, linked runs, evidence, the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import Server, copy_project, invoke, write_answers


@pytest.fixture
def server():
    srv = Server({"/health": (200, {"status": "healthy"})})
    yield srv
    srv.close()


def test_full_feature_runbook_succeeds_from_an_answers_file(tmp_path: Path, server: Server) -> None:
    root = copy_project("project", tmp_path, server.url)
    home = tmp_path / "home"
    answers = write_answers(tmp_path / "answers.yaml", "full-feature", {
        "prepare.ready": {"done": True, "note": "staging green since Monday"},
        "branch.confirm": True,
        "branch.bump": {"done": True, "link": "https://example.invalid/pr/1"},
        "approve.approval": {"approvers": ["alice", "bob"]},
    }, params={"version": "v1.2.3"})
    result = invoke("runbook", "full-feature", "--env", "test", "--answers", str(answers), "--non-interactive",
                    root=root, home=home, env={"RUNBOOK_PARAM_TOKEN": "tok-123456"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "succeeded" in result.stdout
    assert "/health" in server.hits
    runs = sorted((home / "runs").iterdir())
    assert len(runs) == 2   # the run and its linked child
    parent = [json.loads(line) for line in (runs[0] / "journal.jsonl").read_text().splitlines()]
    types = [r["type"] for r in parent]
    assert types[0] == "run.started" and types[-1] == "run.succeeded"
    results = {(r["data"]["step"], r["data"]["item"]): r["data"] for r in parent if r["type"] == "item.result"}
    assert results[("verification.health", "status")]["evidence"]["status"] == 200
    assert results[("prepare", "ready")]["outputs"]["note"] == "staging green since Monday"
    assert results[("approve", "approval")]["outputs"]["approvers"] == ["alice", "bob"]
    child_started = next(r for r in parent if r["type"] == "child.started")
    child = [json.loads(line) for line in (runs[1] / "journal.jsonl").read_text().splitlines()]
    assert child[0]["data"]["parent"] == {"run": parent[0]["run"], "step": "child"}
    assert child_started["data"]["run"] == child[0]["run"]
    assert any("child of " + parent[0]["run"] in json.dumps(r) for r in child)
    verified = invoke("audit.verify", root=root, home=home)
    assert verified.returncode == 0, verified.stdout
    assert "ok: 2 run(s)" in verified.stdout


def test_resolved_arguments_are_checked_against_the_plugin_schema(tmp_path: Path) -> None:
    root = copy_project("runtime", tmp_path)
    home = tmp_path / "home"
    result = invoke("runbook", "leaky", "--param", "url=ftp://files.example.invalid/x", root=root, home=home,
                    env={"RUNBOOK_PARAM_TOKEN": "tok-123456789"})
    assert result.returncode == 1
    assert "http.request: argument url: 'ftp://files.example.invalid/x' does not match '^https?://'" in result.stdout
