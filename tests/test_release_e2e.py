"""The deploy guide's runbooks, end to end in the sandbox, non-interactive (and once in a terminal)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pexpect
import pytest

from runbook import git as g
from runbook.sandbox import control

from helpers import REPO, app_version, finished, invoke, results, spawn, wait_for
from recorded import clone_home, journals, run

pytestmark = pytest.mark.sandbox          # the slow tier: `python -m pytest -q -m slow` (or -m sandbox)

ANSWERS = REPO / "answers" / "sandbox"


@pytest.fixture
def home(tmp_path: Path):
    home = tmp_path / "home"
    yield home
    control.down(home)


def service_revision(home: Path) -> str:
    import boto3

    state = control.read_state(home)
    assert state is not None
    ecs = boto3.client("ecs", endpoint_url=state["aws"]["endpoint_url"], region_name="us-west-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    return ecs.describe_services(cluster="production", services=["menotime-api"])["services"][0][
        "taskDefinition"].rsplit("/", 1)[-1]


def test_every_runbook_and_environment_validates_and_show_lists_prompt_ids(home: Path) -> None:
    assert run(home, "runbook.validate").returncode == 0
    shown = run(home, "runbook.show", "production-release", "--env", "sandbox")
    assert shown.returncode == 0
    for pid in ("prerequisites.staging-tested", "approvals.approval", "merge.confirm", "monitoring.window.on_fail",
                "run.on_failure", "run.on_failure/rollback.confirm", "run.force"):
        assert f"    {pid}  (" in shown.stdout
    assert not (home / "sandbox").exists()          # show never starts the sandbox
    dry = run(home, "runbook", "production-release", "--env", "sandbox", "--param", "version=v1.2.0", "--dry-run")
    assert dry.returncode == 0 and not (home / "sandbox").exists()


def test_healthy_release_end_to_end(healthy_release: dict[str, Any]) -> None:
    home = healthy_release["home"]
    assert app_version(home) == "v1.2.0"
    records = healthy_release["journals"]["production-release"]
    steps = finished(records)
    skipped = {"back-merge.conflict", "back-merge.pull-request"}     # by their conditions: clean, no review needed
    assert {s for s, status in steps.items() if status == "skipped"} == skipped, steps
    assert all(status == "succeeded" for s, status in steps.items() if s not in skipped), steps
    found = results(records)
    assert found["record-live.live"]["outputs"]["family_revision"] == "menotime-api-prod:2"
    assert found["deploy-wait.current"]["outputs"]["family_revision"] == "menotime-api-prod:4"
    assert found["approvals.approval"]["outputs"]["count"] == 3
    assert found["merge.merge"]["outputs"]["head_sha"] == found["approvals.approval"]["outputs"]["head_sha"]
    run_id = records[0]["run"]
    shown = run(home, "audit.show", run_id[:18])
    assert shown.returncode == 0
    for step, status in steps.items():
        assert f" [{step}]: {status}  " in shown.stdout or f"    {step}: {status}  " in shown.stdout, step  # title [id]
    for line in (r"ok +pytest \(shell\.check\)", r"ok +live \(aws\.ecs_current_task_definition\)",
                 r"ok +approval \(approval\.github-pr\)", r"journal: chain verified"):
        assert re.search(line, shown.stdout), line
    assert found["mergeable.mergeable"]["outputs"]["state"] == "clean"
    state = control.read_state(home)
    remote = state["git"]["remote"]
    assert g.git(["merge-base", "--is-ancestor", "refs/tags/v1.2.0", "refs/heads/develop"], remote,
                 check=False).code == 0                                  # main's release commit reached develop
    assert run(home, "audit.verify").returncode == 0


def test_bad_release_is_rolled_back_to_what_was_live_before(bad_release: dict[str, Any], tmp_path: Path) -> None:
    home, runs = bad_release["home"], bad_release["journals"]
    release, rollback = runs["production-release"], runs["rollback-fast"]
    assert finished(release)["verification.endpoints"] == "failed"
    offer = next(r for r in release if r["type"] == "run.offer")
    assert offer["data"]["accepted"] is True
    assert rollback[0]["data"]["parent"] == {"run": release[0]["run"], "step": "run.on_failure"}
    found = results(rollback)
    # the target is what the release recorded as live before its merge: :2, not "current minus one" (:3, never deployed)
    assert found["target.find"]["outputs"]["family_revision"] == "menotime-api-prod:2"
    assert found["target.find"]["outputs"]["current_family_revision"] == "menotime-api-prod:4"
    assert found["rollback.update"]["outputs"]["family_revision"] == "menotime-api-prod:2"
    assert rollback[-1]["type"] == "run.succeeded", finished(rollback)
    # the revert landed through its pull request, and its deploy was verified
    assert found["revert-merge.merge"]["outputs"]["merge_sha"]
    assert finished(rollback)["reverify.metrics"] == "succeeded"
    assert app_version(home) == "v1.1.0"
    state = control.read_state(home)
    main = g.out(["show", "refs/heads/main:pyproject.toml"], state["git"]["remote"])
    assert 'version = "1.1.0"' in main
    issue = results(runs["post-rollback"])["issue.open"]
    assert issue["passed"] and issue["outputs"]["number"]
    verified = run(home, "audit.verify")
    assert verified.returncode == 0 and "ok: 3 run(s)" in verified.stdout
    # the release ends rolled-back: final, its lock released, nothing stale, and the next release starts
    assert release[-1]["type"] == "run.rolled-back" and release[-1]["data"]["by_run"] == rollback[0]["run"]
    listed = json.loads(run(home, "audit.list", "--json").stdout)
    assert {r["runbook"]: r["status"] for r in listed} == {
        "production-release": "rolled-back", "rollback-fast": "succeeded", "post-rollback": "succeeded"}
    assert run(home, "runbook.status").stdout.strip() == "No unfinished runs and no locks held."
    again = run(home, "runbook.resume", "--run-id", release[0]["run"])
    assert again.returncode == 2 and "rolled-back; there is nothing to resume" in again.stderr
    after = clone_home(bad_release, tmp_path / "after")                 # the recording stays as it was
    nxt = run(after, "runbook", "production-release", "--env", "sandbox", "--param", "version=v1.2.1",
              "--non-interactive", scenario="bad-release")
    assert nxt.returncode == 4, nxt.stdout[-2000:] + nxt.stderr        # started (no abandon, no unlock): it parks
    assert "needs a person" in nxt.stdout                               # at the first checklist, as any release


def test_rollback_immediate_during_a_slow_rollout(home: Path) -> None:
    release = spawn("runbook", "production-release", "--env", "sandbox", "--answers",
                    str(ANSWERS / "production-release.yaml"), "--non-interactive", root=REPO, home=home,
                    env={"RUNBOOK_SANDBOX_SCENARIO": "slow-rollout"})
    try:
        def rolling() -> bool:
            runs = home / "runs"
            if not runs.exists():
                return False
            return any('"step":"deploy-wait","item":"current"' in (f / "journal.jsonl").read_text()
                       for f in runs.iterdir())
        wait_for(rolling, timeout=300, interval=0.2)
        assert service_revision(home) == "menotime-api-prod:4"
        stopped = run(home, "runbook", "rollback-immediate", "--env", "sandbox", "--answers",
                      str(ANSWERS / "rollback-immediate.yaml"), "--non-interactive", scenario="slow-rollout")
        assert stopped.returncode == 0, stopped.stdout[-3000:] + stopped.stderr
        out, err = release.communicate(timeout=120)
    finally:
        if release.poll() is None:
            release.kill()
            release.communicate()
    assert release.returncode == 3, out[-2000:] + err        # the release was fenced by the takeover
    assert "no longer holds lock 'sandbox'" in err
    runs = journals(home)
    fenced, immediate = runs["production-release"], runs["rollback-immediate"]
    taken = next(r["time"] for r in immediate if r["type"] == "lock.takeover")
    # it noticed within a heartbeat: nothing after the takeover but the record closing it
    assert [r["type"] for r in fenced if r["time"] > taken] == ["run.rolled-back"]
    assert fenced[-1]["data"]["by_run"] == immediate[0]["run"]
    listed = json.loads(run(home, "audit.list", "--json").stdout)
    assert {r["runbook"]: r["status"] for r in listed} == {"production-release": "rolled-back",
                                                           "rollback-immediate": "succeeded"}
    assert run(home, "runbook.status").stdout.strip() == "No unfinished runs and no locks held."
    assert service_revision(home) == "menotime-api-prod:2"
    assert app_version(home) == "v1.1.0"
    found = results(journals(home)["rollback-immediate"])
    assert found["rollback.update"]["outputs"]["family_revision"] == "menotime-api-prod:2"
    assert "desired_count" not in json.dumps(found["rollback.update"]["outputs"])


def test_hotfix_end_to_end(home: Path, tmp_path: Path) -> None:
    state = control.up(home)
    work = tmp_path / "dev"
    g.git(["clone", "--quiet", "--branch", "main", state["git"]["remote"], str(work)])
    g.git(["checkout", "--quiet", "-b", "hotfix/patients-limit"], work)
    main_py = work / "app" / "main.py"
    main_py.write_text(main_py.read_text().replace("min(limit, 100)", "min(limit, 50)"))
    g.git(["commit", "--quiet", "-am", "hotfix: cap the patients page at 50"], work,
          env=g.identity_env("Dev", "dev@menotime.example"))
    g.git(["push", "--quiet", "origin", "hotfix/patients-limit"], work)
    result = run(home, "runbook", "hotfix", "--env", "sandbox", "--param", "name=patients-limit", "--param",
                 "version=v1.1.1", "--answers", str(ANSWERS / "hotfix.yaml"), "--non-interactive")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert app_version(home) == "v1.1.1"
    remote = state["git"]["remote"]
    assert g.rev(remote, "refs/tags/v1.1.1")
    assert g.rev(remote, "refs/heads/hotfix/patients-limit") is None          # deleted on origin
    develop = g.out(["show", "refs/heads/develop:app/main.py"], remote)
    assert "min(limit, 50)" in develop                                        # merged back to develop
    found = results(journals(home)["hotfix"])
    assert found["label.label"]["outputs"]["label"] == "hotfix"


def test_stale_approval_is_refused_at_the_merge(home: Path) -> None:
    result = run(home, "runbook", "production-release", "--env", "sandbox", "--answers",
                 str(ANSWERS / "production-release.yaml"), "--non-interactive", scenario="stale-approval")
    assert result.returncode in (1, 4), result.stdout[-3000:]
    records = journals(home)["production-release"]
    merge = results(records).get("merge.merge")
    assert merge is not None and not merge["passed"]
    assert "approved" in merge["summary"] and "head" in merge["summary"]
    assert not any(r["type"] == "run.offer" for r in records)              # nothing merged: nothing to roll back
    state = control.read_state(home)
    assert g.rev(state["git"]["remote"], "refs/tags/v1.2.0") is None
    assert app_version(home) == "v1.1.0"


def answer_release_prompts(child: pexpect.spawn) -> None:
    """What a person types through a release of v1.2.0 in the sandbox, up to the merge."""
    child.expect("Release version")
    child.expect("v1.2.0")              # the next version from the CHANGELOG, offered
    child.send("\r")
    child.expect("Park the run for the monitoring window")     # a defaulted parameter is offered too
    child.send("\r")                    # Enter keeps the default (watch the window)
    child.expect("Tick what is done")
    for _ in range(4):
        child.send(" ")
        child.send("\x1b[B")
    child.send("\r")
    for answer in ("develop tested in staging", "https://dash.example.invalid/staging", "migrations tested on a clone"):
        child.expect(r"(Note|Link \(https://\.\.\. or s3://\.\.\.\)) for")
        child.send(answer + "\r")
    child.expect(r"Done: The critical endpoints.*\(Y/n\)")
    child.send("y\r")                  # a yes/no takes its answer and Enter
    child.expect("Note for")
    child.send("health, login, patients ok\r")
    child.expect(r"Merge release/v1.2.0 into main.*\(y/N\)")
    child.send("y\r")


def test_one_release_in_a_real_terminal(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update({"RUNBOOK_HOME": str(home), "RUNBOOK_OPERATOR": "release@menotime.example", "TERM": "xterm",
                "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1"})
    child = pexpect.spawn(sys.executable, ["-m", "invoke", "runbook", "production-release", "--env", "sandbox"],
                          cwd=str(REPO), env=env, encoding="utf-8", timeout=180, dimensions=(50, 200))
    try:
        answer_release_prompts(child)
        child.expect("succeeded", timeout=300)
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert app_version(home) == "v1.2.0"


def test_on_call_takes_over_a_failed_release_and_rolls_back(home: Path, tmp_path: Path) -> None:
    import yaml

    answers = yaml.safe_load((ANSWERS / "production-release.yaml").read_text())
    answers["answers"].pop("run.on_failure")            # nobody accepts the rollback offer: the release just fails
    release_answers = tmp_path / "release.yaml"
    release_answers.write_text(yaml.safe_dump(answers))
    release = run(home, "runbook", "production-release", "--env", "sandbox", "--answers", str(release_answers),
                  "--non-interactive", scenario="bad-release")
    assert release.returncode == 1
    assert app_version(home) == "v1.2.0"                 # the bad version still serves
    refused = run(home, "runbook", "production-release", "--env", "sandbox", "--param", "version=v1.2.1",
                  "--non-interactive", scenario="bad-release")
    assert refused.returncode == 3 and "is stale" in refused.stderr   # the failed release still holds production
    oncall = run(home, "runbook", "on-call-incident", "--env", "sandbox", "--param", "summary=API answers 500",
                 "--answers", str(ANSWERS / "on-call-incident.yaml"), "--non-interactive", scenario="bad-release")
    assert oncall.returncode == 0, oncall.stdout[-3000:] + oncall.stderr
    runs = journals(home)
    incident, rollback = runs["on-call-incident"], runs["rollback-fast"]
    assert any(r["type"] == "lock.takeover" for r in incident)
    assessed = {k: (v["passed"], v["summary"]) for k, v in results(incident).items() if k.startswith("assess.")}
    log = (home / "sandbox" / "server.log")
    if finished(incident)["assess"] != "failed":            # shown by pytest when the assertion below fails
        print(json.dumps(assessed, indent=1), json.dumps(results(incident)["assess.error-rate"], indent=1),
              log.read_text() if log.exists() else "", sep="\n")
    assert finished(incident)["assess"] == "failed"
    # recorded, tolerated (on_failure: continue)
    severity = results(incident)["assess.severity"]                  # and still asked after the failing check
    assert severity["passed"] and "SEV2" in severity["outputs"]["note"]
    release_after = journals(home)["production-release"]
    assert release_after[-1]["type"] == "run.rolled-back"            # the taken-over release is closed
    assert release_after[-1]["data"]["by_run"] == incident[0]["run"]
    errors = results(incident)["logs.errors"]
    assert errors["evidence"]["excerpts"] and "v1.2.0" in json.dumps(errors["evidence"]["excerpts"])
    assert rollback[0]["data"]["parent"]["run"] == incident[0]["run"]
    assert results(rollback)["target.find"]["outputs"]["family_revision"] == "menotime-api-prod:2"
    assert app_version(home) == "v1.1.0"
    assert run(home, "audit.verify").returncode == 0


def test_monitoring_window_parks_and_resumes(home: Path) -> None:
    first = run(home, "runbook", "production-release", "--env", "sandbox", "--param", "monitor_park=true",
                "--answers", str(ANSWERS / "production-release.yaml"), "--non-interactive")
    assert first.returncode == 4, first.stdout[-2000:]
    assert "monitoring window open for" in first.stdout and "parked" in first.stdout
    records = journals(home)["production-release"]
    opened = next(r["time"] for r in records if r["type"] == "step.started" and r["data"]["step"] == "monitoring")
    window = results(records)["monitoring.window"]["evidence"]["window_s"]            # the sandbox's window: 20 s
    closes = datetime.strptime(opened, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp() + window
    wait_for(lambda: time.time() > closes + 0.5, timeout=120)                          # the window, as recorded, has passed
    second = run(home, "runbook", "production-release", "--env", "sandbox", "--resume", "--answers",
                 str(ANSWERS / "production-release.yaml"), "--non-interactive")
    assert second.returncode == 0, second.stdout[-2000:]
    records = journals(home)["production-release"]
    assert [r["type"] for r in records].count("run.parked") == 1
    assert results(records)["monitoring.window"]["passed"]


def _screen(text: str) -> str:
    """What the operator saw, without terminal control sequences."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return "\n".join(line.rstrip() for line in text.replace("\r", "").splitlines() if line.strip())


