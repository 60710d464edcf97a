"""The aws.* plugins against a moto server on loopback with the ECS rollout simulation.

Real boto3 over HTTP to ``runbook.standins.ecs.AwsStandIn``; dummy credentials; no network
beyond 127.0.0.1. The rollback target "from a journal" comes from a release run made by the
engine itself (``invoke runbook production-release`` in tests/scenarios/aws).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from runbook import aws
from runbook.history import History, RunSummary
from runbook.plugins import Context, Outcome, load
from runbook.redact import Redactor
from runbook.standins.ecs import AwsStandIn
from runbook.standins.menotime import (MenoTimeWorld, loopback_client, push_image, put_alb_metrics, put_logs,
                                       register_revision, seed_menotime)
from runbook.store import LocalStore

from helpers import REPO, aws_dummy_credentials, copy_project, invoke, wait_for

FAMILY = "menotime-api-prod"
# :1 v1.0.0, :2 v1.1.0 (live), :3 v1.2.0-rc.1 (registered by CI, never deployed), :4 v1.2.0 (the release)
VERSIONS = ("v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v1.2.0")


@pytest.fixture(scope="module")
def standin() -> Iterator[AwsStandIn]:
    server = AwsStandIn(tick=0.05, slow_ticks=8).start()
    yield server
    server.stop()


@pytest.fixture
def world(standin: AwsStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MenoTimeWorld]:
    """A fresh MenoTime production on the stand-in, live on :2; credentials are dummies."""
    aws_dummy_credentials(monkeypatch, tmp_path)
    standin.reset()
    yield seed_menotime(standin.endpoint_url, versions=VERSIONS, live="v1.1.0")
    assert standin.errors == []                                       # the simulation never tripped on moto


# where the shipped release records what was live before it and what it deployed (the rollbacks pass these)
RELEASE = {"runbook": "production-release", "release_step": "record-live.live", "deployed_step": "deploy-wait.current"}


def run(name: str, world: MenoTimeWorld, args: dict[str, Any] | None = None, env: dict[str, Any] | None = None,
        probe: bool = False, **extra: Any) -> Outcome:
    """Call a registered plugin as the engine would, with a Context built here."""
    plugin = load()[name]
    ctx = Context(args=dict(args or {}), env=env or world.env("sim"), root=REPO, env_name="sim",
                  run_id="20260101T000000-test", **extra)
    fn = plugin.probe if probe else plugin.func
    assert fn is not None
    return fn(ctx)  # type: ignore[return-value]


def ecs(world: MenoTimeWorld) -> Any:
    return loopback_client(world.endpoint_url, "ecs", world.region)


def service(world: MenoTimeWorld) -> dict[str, Any]:
    return ecs(world).describe_services(cluster="production", services=["menotime-api"])["services"][0]


# -- STS and the current task definition -------------------------------------------------------

def test_sts_account_matches_and_a_wrong_account_fails(world: MenoTimeWorld) -> None:
    ok = run("aws.sts_account", world)
    assert ok.passed, ok.summary
    assert ok.outputs["account_id"] == "123456789012" and ok.outputs["arn"].startswith("arn:aws:")
    wrong = run("aws.sts_account", world, {"account_id": "999999999999"})
    assert not wrong.passed
    assert "AWS account is 123456789012, expected 999999999999" in wrong.summary and "wrong account" in wrong.summary


def test_current_task_definition_outputs_the_convention(world: MenoTimeWorld) -> None:
    out = run("aws.ecs_current_task_definition", world)
    assert out.passed, out.summary
    assert out.outputs["task_definition"] == world.task_definitions[f"{FAMILY}:2"]
    assert out.outputs["family_revision"] == f"{FAMILY}:2" and out.outputs["revision"] == 2
    assert out.outputs["image"] == world.image("v1.1.0")
    assert out.outputs["image_digest"] == world.digests["v1.1.0"]       # from ECR: no task runs in moto
    assert out.outputs["registered_at"].endswith("Z")                 # moto lacks it; the stand-in stamps it
    assert "production/menotime-api runs menotime-api-prod:2" in out.summary


# -- rollouts: healthy, slow, failing, stuck ----------------------------------------------------

def test_healthy_rollout_update_wait_and_steady(world: MenoTimeWorld) -> None:
    assert run("aws.ecs_deployment_state", world).passed
    assert run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:4"}, probe=True) is None
    updated = run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:4"})
    assert updated.passed, updated.summary
    assert updated.outputs["previous_family_revision"] == f"{FAMILY}:2"
    assert updated.outputs["task_definition"] == world.task_definitions[f"{FAMILY}:4"]
    deployments = service(world)["deployments"]                       # visible at once, as in ECS
    assert [d["status"] for d in deployments] == ["PRIMARY", "ACTIVE"]
    assert deployments[0]["rolloutState"] == "IN_PROGRESS"
    assert deployments[1]["taskDefinition"] == world.task_definitions[f"{FAMILY}:2"]
    messages: list[str] = []
    waited = run("aws.ecs_wait_stable", world, {"timeout": 10, "interval": 0.05}, progress=messages.append)
    assert waited.passed, waited.summary
    assert waited.outputs["family_revision"] == f"{FAMILY}:4" and waited.outputs["running"] == 3
    assert messages and "running" in messages[0] and "s left" in messages[0]
    state = run("aws.ecs_deployment_state", world, {"task_definition": f"{FAMILY}:4"})
    assert state.passed, state.summary
    assert state.outputs == {**state.outputs, "deployments": 1, "running": 3, "desired": 3, "pending": 0,
                             "rollout_state": "COMPLETED"}
    events = [e["message"] for e in service(world)["events"]]
    assert events[0] == "(service menotime-api) has reached a steady state."
    assert any("has started 3 tasks" in e for e in events) and any("deployment completed" in e for e in events)
    # boto3's own waiter agrees with the simulation
    ecs(world).get_waiter("services_stable").wait(cluster="production", services=["menotime-api"],
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 2})
    again = run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:4"}, probe=True)
    assert again is not None and again.passed and again.outputs["family_revision"] == f"{FAMILY}:4"


def test_slow_rollout_times_out_then_completes(world: MenoTimeWorld, standin: AwsStandIn) -> None:
    standin.set_scenario("slow", service="menotime-api")
    assert run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:4"}).passed
    state = run("aws.ecs_deployment_state", world)
    assert not state.passed
    assert "2 deployments" in state.summary and "rollout IN_PROGRESS" in state.summary
    assert "aws ecs describe-services --cluster production --services menotime-api" in state.summary
    short = run("aws.ecs_wait_stable", world, {"timeout": 0.4, "interval": 0.1})
    assert not short.passed
    assert "not stable on menotime-api-prod:4 after" in short.summary
    assert short.outputs["family_revision"] == f"{FAMILY}:4"          # recorded even when it fails
    done = run("aws.ecs_wait_stable", world, {"timeout": 15, "interval": 0.1})
    assert done.passed, done.summary
    assert done.outputs["rollout_state"] == "COMPLETED"              # the rollout it waited for, not a time


def test_failing_rollout_circuit_breaker_rolls_back(world: MenoTimeWorld, standin: AwsStandIn) -> None:
    standin.set_scenario("failing", task_definition=f"{FAMILY}:4")   # the bad revision fails; others are fine
    assert run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:4"}).passed
    waited = run("aws.ecs_wait_stable", world, {"timeout": 15, "interval": 0.05})
    assert not waited.passed
    assert "deployment of menotime-api-prod:4 to production/menotime-api FAILED" in waited.summary
    assert "tasks failed to start" in waited.summary and "rolling back to menotime-api-prod:2" in waited.summary
    assert waited.evidence["deployments"][-1]["failed_tasks"] >= 3 or \
        any(d["failed_tasks"] >= 3 for d in waited.evidence["deployments"])
    back = run("aws.ecs_wait_stable", world, {"timeout": 15, "interval": 0.05, "task_definition": f"{FAMILY}:2"})
    assert back.passed, back.summary                                  # stable again, on the old revision
    state = run("aws.ecs_deployment_state", world, {"task_definition": f"{FAMILY}:4"})
    assert not state.passed and "PRIMARY runs menotime-api-prod:2, expected menotime-api-prod:4" in state.summary
    late = run("aws.ecs_wait_stable", world, {"timeout": 1, "interval": 0.05})   # started after the rollback
    assert not late.passed and "circuit breaker's rollback after a failed deployment" in late.summary
    events = " | ".join(e["message"] for e in service(world)["events"])
    assert "deployment failed: tasks failed to start" in events and "rolling back to deployment" in events
    assert "Task failed container health checks" in events


def test_stuck_rollout_from_a_task_definition_tag(world: MenoTimeWorld) -> None:
    arn = register_revision(world.endpoint_url, FAMILY, world.image("v1.2.0"),
                            tags=[{"key": "runbook-sandbox:scenario", "value": "stuck"}])
    assert run("aws.ecs_update_service", world, {"task_definition": arn}).passed
    # the event, not a time: three tasks have failed (however slowly a loaded machine ticks the simulation)
    wait_for(lambda: service(world)["deployments"][0]["failedTasks"] >= 3, timeout=120)
    waited = run("aws.ecs_wait_stable", world, {"timeout": 0.6, "interval": 0.1})
    assert not waited.passed and "not stable on menotime-api-prod:5" in waited.summary
    assert "failed tasks" in waited.summary and "Latest event" in waited.summary
    svc = service(world)
    assert svc["deployments"][0]["rolloutState"] == "IN_PROGRESS" and svc["deployments"][0]["failedTasks"] >= 3
    assert svc["deployments"][1]["runningCount"] == 3                 # the old tasks keep serving


def test_scaled_to_zero_is_not_steady(world: MenoTimeWorld) -> None:
    ecs(world).update_service(cluster="production", service="menotime-api", desiredCount=0)
    wait_for(lambda: service(world)["runningCount"] == 0)          # the simulation stopped every task
    state = run("aws.ecs_deployment_state", world)
    assert not state.passed
    assert "desired count 0, expected at least 3 (scaled to 0: every task is stopped)" in state.summary


def test_update_service_refusals(world: MenoTimeWorld) -> None:
    env = world.env("sim")
    env["ecs"] = dict(env["ecs"], deployment_controller="CODE_DEPLOY")
    for name, args in (("aws.ecs_update_service", {"task_definition": f"{FAMILY}:4"}),
                       ("aws.ecs_deployment_state", {}), ("aws.ecs_rollback_target", {})):
        refused = run(name, world, args, env=env)
        assert not refused.passed and "CODE_DEPLOY" in refused.summary and "Refused" in refused.summary
    client = ecs(world)
    client.create_service(cluster="production", serviceName="bluegreen", taskDefinition=f"{FAMILY}:2",
                          desiredCount=1, deploymentController={"type": "CODE_DEPLOY"})
    blue = run("aws.ecs_deployment_state", world, {"service": "bluegreen"})
    assert not blue.passed and "service bluegreen's deployment controller is CODE_DEPLOY" in blue.summary
    client.deregister_task_definition(taskDefinition=f"{FAMILY}:1")
    gone = run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:1"})
    assert not gone.passed and "INACTIVE (deregistered)" in gone.summary
    other = register_revision(world.endpoint_url, "billing-worker", world.image("v1.2.0"))
    wrong = run("aws.ecs_update_service", world, {"task_definition": other})
    assert not wrong.passed and "not of this environment's family menotime-api-prod" in wrong.summary
    zero = run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:2", "desired_count": 0})
    assert not zero.passed and "stops every task" in zero.summary
    missing = run("aws.ecs_update_service", world, {"task_definition": f"{FAMILY}:99", "service": "menotime-api"})
    assert not missing.passed and "ECS DescribeTaskDefinition" in missing.summary
    assert service(world)["taskDefinition"].endswith(f"{FAMILY}:2")   # nothing was deployed


# -- the rollback target ------------------------------------------------------------------------

def test_rollback_target_from_a_release_journal(world: MenoTimeWorld, tmp_path: Path) -> None:
    root = copy_project("aws", tmp_path, world.endpoint_url)
    home = tmp_path / "home"
    released = invoke("runbook", "production-release", "--env", "sim", "--param", f"task_definition={FAMILY}:4",
                      "--non-interactive", root=root, home=home, timeout=90)
    assert released.returncode == 0, released.stdout + released.stderr
    assert service(world)["taskDefinition"].endswith(f"{FAMILY}:4")
    history = History(LocalStore(home))
    release = history.runs(runbook="production-release", env="sim")[0]
    assert release.outputs["record-live.live"]["family_revision"] == f"{FAMILY}:2"
    assert release.outputs["deploy-wait.current"]["family_revision"] == f"{FAMILY}:4"
    found = run("aws.ecs_rollback_target", world, RELEASE, history=history)
    assert found.passed, found.summary
    assert found.outputs["family_revision"] == f"{FAMILY}:2"          # what was live before the release ...
    assert found.outputs["family_revision"] != f"{FAMILY}:3"          # ... not "current minus one" (never deployed)
    assert found.outputs["source"] == "journal" and found.outputs["release_run"] == release.run_id
    assert found.outputs["target"] == world.task_definitions[f"{FAMILY}:2"]
    assert found.outputs["image"] == world.image("v1.1.0") and found.outputs["warnings"] == []
    assert f"live before release run {release.run_id}" in found.summary
    elsewhere = Context(args=dict(RELEASE), env=world.env("sim"), root=REPO, env_name="staging", history=history)
    assert not load()["aws.ecs_rollback_target"].func(elsewhere).passed   # another environment's runs don't count


class Runs:
    """A read-only history of hand-written release summaries (newest first), as History returns them."""

    def __init__(self, *runs: RunSummary):
        self._runs = list(runs)

    def runs(self, runbook: str | None = None, env: str | None = None, status: str | None = None) -> list[RunSummary]:
        return [r for r in self._runs if r.runbook == runbook and r.env == env]


def release(world: MenoTimeWorld, run_id: str, before: int, deployed: int | None, status: str) -> RunSummary:
    outputs = {"record-live.live": {"task_definition": world.task_definitions[f"{FAMILY}:{before}"]}}
    if deployed is not None:
        outputs["deploy-wait.current"] = {"task_definition": world.task_definitions[f"{FAMILY}:{deployed}"]}
    return RunSummary(run_id, "production-release", "sim", status, "2026-01-01T00:00:00Z", {}, outputs)


def test_rollback_target_skips_no_op_releases_and_sees_an_undone_one(world: MenoTimeWorld) -> None:
    first = release(world, "r1", before=2, deployed=4, status="succeeded")
    merge_failed = release(world, "r2", before=4, deployed=None, status="failed")
    redeploy = release(world, "r3", before=4, deployed=4, status="succeeded")
    ecs(world).update_service(cluster="production", service="menotime-api", taskDefinition=f"{FAMILY}:4")
    found = run("aws.ecs_rollback_target", world, RELEASE, history=Runs(redeploy, merge_failed, first))
    assert found.passed and found.outputs["family_revision"] == f"{FAMILY}:2" and found.outputs["release_run"] == "r1"
    ecs(world).update_service(cluster="production", service="menotime-api", taskDefinition=f"{FAMILY}:2")
    older = release(world, "r0", before=1, deployed=2, status="succeeded")
    broken = release(world, "r4", before=2, deployed=4, status="failed")       # the circuit breaker rolled back
    undone = run("aws.ecs_rollback_target", world, RELEASE, history=Runs(broken, older))
    assert not undone.passed and undone.outputs["target"] == "" and undone.outputs["release_run"] == "r4"
    assert "nothing to roll back: the service runs menotime-api-prod:2 again" in undone.summary
    late = release(world, "r5", before=2, deployed=2, status="failed")        # recorded after the rollback
    assert "nothing to roll back" in run("aws.ecs_rollback_target", world, RELEASE, history=Runs(late, older)).summary


def test_rollback_target_without_a_release_lists_candidates(world: MenoTimeWorld, tmp_path: Path) -> None:
    ecs(world).update_service(cluster="production", service="menotime-api", taskDefinition=f"{FAMILY}:4")
    assert run("aws.ecs_wait_stable", world, {"timeout": 10, "interval": 0.05}).passed
    history = History(LocalStore(tmp_path / "empty-home"))
    none = run("aws.ecs_rollback_target", world, RELEASE, history=history)
    assert not none.passed
    assert "no production-release run in sim deployed menotime-api-prod:4" in none.summary
    assert "Pass the chosen one as `target`" in none.summary
    candidates = none.outputs["candidates"]
    assert [c["family_revision"] for c in candidates] == [f"{FAMILY}:3", f"{FAMILY}:2", f"{FAMILY}:1"]
    assert all(c["image"] and c["registered_at"] and c["image_digest"] for c in candidates)
    assert candidates[1]["image"] == world.image("v1.1.0")
    chosen = run("aws.ecs_rollback_target", world, {**RELEASE, "target": f"{FAMILY}:2"}, history=history)
    assert chosen.passed and chosen.outputs["source"] == "chosen" and chosen.outputs["warnings"] == []
    current = run("aws.ecs_rollback_target", world, {**RELEASE, "target": f"{FAMILY}:4"}, history=history)
    assert not current.passed and "is what the service runs now" in current.summary
    push_image(world.endpoint_url, world.repository, "v1.2.0-repush", same_as="v1.2.0")
    repushed = register_revision(world.endpoint_url, FAMILY, world.image("v1.2.0-repush"))
    same = run("aws.ecs_rollback_target", world, {**RELEASE, "target": repushed}, history=history)
    assert same.passed and same.outputs["warnings"]
    assert "run the same image digest" in same.summary and "re-pushed" in same.summary
    listed = run("aws.ecs_rollback_target", world, RELEASE, history=history).outputs["candidates"]
    assert listed[0]["family_revision"] == f"{FAMILY}:5" and listed[0]["same_digest_as_current"]


def test_a_chosen_rollback_target_of_another_family_or_inactive_is_refused(world: MenoTimeWorld,
                                                                           tmp_path: Path) -> None:
    """The rollback-target check itself refuses the operator's choice (not only the later update)."""
    history = History(LocalStore(tmp_path / "empty-home"))
    other = register_revision(world.endpoint_url, "billing-worker", world.image("v1.0.0"))
    wrong = run("aws.ecs_rollback_target", world, {**RELEASE, "target": other}, history=history)
    assert not wrong.passed, wrong.summary
    assert wrong.summary == "rollback target refused: billing-worker:1 is not of family menotime-api-prod"
    ecs(world).deregister_task_definition(taskDefinition=f"{FAMILY}:1")
    gone = run("aws.ecs_rollback_target", world, {**RELEASE, "target": f"{FAMILY}:1"}, history=history)
    assert not gone.passed, gone.summary
    assert gone.summary == f"rollback target refused: {FAMILY}:1 is INACTIVE (deregistered): ECS cannot deploy it"
    assert run("aws.ecs_rollback_target", world, {**RELEASE, "target": f"{FAMILY}:3"}, history=history).passed
    assert service(world)["taskDefinition"].endswith(f"{FAMILY}:2")   # a check: nothing was deployed


