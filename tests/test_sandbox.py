"""The sandbox: brought up in a temporary state home and driven the way the runbooks will."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runbook import git as g
from runbook.identity import alive
from runbook.sandbox import control

from helpers import REPO, invoke, wait_for

pytestmark = pytest.mark.sandbox          # the slow tier: `python -m pytest -q -m slow` (or -m sandbox)

ID = g.identity_env("Release Eng", "rel@example.com")


def client(state: dict[str, Any], service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=state["aws"]["endpoint_url"], region_name=state["aws"]["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def version(state: dict[str, Any]) -> str:
    with urllib.request.urlopen(state["app"]["base_url"] + "/health", timeout=5) as resp:
        return json.loads(resp.read())["version"]


def merge_release(state: dict[str, Any], work: Path, version_text: str) -> str:
    """Push a release branch and merge it through the stand-in with PyGithub, as the runbook does."""
    from github import Auth, Github

    g.git(["clone", "--quiet", "--branch", "develop", state["git"]["remote"], str(work)])
    (work / "pyproject.toml").write_text((work / "pyproject.toml").read_text().replace('version = "1.1.0"',
                                                                                      f'version = "{version_text}"'))
    g.git(["checkout", "--quiet", "-b", f"release/v{version_text}"], work)
    g.git(["commit", "--quiet", "-am", f"chore: prepare release v{version_text}"], work, env=ID)
    g.git(["push", "--quiet", "origin", f"release/v{version_text}"], work)
    gh = Github(base_url=state["github"]["base_url"], auth=Auth.Token("sandbox-operator-token"))
    repo = gh.get_repo(state["github"]["repo"])
    pr = repo.create_pull(base="main", head=f"release/v{version_text}", title=f"Release: v{version_text}", body="")
    for token in ("sandbox-eng-lead-token", "sandbox-devops-token"):
        Github(base_url=state["github"]["base_url"], auth=Auth.Token(token)).get_repo(
            state["github"]["repo"]).get_pull(pr.number).create_review(event="APPROVE")
    merged = pr.merge(merge_method="merge", sha=pr.head.sha)
    assert merged.merged
    return merged.sha


@pytest.fixture
def sandbox(tmp_path: Path):
    home = tmp_path / "home"
    yield home
    control.down(home)


def test_sandbox_world_release_through_the_pipeline(sandbox: Path, tmp_path: Path) -> None:
    state = control.up(sandbox)
    ecs = client(state, "ecs")
    service = ecs.describe_services(cluster="production", services=["menotime-api"])["services"][0]
    assert service["taskDefinition"].endswith("menotime-api-prod:2") and service["desiredCount"] == 3
    families = ecs.list_task_definitions(familyPrefix="menotime-api-prod")["taskDefinitionArns"]
    assert len(families) == 3                      # v1.0.0, v1.1.0 (live), v1.1.1-debug (never deployed)
    assert version(state) == "v1.1.0"
    sha = merge_release(state, tmp_path / "work", "1.2.0")
    wait_for(lambda: version(state) == "v1.2.0", timeout=60)
    service = ecs.describe_services(cluster="production", services=["menotime-api"])["services"][0]
    assert service["taskDefinition"].endswith("menotime-api-prod:4")   # registered by the pipeline
    runs = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{state['github']['base_url']}/repos/menotime/menotime-api/actions/runs?head_sha={sha}",
        headers={"Authorization": "token sandbox-operator-token"}), timeout=5).read())
    wait_for(lambda: True)
    assert runs["workflow_runs"] and runs["workflow_runs"][0]["head_sha"] == sha
    status = invoke("sandbox.status", root=REPO, home=sandbox)
    assert "serving v1.2.0" in status.stdout and "menotime-api-prod:4" in status.stdout
    # metrics and logs reach CloudWatch from the app's traffic
    cw = client(state, "cloudwatch")

    def requests_counted() -> bool:
        stats = cw.get_metric_statistics(Namespace="AWS/ApplicationELB", MetricName="RequestCount",
                                         Dimensions=_dims(state, client(state, "elbv2")), StartTime=time.time() - 600,
                                         EndTime=time.time() + 60, Period=60, Statistics=["Sum"])
        return sum(d["Sum"] for d in stats["Datapoints"]) > 0
    wait_for(requests_counted, timeout=30)


def _dims(state: dict[str, Any], elb: Any) -> list[dict[str, str]]:
    tg = elb.describe_target_groups(Names=["menotime-api-prod"])["TargetGroups"][0]
    lb_arn = tg["LoadBalancerArns"][0]
    return [{"Name": "TargetGroup", "Value": tg["TargetGroupArn"].split(":", 5)[5]},
            {"Name": "LoadBalancer", "Value": lb_arn.split(":", 5)[5].split("loadbalancer/", 1)[1]}]


def test_bad_release_produces_5xx_metrics_and_error_logs(sandbox: Path, tmp_path: Path) -> None:
    state = control.up(sandbox, "bad-release")
    merge_release(state, tmp_path / "work", "1.2.0")
    wait_for(lambda: version(state) == "v1.2.0", timeout=60)
    req = urllib.request.Request(state["app"]["base_url"] + "/api/v1/patients")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 500
    cw, logs = client(state, "cloudwatch"), client(state, "logs")

    def errors_counted() -> bool:
        stats = cw.get_metric_statistics(Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
                                         Dimensions=_dims(state, client(state, "elbv2")), StartTime=time.time() - 600,
                                         EndTime=time.time() + 60, Period=60, Statistics=["Sum"])
        return sum(d["Sum"] for d in stats["Datapoints"]) > 0
    wait_for(errors_counted, timeout=30)
    events = logs.filter_log_events(logGroupName="/ecs/menotime-api-production", filterPattern="ERROR")["events"]
    assert any("500" in e["message"] and "v1.2.0" in e["message"] for e in events)


def test_down_leaves_no_process_and_two_sandboxes_do_not_collide(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    try:
        up_a = invoke("sandbox.up", root=REPO, home=a)
        up_b = invoke("sandbox.up", "--scenario", "slow-rollout", root=REPO, home=b)
        assert up_a.returncode == 0 and up_b.returncode == 0, up_a.stderr + up_b.stderr
        sa, sb = control.read_state(a), control.read_state(b)
        assert sa and sb and sa["pid"] != sb["pid"]
        ports = {sa["aws"]["endpoint_url"], sa["app"]["base_url"], sa["github"]["base_url"],
                 sb["aws"]["endpoint_url"], sb["app"]["base_url"], sb["github"]["base_url"]}
        assert len(ports) == 6
        assert version(sa) == version(sb) == "v1.1.0"
    finally:
        down_a = invoke("sandbox.down", root=REPO, home=a)
        down_b = invoke("sandbox.down", root=REPO, home=b)
    assert down_a.returncode == 0 and down_b.returncode == 0
    assert not alive(sa["pid"]) and not alive(sb["pid"])
    assert "not running" in invoke("sandbox.status", root=REPO, home=a).stdout


def test_a_crashed_sandbox_is_reset(sandbox: Path) -> None:
    first = control.up(sandbox)
    os.kill(first["pid"], 9)
    control.reap(first["pid"])
    wait_for(lambda: not alive(first["pid"]))
    assert "crashed" in invoke("sandbox.status", root=REPO, home=sandbox).stdout
    second = control.up(sandbox)
    assert second["pid"] != first["pid"] and version(second) == "v1.1.0"


def test_sandbox_review_acts_as_a_reviewer(sandbox: Path, tmp_path: Path) -> None:
    from github import Auth, Github

    state = control.up(sandbox)
    work = tmp_path / "work"
    g.git(["clone", "--quiet", "--branch", "develop", state["git"]["remote"], str(work)])
    g.git(["checkout", "--quiet", "-b", "feature/x"], work)
    (work / "x.txt").write_text("x\n")
    g.git(["add", "x.txt"], work)
    g.git(["commit", "--quiet", "-m", "x"], work, env=ID)
    g.git(["push", "--quiet", "origin", "feature/x"], work)
    repo = Github(base_url=state["github"]["base_url"], auth=Auth.Token("sandbox-author-token")).get_repo(
        state["github"]["repo"])
    pr = repo.create_pull(base="develop", head="feature/x", title="x", body="")
    result = invoke("sandbox.review", str(pr.number), "--as", "security-reviewer", "--request-changes",
                    root=REPO, home=sandbox)
    assert result.returncode == 0, result.stderr
    assert f"PR #{pr.number}: CHANGES_REQUESTED by security-reviewer" in result.stdout
    reviews = [(r.user.login, r.state) for r in repo.get_pull(pr.number).get_reviews()]
    assert ("security-reviewer", "CHANGES_REQUESTED") in reviews
    unknown = invoke("sandbox.review", str(pr.number), "--as", "nobody", "--approve", root=REPO, home=sandbox)
    assert unknown.returncode == 2 and "no sandbox user 'nobody'" in unknown.stderr


def test_validate_show_and_dry_run_never_start_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert invoke("runbook.validate", root=REPO, home=home).returncode == 0
    assert not (home / "sandbox").exists()


def test_one_version_made_bad_among_good_ones(tmp_path: Path) -> None:
    from runbook.sandbox.server import World

    world = World(tmp_path / "w", bad_version="v1.4.0")
    assert world.is_bad("v1.4.0") and not any(world.is_bad(v) for v in ("v1.3.0", "v1.4.1", "v1.1.0"))
    home = tmp_path / "home"
    try:
        wrong = invoke("sandbox.up", "--bad-version", "1.4", root=REPO, home=home)
        assert wrong.returncode == 2 and "bad version '1.4' is not vMAJOR.MINOR.PATCH" in wrong.stderr
        up = invoke("sandbox.up", "--bad-version", "v1.4.0", root=REPO, home=home)
        assert up.returncode == 0 and "bad version v1.4.0" in up.stdout, up.stderr
        assert "bad version v1.4.0" in invoke("sandbox.status", root=REPO, home=home).stdout
        other = invoke("sandbox.up", "--bad-version", "v1.5.0", root=REPO, home=home)
        assert other.returncode == 2 and "sandbox.reset --bad-version v1.5.0" in other.stderr
        state = control.up(home)                   # a start by a run without a bad version takes the world as it is
        assert state["bad_version"] == "v1.4.0" and version(state) == "v1.1.0"
    finally:
        control.down(home)