def test_ctrl_c_during_the_pipeline_wait_then_resume_with_the_printed_command(home: Path) -> None:
    """A person at a terminal releases, presses Ctrl-C while the pipeline deploys, and resumes with the
    command the engine printed, typed exactly as printed; the screen shows the prompts and the progress."""
    import re
    import shlex

    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update({"RUNBOOK_HOME": str(home), "RUNBOOK_OPERATOR": "release@menotime.example", "TERM": "xterm",
                "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1", "RUNBOOK_SANDBOX_SCENARIO": "slow-rollout"})
    import io

    child = pexpect.spawn(sys.executable, ["-m", "invoke", "runbook", "production-release", "--env", "sandbox"],
                          cwd=str(REPO), env=env, encoding="utf-8", timeout=180, dimensions=(50, 200))
    child.logfile_read = transcript = io.StringIO()
    try:
        answer_release_prompts(child)
        child.expect("> deploy-wait", timeout=300)         # the pipeline deploys: the rollout is slow
        child.expect(r"s left", timeout=120)               # the rollout wait shows its progress: it is waiting
        child.sendcontrol("c")
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130
    first = _screen(transcript.getvalue())
    printed = re.search(r"resume:\s+(invoke runbook\.resume --run-id \S+)", first)
    assert printed, first[-2000:]
    argv = shlex.split(printed.group(1))
    again = pexpect.spawn(sys.executable, ["-m", *argv], cwd=str(REPO), env=env, encoding="utf-8", timeout=300,
                          dimensions=(50, 200))
    again.logfile_read = resumed = io.StringIO()
    try:
        again.expect("Resuming run")
        again.expect("succeeded", timeout=400)
        again.expect(pexpect.EOF, timeout=60)
    finally:
        again.close(force=True)
    second = _screen(resumed.getvalue())
    assert again.exitstatus == 0
    assert "> deploy-wait" in second and "stable on menotime-api-prod:4" in second
    assert app_version(home) == "v1.2.0"
    if os.environ.get("RUNBOOK_TEST_SCREEN"):            # the README's screen capture comes from here
        Path(os.environ["RUNBOOK_TEST_SCREEN"]).write_text(first + "\n--- resumed ---\n" + second + "\n")


def test_an_old_version_is_refused_before_the_prerequisites(home: Path) -> None:
    """The version's own check (newer than the last release tag, read from the remote) runs before
    anything else: exit 2, no run, nobody asked."""
    old = run(home, "runbook", "production-release", "--env", "sandbox", "--param", "version=v1.1.0",
              "--non-interactive")
    assert old.returncode == 2, old.stdout + old.stderr
    assert "version=v1.1.0: v1.1.0 is not greater than the latest release v1.1.0" in old.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    bad = run(home, "runbook", "production-release", "--env", "sandbox", "--param", "version=1.2",
              "--non-interactive")
    assert bad.returncode == 2 and "expected a version like v1.2.0" in bad.stderr