# -- CloudWatch ---------------------------------------------------------------------------------

def test_5xx_rate_under_and_over_threshold_and_n_of_m(world: MenoTimeWorld) -> None:
    put_alb_metrics(world, minutes=10, requests=600, errors=0)
    ok = run("aws.cloudwatch_5xx_rate", world, {"threshold_percent": 1})
    assert ok.passed, ok.summary
    assert ok.outputs["rate_percent"] == 0.0 and ok.outputs["datapoints"] == 5   # monitoring.evaluation_periods
    assert ok.evidence["dimensions"][0]["Value"].startswith("targetgroup/menotime-api-prod/")
    assert ok.evidence["dimensions"][1]["Value"].startswith("app/menotime-api-prod/")
    fine = run("aws.cloudwatch_5xx_rate", world, {"period": 5, "window": 300})   # high resolution (the sandbox)
    assert fine.passed and fine.evidence["period_s"] == 5
    put_alb_metrics(world, minutes=1, requests=0, errors=60)            # one bad minute: 10%
    one = {"threshold_percent": 1, "datapoints": 2, "evaluation_periods": 5}
    assert run("aws.cloudwatch_5xx_rate", world, one).passed         # 1 of 5 is not a breach of 2 of 5
    over = run("aws.cloudwatch_5xx_rate", world, dict(one, datapoints=1))
    assert not over.passed
    assert "5XX rate over 1.0% in 1 of the last 5 datapoints" in over.summary
    assert "worst 10.00%" in over.summary and "60 of 600 requests" in over.summary
    assert "HTTPCode_Target_5XX_Count" in over.summary and "/ecs/menotime-api-production" in over.summary
    # an assessment of the recent past: a worse minute 5 minutes ago counts only with whole_window
    import datetime as dt

    put_alb_metrics(world, minutes=1, requests=0, errors=120,
                    end=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=4))
    recent = run("aws.cloudwatch_5xx_rate", world, dict(one, datapoints=1, evaluation_periods=2))
    assert recent.outputs["datapoints"] == 2 and "worst 10.00%" in recent.summary, recent.summary
    assessed = run("aws.cloudwatch_5xx_rate", world, dict(one, datapoints=1, evaluation_periods=2, whole_window=True))
    assert assessed.outputs["datapoints"] >= 9 and "worst 20.00%" in assessed.summary, assessed.summary


