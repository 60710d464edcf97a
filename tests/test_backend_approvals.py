"""runbook.approve on the team backend: a second principal approves, the operator cannot, a change voids it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, invoke
from test_backend_aws import project
from test_backend_contract import AWS_KEYS, endpoint, team_env

APPROVE_SCRIPT = """
import json, sys
from pathlib import Path
from runbook.backends import open_store
from runbook.backends.approvals import approve
from runbook.errors import RunbookError
store = open_store(json.loads(sys.argv[1]), Path(sys.argv[2]))
try:
    sys.stdout.write(json.dumps(approve(store, sys.argv[3]).__dict__))
except RunbookError as exc:
    sys.stdout.write("refused: " + str(exc))
"""


def second_principal(endpoint: str) -> dict[str, str]:
    """Access keys of another IAM user (moto answers get_caller_identity with its ARN)."""
    from runbook.standins.menotime import loopback_client

    iam = loopback_client(endpoint, "iam")
    name = "approver-" + str(len(iam.list_users()["Users"]))
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-west-1"}


def approve_as(keys: dict[str, str], env: dict[str, Any], home: Path, run_id: str) -> str:
    import os

    done = subprocess.run([sys.executable, "-c", APPROVE_SCRIPT, json.dumps(env), str(home), run_id], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ, **keys}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_second_principal_approves_operator_refused_change_voids(tmp_path: Path) -> None:
    from runbook.backends import open_store
    from runbook.backends.approvals import binding, valid_approvals

    env = team_env(endpoint())
    root = project(tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    parked = invoke("runbook", "gated", "--env", "team", "--param", f"dir={work}", "--non-interactive", root=root,
                    home=tmp_path / "operator", env=AWS_KEYS)
    assert parked.returncode == 4, parked.stdout + parked.stderr
    store = open_store(env, tmp_path / "reviewer")
    [run_id] = store.run_ids()
    own = approve_as(AWS_KEYS, env, tmp_path / "operator", run_id[:20])
    assert own.startswith("refused: ") and "cannot approve it (separation of duties)" in own
    bob = second_principal(endpoint())
    approved = json.loads(approve_as(bob, env, tmp_path / "approver", run_id[:20]))
    assert ":iam::123456789012:user/approver-" in approved["approver"]
    digest, params, environment = binding(store.records(run_id))
    assert (approved["digest"], approved["params"], approved["environment"]) == (digest, params, "team")
    ok, void = valid_approvals(store, run_id, digest, params, environment)
    assert [a.approver for a in ok] == [approved["approver"]] and void == []
    ok, void = valid_approvals(store, run_id, digest, {**params, "version": "v2.0.0"}, environment)
    assert ok == [] and void == [f"{approved['approver']}: parameters changed since {approved['approver']} "
                                 "approved (version)"]
    ok, void = valid_approvals(store, run_id, "f" * 64, params, environment)
    assert ok == [] and "the plan changed" in void[0]
    assert any(r.get("type") == "run.approval" for r in store.ledger.records())


def test_approve_needs_the_team_backend(tmp_path: Path) -> None:
    from runbook.backends.approvals import approve
    from runbook.errors import UsageError
    from runbook.store import LocalStore

    with pytest.raises(UsageError, match="needs the team backend"):
        approve(LocalStore(tmp_path), "x")


def test_backend_doctor_reports_object_lock_missing() -> None:
    from runbook.backends import admin

    good = admin.doctor(team_env(endpoint()))
    assert good.ok, [str(f) for f in good.findings]
    assert {f.name for f in good.findings} == {"table", "versioning", "object lock", "dynamodb conditions",
                                               "s3 conditions", "iam"}
    plain = admin.doctor(team_env(endpoint(), object_lock=False))
    assert not plain.ok
    assert [f.name for f in plain.findings if not f.ok] == ["object lock"]
    nothing = {"kind": "aws", "bucket": "runbook-none", "table": "runbook-none"}
    missing = admin.doctor({**team_env(endpoint()), "backend": nothing})
    assert not missing.ok and "backend.init" in str(missing.findings[0])


def test_commands_init_doctor_verify_approve(tmp_path: Path) -> None:
    import io

    from runbook.backends import commands
    from runbook.errors import UsageError

    env = team_env(endpoint())
    root = project(tmp_path, env)
    out = io.StringIO()
    assert commands.backend_init(root, "team", out=out) == 0
    assert "table" in out.getvalue() and "exists" in out.getvalue()
    out = io.StringIO()
    assert commands.backend_doctor(root, "team", out=out) == 0, out.getvalue()
    assert out.getvalue().endswith("ok: the backend is ready\n")
    out = io.StringIO()
    assert commands.audit_verify(root, None, "team", out=out) == 0
    assert out.getvalue() == "ok: 0 run(s), 0 record(s) and the ledger verify\n"
    with pytest.raises(UsageError, match="--env is required"):
        commands.approve(root, "x", None)


def test_runbook_approve_opens_the_gate_end_to_end(tmp_path: Path) -> None:
    """Parked at a prompt gate; the operator's own approve is refused; a second principal's opens it on resume."""
    env = team_env(endpoint())
    root = project(tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    parked = invoke("runbook", "gated", "--env", "team", "--param", f"dir={work}", "--non-interactive", root=root,
                    home=tmp_path / "operator", env=AWS_KEYS)
    assert parked.returncode == 4, parked.stdout + parked.stderr
    from runbook.backends import open_store

    [run_id] = open_store(env, tmp_path / "look").run_ids()
    own = invoke("runbook.approve", run_id[:22], "--env", "team", root=root, home=tmp_path / "operator", env=AWS_KEYS)
    assert own.returncode != 0 and "separation of duties" in own.stderr
    bob = second_principal(endpoint())
    given = invoke("runbook.approve", run_id[:22], "--env", "team", root=root, home=tmp_path / "bob", env=bob)
    assert given.returncode == 0, given.stdout + given.stderr
    resumed = invoke("runbook", "gated", "--env", "team", "--resume", "--non-interactive", root=root,
                     home=tmp_path / "operator", env=AWS_KEYS)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(AWS principals, runbook.approve)" in resumed.stdout
    records = open_store(env, tmp_path / "look2").records(run_id)
    gate = next(r for r in records if r["type"] == "item.result" and r["data"]["item"] == "approval")
    assert gate["data"]["verified"] is True and ":user/approver-" in gate["data"]["outputs"]["approvers"][0]