def test_5xx_rate_no_data_fails_unless_allowed(world: MenoTimeWorld) -> None:
    none = run("aws.cloudwatch_5xx_rate", world)
    assert not none.passed
    assert "no RequestCount datapoints for target group menotime-api-prod" in none.summary
    assert "allow_no_data: true" in none.summary
    allowed = run("aws.cloudwatch_5xx_rate", world, {"allow_no_data": True})
    assert allowed.passed and "allowed by allow_no_data" in allowed.summary


def test_latency_statistic_threshold_and_percentiles(world: MenoTimeWorld) -> None:
    put_alb_metrics(world, minutes=5, requests=100, latency_ms=120)
    ok = run("aws.cloudwatch_latency", world, {"statistic": "Average", "threshold_ms": 500})
    assert ok.passed and ok.outputs["latency_ms"] == 120.0
    slow = run("aws.cloudwatch_latency", world, {"statistic": "Maximum", "threshold_ms": 100})
    assert not slow.passed and "latency Maximum over 100 ms" in slow.summary
    p99 = run("aws.cloudwatch_latency", world, {"statistic": "p99"})  # moto ignores extended statistics
    assert not p99.passed and "use statistic Average or Maximum there" in p99.summary


def test_no_alarms_in_alarm(world: MenoTimeWorld) -> None:
    ok = run("aws.cloudwatch_no_alarms", world)
    assert ok.passed and ok.outputs["checked"] == 3, ok.summary
    cw = loopback_client(world.endpoint_url, "cloudwatch", world.region)
    cw.set_alarm_state(AlarmName="menotime-api-prod-5xx-high", StateValue="ALARM",
                       StateReason="Threshold Crossed: 3 datapoints were greater than the threshold (10.0)")
    firing = run("aws.cloudwatch_no_alarms", world)
    assert not firing.passed and firing.outputs["alarms"] == ["menotime-api-prod-5xx-high"]
    assert "1 of 3 alarms (prefix 'menotime-api-prod') in ALARM" in firing.summary
    assert "Threshold Crossed" in firing.evidence["firing"][0]["reason"]
    wrong = run("aws.cloudwatch_no_alarms", world, {"prefix": "menotime-web"})
    assert not wrong.passed and "nothing was checked" in wrong.summary


# -- Logs, ELB, SNS -----------------------------------------------------------------------------

def test_error_logs_over_the_limit_with_redacted_capped_excerpts(world: MenoTimeWorld) -> None:
    lines = ["INFO GET /health 200"] + [f"ERROR db timeout #{i} password=hunter22 for jane.roe@example.com"
                                        for i in range(7)]
    put_logs(world, lines)
    redactor = Redactor()
    over = run("aws.logs_errors", world, {"window": 600}, redact=redactor.text)
    assert not over.passed and over.outputs["count"] == 7
    assert "7 log events matching 'ERROR' in /ecs/menotime-api-production" in over.summary
    assert "at most 0 allowed" in over.summary and "aws logs filter-log-events" in over.summary
    excerpts = over.evidence["excerpts"]
    assert len(excerpts) == 5 and excerpts[0]["message"].startswith("ERROR db timeout #6")
    text = repr(over.evidence) + over.summary
    assert "hunter22" not in text and "jane.roe@example.com" not in text
    sensitive = run("aws.logs_errors", world, {"window": 600}, item={"sensitive": True})
    assert all("message" not in e for e in sensitive.evidence["excerpts"]) and "db timeout" not in sensitive.summary
    assert run("aws.logs_errors", world, {"window": 600, "max": 10}).passed


def test_targets_healthy_and_a_stopped_target(world: MenoTimeWorld) -> None:
    ok = run("aws.elb_targets_healthy", world)
    assert ok.passed and ok.outputs == {"healthy": 3, "total": 3, "unhealthy": []}
    ec2 = loopback_client(world.endpoint_url, "ec2", world.region)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    elb = loopback_client(world.endpoint_url, "elbv2", world.region)
    elb.register_targets(TargetGroupArn=world.target_group_arn, Targets=[{"Id": instance, "Port": 8000}])
    ec2.stop_instances(InstanceIds=[instance])
    bad = run("aws.elb_targets_healthy", world)
    assert not bad.passed and "3 of 4 targets healthy" in bad.summary and "Target.InvalidState" in bad.summary


def test_sns_publish_with_a_dedupe_key(world: MenoTimeWorld) -> None:
    args = {"subject": "production release v1.2.0", "message": "menotime-api-prod:4 is live"}
    sent = run("aws.sns_publish", world, args, item={"id": "notify"})
    assert sent.passed and sent.outputs["message_id"] and sent.outputs["topic_arn"] == world.topic_arn
    again = run("aws.sns_publish", world, args, item={"id": "notify"})
    assert again.outputs["dedupe_key"] == sent.outputs["dedupe_key"]
    assert load()["aws.sns_publish"].probe is None                   # SNS cannot be asked what was sent


def test_errors_name_the_operation_and_what_to_do(world: MenoTimeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")                       # no retries against the closed port
    env = world.env("sim")
    env["ecs"] = dict(env["ecs"], cluster="prodution")
    typo = run("aws.ecs_deployment_state", world, env=env)
    assert not typo.passed and "ECS DescribeServices (prodution/menotime-api)" in typo.summary
    assert "ClusterNotFoundException" in typo.summary and "check ecs.cluster" in typo.summary
    unreachable = dict(world.env("sim"), aws={"region": "us-west-1", "endpoint_url": "http://127.0.0.1:9"})
    down = run("aws.sts_account", world, env=unreachable)
    assert not down.passed and "cannot reach AWS at http://127.0.0.1:9" in down.summary
    unset = run("aws.ecs_current_task_definition", world, env={"name": "bare", "aws": world.env()["aws"]})
    assert not unset.passed and "no ECS cluster: pass `cluster` or set ecs.cluster" in unset.summary
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    aws.reset()
    unknown = dict(world.env("sim"), aws=dict(world.env()["aws"], profile="menotime-prod"))
    no_profile = run("aws.sts_account", world, env=unknown)
    assert not no_profile.passed and "profile 'menotime-prod' is not configured on this machine" in no_profile.summary
    assert "aws configure sso --profile menotime-prod" in no_profile.summary
    no_creds = run("aws.sts_account", world)
    assert not no_creds.passed and "no usable AWS credentials" in no_creds.summary
    assert "aws sso login --profile NAME" in no_creds.summary


def test_the_monitoring_window_counts_only_the_time_it_watched(world: MenoTimeWorld) -> None:
    """Resumed long after a Ctrl-C, the watch does not count the time nobody watched: with 3 s of a 6 s window
    behind it (step_active_s), it watches three more seconds, not zero and not six; a parked watch is
    wall-clock. On a virtual clock that starts now: the watched seconds are counted, not waited for."""
    import datetime as dt

    from runbook import clock

    put_alb_metrics(world, minutes=10, requests=600, errors=0)
    long_ago = "2020-01-01T00:00:00.000000Z"
    args = {"window": 6, "interval": 0.5, "allow_no_data": True}
    with clock.installed(clock.VirtualClock(dt.datetime.now(dt.timezone.utc))) as virtual:
        resumed = run("monitor.window", world, args, step_started=long_ago, step_active_s=3.0)
    watched = virtual.monotonic()
    assert resumed.passed and watched == pytest.approx(3.0) and resumed.outputs["looks"] == 7, (watched, resumed.summary)
    parked = run("monitor.window", world, {**args, "park": True}, step_started=long_ago)
    assert parked.passed and parked.outputs["looks"] == 1            # the parked window passed while parked


def test_printed_aws_cli_pointers_carry_the_environment_and_work_where_the_cli_is_installed(
        world: MenoTimeWorld) -> None:
    """A pointer printed for the operator names the environment's region and endpoint (the sandbox's
    dummy credentials as a prefix there); the AWS CLI is not a dependency, so it runs only where installed."""
    import shlex
    import shutil
    import subprocess

    put_logs(world, ["ERROR db timeout"])
    env = {**world.env("sim"), "sandbox": {"scenario": "healthy"}}
    over = run("aws.logs_errors", world, {"window": 600}, env=env)
    command = over.summary.split("Look at: ", 1)[1]
    assert command.startswith("AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws logs filter-log-events")
    argv = shlex.split(command)
    assigns = dict(a.split("=", 1) for a in argv[:2])
    argv = argv[2:]
    assert argv[argv.index("--region") + 1] == env["aws"]["region"]
    assert argv[argv.index("--endpoint-url") + 1] == env["aws"]["endpoint_url"]
    assert argv[argv.index("--log-group-name") + 1] == "/ecs/menotime-api-production"
    if shutil.which("aws"):
        done = subprocess.run(argv, env={**__import__("os").environ, **assigns}, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and "db timeout" in done.stdout, done.stderr
    plain = run("aws.logs_errors", world, {"window": 600})          # not the sandbox: no credentials printed
    assert "AWS_SECRET_ACCESS_KEY" not in plain.summary and "--endpoint-url" in plain.summary
