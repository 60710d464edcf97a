"""aws.*: the AWS checks and actions (STS, ECS, CloudWatch, Logs, ELBv2, SNS).

Clients come from the environment at run time through ``runbook.aws`` (the one module
that imports boto3); credentials come from the standard chains and never reach the
journal. Arguments default to the environment (``ecs.cluster``, ``alb.target_group``,
``monitoring.*`` ...), so a runbook item is usually just ``uses:``. Every summary says
what was expected, what was found, and where to look.

Choices made here:

* ``aws.ecs_deployment_state`` looks once (poll it with the item's ``wait:``);
  ``aws.ecs_wait_stable`` waits itself, polling ``describe_services`` with progress,
  because it must stop early on a FAILED rollout (the boto3 ``services_stable`` waiter
  would wait for its whole budget) and tell a circuit-breaker rollback from success.
  Its success condition is the waiter's: one deployment, running = desired.
* A deployment controller other than ECS (CODE_DEPLOY blue/green, EXTERNAL) is refused
  by every ECS plugin: its deployments are not ECS deployments and need CodeDeploy.
* CloudWatch: a breach is N of the last M datapoints over the threshold (a period with
  no traffic is not a datapoint); no datapoint at all fails unless ``allow_no_data``.
  Latency ``statistic`` takes Average, Maximum, Minimum or a percentile (p99, p99.9);
  moto and the sandbox ignore percentiles (extended statistics), so use Average or
  Maximum there.
* Logs: moto understands only plain terms in filter patterns (``ERROR``); OR patterns
  (``?ERROR ?FATAL``), JSON patterns and exclusions return every event there.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import re
from typing import Any, Callable

from runbook.api import aws
from runbook.api import ExternalError, RunbookError
from runbook.api import Context, Outcome, action, check, probe
from runbook.api import clock

S = {"type": "string"}
I0 = {"type": "integer", "minimum": 0}
CLUSTER = {"cluster": {**S, "description": "ECS cluster (default: ecs.cluster)"},
           "service": {**S, "description": "ECS service (default: ecs.service)"}}
TD_OUT = {"task_definition": {**S, "description": "full ARN"}, "family_revision": S, "family": S,
          "revision": {"type": "integer"}, "image": S, "image_digest": S, "container": S,
          "images": {"type": "object"}, "registered_at": S}
ALB = {"target_group": {**S, "description": "target group name or ARN (default: alb.target_group)"},
       "load_balancer": {**S, "description": "load balancer name or ARN when the group has several "
                                             "(default: alb.load_balancer)"}}
WINDOW = {"window": {"type": "number", "exclusiveMinimum": 0, "description": "seconds back from now (default 600)"},
          "period": {"type": "integer", "minimum": 1,
                     "description": "seconds per datapoint: 1, 5, 10, 30 (high resolution) or a multiple of 60 "
                                    "(default monitoring.period, else 60)"},
          "datapoints": {"type": "integer", "minimum": 1,
                         "description": "N: datapoints over the threshold that make a breach (default "
                                        "monitoring.datapoints, else 1)"},
          "evaluation_periods": {"type": "integer", "minimum": 1,
                                 "description": "M: the last M datapoints are evaluated (default "
                                                "monitoring.evaluation_periods, else all in the window)"},
          "whole_window": {"type": "boolean",
                           "description": "evaluate every datapoint of the window, not the last evaluation_periods: "
                                          "an assessment of the recent past (an incident) rather than of now"},
          "allow_no_data": {"type": "boolean", "description": "no traffic in the window is fine (default false)"},
          "since_deployment": {"type": "boolean", "description": "start the window when the service's current "
                                                                 "deployment finished (default false)"}}
PERCENTILE = re.compile(r"^p\d{1,2}(\.\d+)?$")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


class Unconfigured(RunbookError):
    """A value the plugin needs is neither an argument nor in the environment."""


# -- shared helpers -----------------------------------------------------------------------

def _arg(ctx: Context, name: str, *env_path: str, default: Any = None) -> Any:
    """The argument ``name``; else the environment at ``env_path``; else ``default`` ('' counts as unset)."""
    value = ctx.args.get(name)
    if value not in (None, ""):
        return value
    if not env_path:
        return default
    cur: Any = ctx.env
    for part in env_path:
        cur = cur.get(part) if isinstance(cur, dict) else None
    return default if cur in (None, "") else cur


def _need(ctx: Context, name: str, *env_path: str, what: str) -> Any:
    value = _arg(ctx, name, *env_path)
    if value in (None, ""):
        where = f" or set {'.'.join(env_path)} in the environment file" if env_path else ""
        raise Unconfigured(f"no {what}: pass `{name}`{where}")
    return value


def _translated(fn: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
    """AWS and configuration errors become a failed outcome naming the operation."""
    @functools.wraps(fn)
    def wrapper(ctx: Context) -> Outcome:
        try:
            return fn(ctx)
        except ExternalError as exc:
            code = ""
            original = getattr(exc, "original", None)
            if original is not None and hasattr(original, "response"):
                code = str(original.response.get("Error", {}).get("Code", ""))
            return Outcome.fail(ctx.redact(str(exc)), {"operation": exc.operation, "error_code": code})
        except Unconfigured as exc:
            return Outcome.fail(str(exc))
    return wrapper


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")


def _hhmm(epoch: float) -> str:
    at = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return at.strftime("%H:%M:%SZ" if at.second else "%H:%MZ")


def _minutes(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


# -- ECS helpers ----------------------------------------------------------------------------

def _service(ctx: Context) -> tuple[dict[str, Any], str, str]:
    cluster = _need(ctx, "cluster", "ecs", "cluster", what="ECS cluster")
    name = _need(ctx, "service", "ecs", "service", what="ECS service")
    operation = f"ECS DescribeServices ({cluster}/{name})"
    found = aws.call(ctx.env, "ecs", "describe_services", f"{cluster}/{name}", cluster=cluster, services=[name])
    if not found.get("services"):
        reason = (found.get("failures") or [{}])[0].get("reason", "MISSING")
        raise ExternalError(operation, f"service {name} not found in cluster {cluster} ({reason})",
                            "check ecs.service, ecs.cluster and aws.region in the environment file")
    svc = found["services"][0]
    if svc.get("status") != "ACTIVE":
        raise ExternalError(operation, f"service {name} is {svc.get('status')}, not ACTIVE",
                            "it is being deleted or was deleted; look at the ECS console")
    return svc, cluster, name


def _controller_refusal(ctx: Context, svc: dict[str, Any] | None = None) -> str:
    """Why an ECS plugin must refuse this service, or ''."""
    configured = str((ctx.env.get("ecs") or {}).get("deployment_controller") or "ECS")
    actual = str(((svc or {}).get("deploymentController") or {}).get("type") or "ECS")
    for where, kind in (("ecs.deployment_controller in the environment", configured),
                        (f"service {(svc or {}).get('serviceName', '')}'s deployment controller", actual)):
        if kind != "ECS":
            return (f"{where} is {kind}: these checks drive ECS rolling deployments only; a {kind} "
                    "(blue/green) deployment is driven through CodeDeploy (aws deploy ...), not update-service. "
                    "Refused.")
    return ""


def _task_definition(ctx: Context, ref: str) -> dict[str, Any]:
    found = aws.call(ctx.env, "ecs", "describe_task_definition", ref, taskDefinition=ref)
    return dict(found["taskDefinition"])


def _container(ctx: Context, td: dict[str, Any]) -> dict[str, Any]:
    """The application container: ``container`` arg, else the one on ecs.container_port, else the first essential."""
    containers = td.get("containerDefinitions") or []
    wanted = ctx.args.get("container")
    port = (ctx.env.get("ecs") or {}).get("container_port")
    for c in containers:
        if wanted and c.get("name") == wanted:
            return dict(c)
    if wanted:
        raise Unconfigured(f"{aws.family_revision(td['taskDefinitionArn'])} has no container {wanted!r} "
                           f"(it has {', '.join(c.get('name', '?') for c in containers)})")
    for c in containers:
        if port and any(m.get("containerPort") == port for m in c.get("portMappings") or []):
            return dict(c)
    essential = [c for c in containers if c.get("essential", True)]
    return dict((essential or containers or [{}])[0])


def _ecr_digest(ctx: Context, image: str) -> str:
    """The digest an ECR tag points to now ('' when not ECR or not readable)."""
    match = aws.ECR_IMAGE.match(image or "")
    if not match or not match.group("tag"):
        return ""
    env = dict(ctx.env)
    env["aws"] = dict(ctx.env.get("aws") or {}, region=match.group("region"))
    found = aws.call(env, "ecr", "describe_images", image, registryId=match.group("account"),
                     repositoryName=match.group("repo"), imageIds=[{"imageTag": match.group("tag")}])
    details = found.get("imageDetails") or []
    return str(details[0].get("imageDigest", "")) if details else ""


def _task_digest(ctx: Context, cluster: str, service: str, td_arn: str, container: str) -> str:
    """The digest running tasks of ``td_arn`` report for ``container`` ('' when none run)."""
    arns = aws.call(ctx.env, "ecs", "list_tasks", f"{cluster}/{service}", cluster=cluster, serviceName=service,
                    desiredStatus="RUNNING").get("taskArns") or []
    if not arns:
        return ""
    tasks = aws.call(ctx.env, "ecs", "describe_tasks", f"{cluster}/{service}", cluster=cluster,
                     tasks=arns[:100]).get("tasks") or []
    for task in tasks:
        if aws.same_task_definition(task.get("taskDefinitionArn", ""), td_arn):
            for c in task.get("containers") or []:
                if c.get("name") == container and c.get("imageDigest"):
                    return str(c["imageDigest"])
    return ""


def _digest(ctx: Context, image: str, td_arn: str, container: str,
            running_in: tuple[str, str] | None) -> tuple[str, str, str]:
    """(digest, where it came from, why it is unknown): pinned in the image, running tasks, ECR."""
    pinned = aws.image_digest_in(image)
    if pinned:
        return pinned, "image", ""
    problems = []
    lookups: list[tuple[str, Callable[[], str]]] = [("ecr", lambda: _ecr_digest(ctx, image))]
    if running_in is not None:
        lookups.insert(0, ("task", lambda: _task_digest(ctx, running_in[0], running_in[1], td_arn, container)))
    for source, lookup in lookups:
        try:
            found = lookup()
        except ExternalError as exc:
            problems.append(str(exc))
            continue
        if found:
            return found, source, ""
    return "", "", "; ".join(problems)


def _describe(ctx: Context, ref: str, running_in: tuple[str, str] | None = None) -> dict[str, Any]:
    """A task definition as the plugins report it: ARN, family:revision, image, digest (and where it came from)."""
    td = _task_definition(ctx, ref)
    container = _container(ctx, td)
    image = str(container.get("image", ""))
    arn = str(td["taskDefinitionArn"])
    digest, source, problem = _digest(ctx, image, arn, str(container.get("name", "")), running_in)
    return {"task_definition": arn, "family_revision": aws.family_revision(arn), "family": td.get("family", ""),
            "revision": int(td.get("revision", 0)), "image": image, "image_digest": digest,
            "digest_source": source, "digest_problem": problem,
            "container": container.get("name", ""), "status": td.get("status", ""),
            "images": {c.get("name", ""): c.get("image", "") for c in td.get("containerDefinitions") or []},
            "registered_at": _iso(td.get("registeredAt"))}


def image_tag(image: str) -> str:
    """The tag of an image reference (``REGISTRY/REPO:v1.4.0`` -> ``v1.4.0``; '' for a digest or none)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name and "@" not in image else ""


def _td_outputs(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in TD_OUT}


def _deployments(svc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": d.get("id"), "status": d.get("status"),
             "task_definition": aws.family_revision(str(d.get("taskDefinition", ""))),
             "desired": d.get("desiredCount", 0), "running": d.get("runningCount", 0),
             "pending": d.get("pendingCount", 0), "failed_tasks": d.get("failedTasks", 0),
             "rollout_state": d.get("rolloutState", ""), "reason": d.get("rolloutStateReason", "")}
            for d in svc.get("deployments") or []]


def _events(svc: dict[str, Any], count: int = 5) -> list[str]:
    return [f"{_iso(e.get('createdAt'))} {str(e.get('message', '')).rstrip('.')}"
            for e in (svc.get("events") or [])[:count]]


def _steady_problems(svc: dict[str, Any], expected_desired: int | None) -> list[str]:
    """What keeps the service from steady: one PRIMARY, running = desired, none pending, rollout COMPLETED."""
    deps = _deployments(svc)
    primary = next((d for d in deps if d["status"] == "PRIMARY"), None)
    problems = []
    if primary is None:
        return ["no PRIMARY deployment"]
    others = [d for d in deps if d is not primary]
    if others:
        problems.append(f"{len(deps)} deployments (PRIMARY {primary['task_definition']} "
                        f"{primary['running']}/{primary['desired']} running; "
                        + "; ".join(f"{d['status']} {d['task_definition']} {d['running']} running" for d in others)
                        + ")")
    desired, running, pending = svc.get("desiredCount", 0), svc.get("runningCount", 0), svc.get("pendingCount", 0)
    if not others and (running != desired or primary["running"] != desired):
        problems.append(f"{primary['running']} of {desired} tasks running on {primary['task_definition']}")
    if pending:
        problems.append(f"{pending} pending")
    if primary["rollout_state"] and primary["rollout_state"] != "COMPLETED":
        problems.append(f"rollout {primary['rollout_state']}"
                        + (f" ({primary['reason'].rstrip('.')})" if primary["rollout_state"] == "FAILED" else ""))
    if primary["failed_tasks"]:
        problems.append(f"{primary['failed_tasks']} failed tasks")
    if expected_desired is not None and desired < expected_desired:
        problems.append(f"desired count {desired}, expected at least {expected_desired}"
                        + (" (scaled to 0: every task is stopped)" if desired == 0 else ""))
    return problems


def _where_ecs(ctx: Context, cluster: str, service: str) -> str:
    command = aws.cli_command(ctx.env, "ecs", "describe-services", "--cluster", cluster, "--services", service)
    return f"Look at: {command} (deployments, events)"


# -- STS ----------------------------------------------------------------------------------

@check("aws.sts_account",
       args={"properties": {"account_id": {"type": "string", "pattern": "^[0-9]{12}$",
                                           "description": "expected account (default: aws.account_id)"}}},
       outputs={"type": "object", "properties": {"account_id": S, "arn": S}})
@_translated
def sts_account(ctx: Context) -> Outcome:
    """The credentials in use belong to the environment's AWS account; records the caller ARN."""
    expected = _arg(ctx, "account_id", "aws", "account_id")
    ident = aws.call(ctx.env, "sts", "get_caller_identity")
    account, arn = str(ident["Account"]), str(ident["Arn"])
    profile, region, _ = aws.settings(ctx.env)
    evidence = {"account_id": account, "arn": arn, "expected": expected or "", "profile": profile, "region": region}
    if not expected:
        return Outcome.fail(f"logged in to account {account} as {arn}, but there is nothing to compare it with: "
                            "set aws.account_id in the environment file", evidence, account_id=account, arn=arn)
    if account != expected:
        return Outcome.fail(f"AWS account is {account}, expected {expected} ({ctx.env_name or 'this environment'}): "
                            f"you are logged in to the wrong account as {arn}; log in with the environment's profile"
                            + (f" (`aws sso login --profile {profile}`)" if profile else " (set AWS_PROFILE)"),
                            evidence, account_id=account, arn=arn)
    return Outcome.ok(f"AWS account {account} as {arn}", evidence, account_id=account, arn=arn)


# -- ECS ----------------------------------------------------------------------------------

@check("aws.ecs_current_task_definition",
       args={"properties": {**CLUSTER, "container": {**S, "description": "container whose image is reported "
                                                                         "(default: the one on ecs.container_port)"}}},
       outputs={"type": "object", "properties": TD_OUT})
@_translated
def ecs_current_task_definition(ctx: Context) -> Outcome:
    """The service's current task definition, its image and image digest.

    The digest comes from the image reference when it pins one, else from the service's
    running tasks, else from ECR (what the tag points to now). A release runbook records
    this before its merge (``record-live.live``) and after its deploy
    (``deploy-wait.current``): that is what ``aws.ecs_rollback_target`` reads.
    """
    svc, cluster, name = _service(ctx)
    refusal = _controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    info = _describe(ctx, svc["taskDefinition"], running_in=(cluster, name))
    evidence = {**_td_outputs(info), "digest_source": info["digest_source"], "deployments": _deployments(svc)}
    if info["digest_problem"]:
        evidence["digest_problem"] = info["digest_problem"]
    digest = f", digest {info['image_digest'][:19]}…" if info["image_digest"] else ", digest unknown"
    return Outcome.ok(f"{cluster}/{name} runs {info['family_revision']} (image {info['image']}{digest})", evidence,
                      **_td_outputs(info))


@check("aws.ecs_deployment_state",
       args={"properties": {**CLUSTER,
                            "task_definition": {**S, "description": "the PRIMARY deployment must run this "
                                                                    "(ARN or family:revision)"},
                            "desired_count": {**I0, "description": "fewer desired tasks fail the check; more "
                                                                   "(autoscaling) do not (default: "
                                                                   "ecs.desired_count)"}}},
       outputs={"type": "object", "properties": {
           "task_definition": S, "family_revision": S, "desired": {"type": "integer"},
           "running": {"type": "integer"}, "pending": {"type": "integer"}, "rollout_state": S,
           "deployments": {"type": "integer"}, "deployment_id": S, "failed_tasks": {"type": "integer"}}})
@_translated
def ecs_deployment_state(ctx: Context) -> Outcome:
    """One look at the service: one PRIMARY deployment, running = desired, none pending, rollout COMPLETED.

    Poll it with the item's ``wait: {timeout, interval}``; ``aws.ecs_wait_stable`` waits itself.
    """
    svc, cluster, name = _service(ctx)
    refusal = _controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    desired = _arg(ctx, "desired_count", "ecs", "desired_count")
    problems = _steady_problems(svc, int(desired) if desired is not None else None)
    expected = ctx.args.get("task_definition")
    outputs = _state_outputs(svc)
    if expected and not aws.same_task_definition(outputs["task_definition"], expected):
        problems.insert(0, f"PRIMARY runs {outputs['family_revision']}, expected {aws.family_revision(expected)}")
    evidence = {"deployments": _deployments(svc), "events": [ctx.redact(e) for e in _events(svc)],
                "desired": svc.get("desiredCount"), "running": svc.get("runningCount"),
                "pending": svc.get("pendingCount")}
    if problems:
        latest = _events(svc, 1)
        return Outcome(False, f"{cluster}/{name} is not steady: expected one PRIMARY deployment with running = "
                              f"desired, none pending, rollout COMPLETED; found " + "; ".join(problems)
                       + (f". Latest event: {ctx.redact(latest[0])}" if latest else "")
                       + f". {_where_ecs(ctx, cluster, name)}", evidence, outputs)
    return Outcome(True, f"{cluster}/{name} steady on {outputs['family_revision']}: {outputs['running']}/"
                         f"{outputs['desired']} running, rollout COMPLETED", evidence, outputs)


def _state_outputs(svc: dict[str, Any]) -> dict[str, Any]:
    primary: dict[str, Any] = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
    td = str(primary.get("taskDefinition") or svc.get("taskDefinition", ""))
    return {"task_definition": td, "family_revision": aws.family_revision(td),
            "desired": int(svc.get("desiredCount", 0)), "running": int(primary.get("runningCount", 0)),
            "pending": int(primary.get("pendingCount", 0)), "rollout_state": str(primary.get("rolloutState", "")),
            "deployments": len(svc.get("deployments") or []), "deployment_id": str(primary.get("id", "")),
            "failed_tasks": int(primary.get("failedTasks", 0))}


@check("aws.ecs_wait_stable",
       args={"properties": {**CLUSTER,
                            "task_definition": {**S, "description": "must be stable on this revision (default: "
                                                                    "the service's task definition when the wait "
                                                                    "starts)"},
                            "timeout": {"type": "number", "exclusiveMinimum": 0,
                                        "description": "seconds (default 900)"},
                            "interval": {"type": "number", "exclusiveMinimum": 0,
                                         "description": "seconds between looks (default 15)"}}},
       outputs={"type": "object", "properties": {
           "task_definition": S, "family_revision": S, "running": {"type": "integer"},
           "desired": {"type": "integer"}, "rollout_state": S, "failed_tasks": {"type": "integer"},
           "waited_s": {"type": "number"}}})
@_translated
def ecs_wait_stable(ctx: Context) -> Outcome:
    """Wait until the service is stable on the expected revision, showing progress.

    Stable is what ``aws ecs wait services-stable`` means (one deployment, running =
    desired). It fails early when the rollout is FAILED (the deployment circuit breaker)
    and when the service became stable on another revision (a rollback). It records the
    service's task definition even when it fails, so a release that failed here is
    still found by ``aws.ecs_rollback_target``.
    """
    timeout = float(ctx.args.get("timeout") or 900)
    if ctx.timeout:
        timeout = min(timeout, float(ctx.timeout))
    interval = float(ctx.args.get("interval") or 15)
    started = clock.monotonic()
    svc, cluster, name = _service(ctx)
    refusal = _controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    expected = str(ctx.args.get("task_definition") or svc["taskDefinition"])
    now = {"svc": svc}                         # the service as last described

    def look() -> Outcome | None:
        return _stable_outcome(ctx, now["svc"], cluster, name, expected, clock.monotonic() - started)

    def tick(waited: float) -> None:          # progress, the interval, then the service as it is now
        ctx.progress(_progress(now["svc"], name) + f"; {timeout - waited:.0f} s left")
        clock.sleep(interval)
        now["svc"] = _service(ctx)[0]

    outcome = clock.wait_until(look, timeout, interval, on_tick=tick, sleep=False)
    if outcome is not None:
        return outcome
    svc, waited = now["svc"], clock.monotonic() - started
    problems = _steady_problems(svc, None)
    return _wait_result(ctx, svc, False, f"{cluster}/{name} not stable on {aws.family_revision(expected)} "
                                         f"after {_minutes(waited)}: " + "; ".join(problems)
                        + _latest(ctx, svc) + f". {_where_ecs(ctx, cluster, name)}", waited)


def _progress(svc: dict[str, Any], name: str) -> str:
    deps = _deployments(svc)
    primary = next((d for d in deps if d["status"] == "PRIMARY"), None)
    if primary is None:
        return f"{name}: no PRIMARY deployment"
    old = sum(d["running"] for d in deps if d is not primary)
    return (f"{name}: {primary['task_definition']} {primary['running']}/{primary['desired']} running, "
            f"{primary['pending']} pending, {primary['failed_tasks']} failed, rollout {primary['rollout_state'] or '?'}"
            + (f"; {old} old task(s) still running" if old else ""))


def _latest(ctx: Context, svc: dict[str, Any]) -> str:
    latest = _events(svc, 1)
    return f". Latest event: {ctx.redact(latest[0])}" if latest else ""


def _stable_outcome(ctx: Context, svc: dict[str, Any], cluster: str, name: str, expected: str,
                    waited: float) -> Outcome | None:
    """The wait's result when it is decided (stable, failed, rolled back); None to keep waiting.

    Without an explicit ``task_definition`` the expected one is whatever the service was
    set to when the wait began, which may already be the circuit breaker's rollback:
    then any FAILED deployment, or a PRIMARY that the events name as a rollback, fails.
    """
    explicit = bool(ctx.args.get("task_definition"))
    deps = _deployments(svc)
    failed = [d for d in deps if d["rollout_state"] == "FAILED"]
    failed = [d for d in failed if aws.same_task_definition(d["task_definition"], expected)] or \
        ([] if explicit else failed)
    current = str(svc.get("taskDefinition", ""))
    look = f"Check the stopped tasks' reasons and the logs. {_where_ecs(ctx, cluster, name)}"
    if failed:
        bad = failed[0]
        rolled = "" if aws.same_task_definition(current, bad["task_definition"]) else \
            f"; ECS is rolling back to {aws.family_revision(current)}"
        return _wait_result(ctx, svc, False, f"deployment of {bad['task_definition']} to {cluster}/{name} FAILED "
                                             f"({bad['reason'].rstrip('.') or 'rollout failed'}; "
                                             f"{bad['failed_tasks']} failed tasks){rolled}{_latest(ctx, svc)}. {look}",
                            waited)
    stable = len(deps) == 1 and svc.get("runningCount") == svc.get("desiredCount")
    if not stable:
        return None
    if not aws.same_task_definition(deps[0]["task_definition"], expected):
        return _wait_result(ctx, svc, False, f"{cluster}/{name} is stable, but on {deps[0]['task_definition']}, "
                                             f"not {aws.family_revision(expected)}: the deployment was rolled back "
                                             f"or replaced{_latest(ctx, svc)}. {_where_ecs(ctx, cluster, name)}",
                            waited)
    rollback = "" if explicit else _rollback_event(svc, str(deps[0]["id"]))
    if rollback:
        return _wait_result(ctx, svc, False, f"{cluster}/{name} is stable on {deps[0]['task_definition']}, but "
                                             "that is the deployment circuit breaker's rollback after a failed "
                                             f"deployment ({ctx.redact(rollback)}): the new version is not running. "
                                             f"{look}", waited)
    return _wait_result(ctx, svc, True, f"{cluster}/{name} stable on {deps[0]['task_definition']}: "
                                        f"{svc.get('runningCount')}/{svc.get('desiredCount')} running after "
                                        f"{_minutes(waited)}", waited)


def _rollback_event(svc: dict[str, Any], deployment_id: str) -> str:
    """The service event saying ECS rolled back to this deployment ('' when there is none)."""
    for event in (svc.get("events") or [])[:50]:
        message = str(event.get("message", ""))
        if deployment_id and f"rolling back to deployment {deployment_id}" in message:
            return f"{_iso(event.get('createdAt'))} {message.rstrip('.')}"
    return ""


def _wait_result(ctx: Context, svc: dict[str, Any], passed: bool, summary: str, waited: float) -> Outcome:
    state = _state_outputs(svc)
    current = str(svc.get("taskDefinition", ""))
    outputs = {"task_definition": current, "family_revision": aws.family_revision(current),
               "running": state["running"], "desired": state["desired"], "rollout_state": state["rollout_state"],
               "failed_tasks": state["failed_tasks"], "waited_s": round(waited, 1)}
    evidence = {"deployments": _deployments(svc), "events": [ctx.redact(e) for e in _events(svc)],
                "waited_s": round(waited, 1)}
    return Outcome(passed, summary, evidence, outputs)


UPDATE_OUT = {"task_definition": S, "family_revision": S, "previous_task_definition": S,
              "previous_family_revision": S, "deployment_id": S}


def _update_target(ctx: Context, svc: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The task definition to deploy, or None and why it is refused."""
    refusal = _controller_refusal(ctx, svc)
    if refusal:
        return None, refusal
    td = _task_definition(ctx, str(ctx.args["task_definition"]))
    family = (ctx.env.get("ecs") or {}).get("task_family")
    fr = aws.family_revision(td["taskDefinitionArn"])
    if family and td.get("family") != family:
        return None, (f"{fr} is not of this environment's family {family} (ecs.task_family): refusing to deploy "
                      "another service's task definition")
    if td.get("status") != "ACTIVE":
        return None, (f"{fr} is {td.get('status')} (deregistered): ECS cannot deploy it; register it again or "
                      "choose an ACTIVE revision")
    return td, ""


@action("aws.ecs_update_service",
        args={"properties": {**CLUSTER,
                             "task_definition": {**S, "description": "ARN or family:revision to deploy"},
                             "force_new_deployment": {"type": "boolean", "description": "default true"},
                             "desired_count": {"type": "integer", "minimum": 1,
                                               "description": "optional; 0 is refused: it stops every task, old "
                                                              "and new"}},
              "required": ["task_definition"]},
        outputs={"type": "object", "properties": UPDATE_OUT})
@_translated
def ecs_update_service(ctx: Context) -> Outcome:
    """Point the service at a task definition with a new deployment (update-service --force-new-deployment).

    Refuses other deployment controllers, deregistered revisions and other families.
    Wait for the rollout with ``aws.ecs_wait_stable``. Probe: the service already on it.
    """
    if ctx.args.get("desired_count") == 0:
        return Outcome.fail("desired_count 0 refused: it stops every task of the service, old and new (the guide's "
                            "'immediate rollback' mistake); roll back to a task definition instead")
    svc, cluster, name = _service(ctx)
    td, refusal = _update_target(ctx, svc)
    if td is None:
        return Outcome.fail(refusal)
    previous = str(svc["taskDefinition"])
    kwargs: dict[str, Any] = {"cluster": cluster, "service": name, "taskDefinition": td["taskDefinitionArn"],
                              "forceNewDeployment": bool(ctx.args.get("force_new_deployment", True))}
    if ctx.args.get("desired_count"):
        kwargs["desiredCount"] = int(ctx.args["desired_count"])
    updated = aws.call(ctx.env, "ecs", "update_service", f"{cluster}/{name}", **kwargs)["service"]
    primary: dict[str, Any] = next((d for d in updated.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
    target = str(td["taskDefinitionArn"])
    outputs = {"task_definition": target, "family_revision": aws.family_revision(target),
               "previous_task_definition": previous, "previous_family_revision": aws.family_revision(previous),
               "deployment_id": str(primary.get("id", ""))}
    evidence = {**outputs, "force_new_deployment": kwargs["forceNewDeployment"],
                "desired_count": kwargs.get("desiredCount", updated.get("desiredCount"))}
    same = " (same revision: a forced redeploy)" if aws.same_task_definition(previous, target) else ""
    return Outcome.ok(f"{cluster}/{name}: {aws.family_revision(previous)} -> {outputs['family_revision']}{same}, "
                      f"deployment {outputs['deployment_id'] or '?'} started; wait with aws.ecs_wait_stable",
                      evidence, **outputs)


@probe("aws.ecs_update_service")
def ecs_update_service_probe(ctx: Context) -> Outcome | None:
    """Already done when the service's task definition (and desired count, if given) is the target's."""
    svc, cluster, name = _service(ctx)
    target = str(_task_definition(ctx, str(ctx.args["task_definition"]))["taskDefinitionArn"])
    if not aws.same_task_definition(str(svc.get("taskDefinition", "")), target):
        return None
    if ctx.args.get("desired_count") and svc.get("desiredCount") != ctx.args["desired_count"]:
        return None
    deps = svc.get("deployments") or []
    primary: dict[str, Any] = next((d for d in deps if d.get("status") == "PRIMARY"), {})
    older = next((str(d.get("taskDefinition")) for d in deps if d.get("status") == "ACTIVE"), "")
    outputs = {"task_definition": target, "family_revision": aws.family_revision(target),
               "previous_task_definition": older,
               "previous_family_revision": aws.family_revision(older) if older else "",
               "deployment_id": str(primary.get("id", ""))}
    return Outcome.ok(f"{cluster}/{name} is already on {outputs['family_revision']}", dict(outputs), **outputs)


# -- the rollback target --------------------------------------------------------------------

@check("aws.ecs_rollback_target",
       args={"properties": {
           **CLUSTER,
           "family": {**S, "description": "task definition family (default: ecs.task_family, else the current "
                                          "one's)"},
           "runbook": {**S, "description": "the release runbook whose runs are searched (default "
                                           "production-release)"},
           "release_step": {**S, "description": "STEP.ITEM whose outputs hold the task definition live before "
                                                "the release (default record-live.live)"},
           "deployed_step": {**S, "description": "STEP.ITEM whose outputs hold the task definition the release "
                                                 "deployed (default deploy-wait.current)"},
           "target": {**S, "description": "an operator's choice to validate instead (ARN or family:revision; "
                                          "'' = none)"},
           "max_candidates": {"type": "integer", "minimum": 1, "description": "default 10"}}},
       outputs={"type": "object", "properties": {
           "target": S, "family_revision": S, "image": S, "image_digest": S, "source": S, "release_run": S,
           "current": S, "current_family_revision": S, "current_image": S,
           "version": {**S, "description": "the target image's tag (the version rolled back to)"},
           "current_version": {**S, "description": "the current image's tag (the version rolled back from)"},
           "warnings": {"type": "array", "items": S},
           "candidates": {"type": "array", "items": {"type": "object"}}}})
@_translated
def ecs_rollback_target(ctx: Context) -> Outcome:
    """The task definition to roll back to: what was live before the release now running.

    Never "current revision minus one": revisions registered but never deployed sit in
    between. The convention, read from other runs' journals (ctx.history): a release run
    (runbook ``runbook``, same environment) records, as item outputs with a
    ``task_definition`` key,

    * at ``release_step`` (default ``record-live.live``): the task definition live before
      its merge (``aws.ecs_current_task_definition``), and
    * at ``deployed_step`` (default ``deploy-wait.current``): the one it deployed
      (``aws.ecs_current_task_definition`` or ``aws.ecs_wait_stable``, which records it
      even when the wait fails).

    The newest such run whose deployed task definition is the service's current one
    names the target (its pre-release one, when that differs from the current). When
    instead the newest release that recorded a deployment left the service on what was
    live before it (it deployed something else, or it failed: the circuit breaker rolled
    back), there is nothing to roll back and the check says so rather than reaching for
    an older release. A succeeded release that redeployed the live revision is skipped.
    Without any of these, the check fails and lists the family's ACTIVE revisions (``candidates``: image,
    digest, registration time, which run they were live before) for the operator to
    choose; the choice comes back as ``target`` and is validated: same family, ACTIVE,
    not the current one. Either way it warns when target and current share an image
    digest (a mutable tag re-pushed: the rollback would change nothing).
    """
    svc, cluster, name = _service(ctx)
    refusal = _controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    current = _describe(ctx, svc["taskDefinition"], running_in=(cluster, name))
    family = _arg(ctx, "family", "ecs", "task_family", default=current["family"])
    base = {"current": current["task_definition"], "current_family_revision": current["family_revision"],
            "current_image": current["image"], "current_version": image_tag(current["image"])}
    if ctx.args.get("target"):
        return _chosen_target(ctx, current, family, base)
    runbook = str(ctx.args.get("runbook") or "production-release")
    release_step = str(ctx.args.get("release_step") or "record-live.live")
    deployed_step = str(ctx.args.get("deployed_step") or "deploy-wait.current")
    runs = ctx.history.runs(runbook=runbook, env=ctx.env_name or None) if ctx.history is not None else []
    undone = None
    for run in runs:
        deployed = str((run.outputs.get(deployed_step) or {}).get("task_definition") or "")
        before = str((run.outputs.get(release_step) or {}).get("task_definition") or "")
        if not before:
            continue
        now_live = current["task_definition"]
        if aws.same_task_definition(deployed, now_live) and not aws.same_task_definition(before, now_live):
            return _journal_target(ctx, current, before, run, base)
        if deployed and aws.same_task_definition(before, now_live) and \
                (not aws.same_task_definition(deployed, before) or run.status != "succeeded"):
            undone = run     # this release did not stick: the service is back on what was live before it
            break
    candidates = _candidates(ctx, family, current, runs, release_step, int(ctx.args.get("max_candidates") or 10))
    if undone is not None:
        return _already_rolled_back(ctx, current, undone, deployed_step, base, candidates)
    listed = "; ".join(f"{c['family_revision']} ({c['image'].rsplit('/', 1)[-1]}, registered "
                       f"{c['registered_at'] or '?'}"
                       + (f", live before run {c['live_before_run']}" if c["live_before_run"] else "") + ")"
                       for c in candidates[:5]) or "none"
    evidence = {"searched": {"runbook": runbook, "environment": ctx.env_name, "runs": len(runs),
                             "release_step": release_step, "deployed_step": deployed_step},
                "current": _td_outputs(current), "candidates": candidates}
    return Outcome(False, f"no {runbook} run in {ctx.env_name or 'this environment'} deployed "
                          f"{current['family_revision']} (looked at {len(runs)} run(s) for {deployed_step}."
                          f"task_definition), so the rollback target is the operator's choice. ACTIVE revisions of "
                          f"{family}, newest first: {listed}. Pass the chosen one as `target` (not \"current minus "
                          "one\": it may never have been deployed)", evidence,
                   {**base, "target": "", "family_revision": "", "image": "", "image_digest": "", "source": "",
                    "version": "", "release_run": "", "warnings": [], "candidates": candidates})


def _already_rolled_back(ctx: Context, current: dict[str, Any], run: Any, deployed_step: str,
                         base: dict[str, Any], candidates: list[dict[str, Any]]) -> Outcome:
    deployed = aws.family_revision(str(run.outputs[deployed_step]["task_definition"]))
    return Outcome(False, f"nothing to roll back: the service runs {current['family_revision']} again, the task "
                          f"definition live before release run {run.run_id} (which deployed {deployed} and "
                          f"{run.status}): the deployment circuit breaker or someone already rolled it back. To go "
                          "further back, pass the chosen revision as `target`",
                   {"release_run": run.run_id, "release_status": run.status, "current": _td_outputs(current),
                    "candidates": candidates},
                   {**base, "target": "", "family_revision": "", "image": "", "image_digest": "", "source": "",
                    "version": "", "release_run": run.run_id, "warnings": [], "candidates": candidates})


def _journal_target(ctx: Context, current: dict[str, Any], before: str, run: Any, base: dict[str, Any]) -> Outcome:
    target = _describe(ctx, before)
    warnings = _target_warnings(target, current)
    evidence = {"release_run": run.run_id, "release_started": run.started, "release_status": run.status,
                "release_params": {k: v for k, v in (run.params or {}).items() if isinstance(v, (str, int, float))},
                "target": _td_outputs(target), "current": _td_outputs(current), "warnings": warnings}
    outputs = {**base, "target": target["task_definition"], "family_revision": target["family_revision"],
               "image": target["image"], "image_digest": target["image_digest"], "source": "journal",
               "version": image_tag(target["image"]),
               "release_run": run.run_id, "warnings": warnings, "candidates": []}
    if target["status"] != "ACTIVE":
        return Outcome(False, f"the release run {run.run_id} replaced {target['family_revision']} with "
                              f"{current['family_revision']}, but {target['family_revision']} is {target['status']} "
                              "(deregistered): register it again, or choose another revision as `target`",
                       evidence, outputs)
    note = (" WARNING: " + " ".join(warnings)) if warnings else ""
    return Outcome(True, f"roll back {current['family_revision']} -> {target['family_revision']} "
                         f"({target['image'].rsplit('/', 1)[-1]}): live before release run {run.run_id} "
                         f"({run.status}, started {run.started}){note}", evidence, outputs)


def _chosen_target(ctx: Context, current: dict[str, Any], family: str, base: dict[str, Any]) -> Outcome:
    target = _describe(ctx, str(ctx.args["target"]))
    warnings = _target_warnings(target, current)
    outputs = {**base, "target": target["task_definition"], "family_revision": target["family_revision"],
               "image": target["image"], "image_digest": target["image_digest"], "source": "chosen",
               "version": image_tag(target["image"]),
               "release_run": "", "warnings": warnings, "candidates": []}
    evidence = {"target": _td_outputs(target), "current": _td_outputs(current), "warnings": warnings}
    problem = ""
    if aws.same_task_definition(target["task_definition"], current["task_definition"]):
        problem = f"{target['family_revision']} is what the service runs now: a rollback needs another revision"
    elif target["family"] != family:
        problem = f"{target['family_revision']} is not of family {family}"
    elif target["status"] != "ACTIVE":
        problem = f"{target['family_revision']} is {target['status']} (deregistered): ECS cannot deploy it"
    if problem:
        return Outcome(False, f"rollback target refused: {problem}", evidence, outputs)
    note = (" WARNING: " + " ".join(warnings)) if warnings else ""
    return Outcome(True, f"roll back {current['family_revision']} -> {target['family_revision']} "
                         f"({target['image'].rsplit('/', 1)[-1]}), chosen by the operator{note}", evidence, outputs)


def _target_warnings(target: dict[str, Any], current: dict[str, Any]) -> list[str]:
    if target["image_digest"] and target["image_digest"] == current["image_digest"]:
        return [f"{target['family_revision']} and {current['family_revision']} run the same image digest "
                f"({target['image_digest'][:19]}…): a mutable tag was re-pushed, so rolling back changes no code"]
    return []


def _candidates(ctx: Context, family: str, current: dict[str, Any], runs: list[Any], release_step: str,
                limit: int) -> list[dict[str, Any]]:
    """ACTIVE revisions of ``family`` other than the current one, newest first."""
    arns: list[str] = []
    for page in aws.pages(ctx.env, "ecs", "list_task_definitions", family, familyPrefix=family, status="ACTIVE"):
        arns.extend(str(a) for a in page.get("taskDefinitionArns") or [])
    mine = [a for a in arns if aws.family_revision(a).rsplit(":", 1)[0] == family
            and not aws.same_task_definition(a, current["task_definition"])]
    mine.sort(key=lambda a: int(a.rsplit(":", 1)[1]), reverse=True)
    live_before: dict[str, str] = {}
    for run in reversed(runs):   # oldest first, so the newest run wins
        before = str((run.outputs.get(release_step) or {}).get("task_definition") or "")
        if before:
            live_before[aws.family_revision(before)] = run.run_id
    out = []
    for arn in mine[:limit]:
        info = _describe(ctx, arn)
        out.append({"task_definition": info["task_definition"], "family_revision": info["family_revision"],
                    "image": info["image"], "image_digest": info["image_digest"],
                    "registered_at": info["registered_at"],
                    "same_digest_as_current": bool(info["image_digest"])
                    and info["image_digest"] == current["image_digest"],
                    "live_before_run": live_before.get(info["family_revision"], "")})
    return out


# -- CloudWatch -----------------------------------------------------------------------------

def _alb_dimensions(ctx: Context) -> tuple[list[dict[str, str]], str]:
    """CloudWatch dimensions of the target group (``targetgroup/NAME/ID``, ``app/NAME/ID``) and its name."""
    ref = str(_need(ctx, "target_group", "alb", "target_group", what="target group"))
    key = {"TargetGroupArns": [ref]} if ref.startswith("arn:") else {"Names": [ref]}
    group = aws.call(ctx.env, "elbv2", "describe_target_groups", ref, **key)["TargetGroups"][0]
    lbs = [str(a) for a in group.get("LoadBalancerArns") or []]
    wanted = _arg(ctx, "load_balancer", "alb", "load_balancer")
    if wanted:
        lbs = [a for a in lbs if a == wanted or aws.elb_dimension(a, "loadbalancer").split("/")[1:2] == [wanted]]
    if not lbs:
        named = f" named {wanted}" if wanted else ""
        raise Unconfigured(f"target group {group['TargetGroupName']} is attached to no load balancer{named}: it "
                           "has no ALB metrics (check alb.target_group / alb.load_balancer)")
    dims = [{"Name": "TargetGroup", "Value": aws.elb_dimension(group["TargetGroupArn"], "targetgroup")},
            {"Name": "LoadBalancer", "Value": aws.elb_dimension(lbs[0], "loadbalancer")}]
    return dims, str(group["TargetGroupName"])


def _series(ctx: Context, dims: list[dict[str, str]], metric: str, statistic: str, window: float,
            period: int) -> dict[int, float]:
    """Datapoints of an AWS/ApplicationELB metric, keyed by period start (epoch seconds)."""
    end = dt.datetime.now(dt.timezone.utc)
    kwargs: dict[str, Any] = {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": dims,
                              "StartTime": end - dt.timedelta(seconds=window), "EndTime": end, "Period": period}
    if PERCENTILE.match(statistic):
        kwargs["ExtendedStatistics"] = [statistic]
    else:
        kwargs["Statistics"] = [statistic]
    found = aws.call(ctx.env, "cloudwatch", "get_metric_statistics", metric, **kwargs)
    out: dict[int, float] = {}
    for dp in found.get("Datapoints") or []:
        value = dp.get(statistic, (dp.get("ExtendedStatistics") or {}).get(statistic))
        if value is None:
            continue
        at = int(dp["Timestamp"].timestamp()) // period * period
        if statistic == "Sum":
            out[at] = out.get(at, 0.0) + float(value)
        else:
            out[at] = max(out.get(at, float(value)), float(value))
    return out


def _since_deployment(ctx: Context, window: float) -> float:
    """With ``since_deployment``, shorten a look-back window to start when the current deployment finished.

    After a rollout (or a rollback) only what the new tasks did counts: errors of the
    version just replaced must not fail the version now serving.
    """
    if not ctx.args.get("since_deployment"):
        return window
    svc, _, _ = _service(ctx)
    primary = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), None)
    if not primary:
        return window
    stamp = primary.get("updatedAt") if primary.get("rolloutState") == "COMPLETED" else primary.get("createdAt")
    if not isinstance(stamp, dt.datetime):
        return window
    age = (dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()
    return max(1.0, min(window, age))


def _window(ctx: Context) -> tuple[float, int, int, int | None, bool]:
    window = _since_deployment(ctx, float(ctx.args.get("window") or 600))
    period = int(_arg(ctx, "period", "monitoring", "period", default=60))
    if period < math.ceil(window / 1440):                        # at most 1440 datapoints per call
        period = max(60, math.ceil(window / 1440 / 60) * 60)
    n = int(_arg(ctx, "datapoints", "monitoring", "datapoints", default=1))
    m = None if ctx.args.get("whole_window") else _arg(ctx, "evaluation_periods", "monitoring", "evaluation_periods")
    return window, period, n, int(m) if m is not None else None, bool(ctx.args.get("allow_no_data", False))


def _breach(values: dict[int, float], threshold: float, n: int, m: int | None) -> tuple[list[int], list[int]]:
    """(evaluated period starts, breaching ones): the last M datapoints, those over the threshold."""
    evaluated = sorted(values)[-m:] if m else sorted(values)
    return evaluated, [t for t in evaluated if values[t] > threshold]


@check("aws.cloudwatch_5xx_rate",
       args={"properties": {**ALB, **WINDOW,
                            "threshold_percent": {"type": "number", "minimum": 0,
                                                  "description": "default monitoring.error_rate_percent, else 1"},
                            "metric": {**S, "description": "default HTTPCode_Target_5XX_Count"},
                            "fresh": {"type": "boolean",
                                      "description": "first wait (up to 3 periods) for a datapoint of a period "
                                                     "that ends after the check starts: CloudWatch publishes a "
                                                     "period after it, so right after a failure the newest "
                                                     "errors are not there yet"}}},
       outputs={"type": "object", "properties": {
           "rate_percent": {"type": "number"}, "max_rate_percent": {"type": "number"},
           "requests": {"type": "number"}, "errors": {"type": "number"}, "datapoints": {"type": "integer"},
           "breaching": {"type": "integer"}, "threshold_percent": {"type": "number"}}})
@_translated
def cloudwatch_5xx_rate(ctx: Context) -> Outcome:
    """The target group's 5XX responses as a percentage of RequestCount stay under the threshold.

    Per period: 100 x HTTPCode_Target_5XX_Count (Sum) / RequestCount (Sum). Dimensions are
    derived from the target group's ARN (``targetgroup/NAME/ID``) and its load
    balancer's (``app/NAME/ID``), not its bare name.
    """
    window, period, n, m, allow_no_data = _window(ctx)
    threshold = float(_arg(ctx, "threshold_percent", "monitoring", "error_rate_percent", default=1.0))
    metric = str(ctx.args.get("metric") or "HTTPCode_Target_5XX_Count")
    dims, group = _alb_dimensions(ctx)
    read: list[dict[int, float]] = []

    def requests() -> bool:                   # RequestCount now; with fresh: it holds the current period
        read.append(_series(ctx, dims, "RequestCount", "Sum", window, period))
        return not ctx.args.get("fresh") or any(t + period > asked for t in read[-1])

    asked = clock.time_s()
    if ctx.args.get("fresh"):
        ctx.progress(f"waiting for CloudWatch's datapoint of the current {period} s period")
    clock.wait_until(requests, 3 * period, max(1.0, period / 5))
    counts = read[-1]
    errors = _series(ctx, dims, metric, "Sum", window, period)
    rates = {t: 100.0 * errors.get(t, 0.0) / max(r, errors.get(t, 0.0)) for t, r in counts.items() if r > 0}
    evaluated, breaching = _breach(rates, threshold, n, m)
    total_r = sum(counts.get(t, 0.0) for t in evaluated)
    total_e = sum(errors.get(t, 0.0) for t in evaluated)
    outputs = {"rate_percent": round(100.0 * total_e / total_r, 3) if total_r else 0.0,
               "max_rate_percent": round(max((rates[t] for t in evaluated), default=0.0), 3),
               "requests": total_r, "errors": total_e, "datapoints": len(evaluated), "breaching": len(breaching),
               "threshold_percent": threshold}
    evidence = {"dimensions": dims, "metric": metric, "window_s": window, "period_s": period, "rule": f"{n} of "
                f"{m or 'all'} datapoints over {threshold}%",
                "datapoints": [{"at": _hhmm(t), "requests": counts.get(t, 0.0), "errors": errors.get(t, 0.0),
                                "rate_percent": round(rates[t], 3)} for t in evaluated][-60:]}
    where = f"target group {group} over the last {_minutes(window)}"
    if not evaluated:
        return _no_data(ctx, allow_no_data, f"no RequestCount datapoints for {where}", dims, evidence, outputs, "")
    look = (f" Look at CloudWatch AWS/ApplicationELB {metric} ({dims[0]['Value']}) and the logs"
            + (f" in {(ctx.env.get('logs') or {}).get('group')}" if (ctx.env.get("logs") or {}).get("group") else ""))
    if len(breaching) >= n:
        worst = max(breaching, key=lambda t: rates[t])
        return Outcome(False, f"5XX rate over {threshold}% in {len(breaching)} of the last {len(evaluated)} "
                              f"datapoints (breach: {n}) for {where}; worst {rates[worst]:.2f}% at {_hhmm(worst)} "
                              f"({errors.get(worst, 0):.0f} of {counts[worst]:.0f} requests).{look}",
                       evidence, outputs)
    return Outcome(True, f"5XX rate {outputs['rate_percent']:.2f}% ({total_e:.0f} of {total_r:.0f} requests; "
                         f"worst {outputs['max_rate_percent']:.2f}%) for {where}; threshold {threshold}%, "
                         f"{len(breaching)} of {len(evaluated)} datapoints over", evidence, outputs)


def _no_data(ctx: Context, allowed: bool, what: str, dims: list[dict[str, str]], evidence: dict[str, Any],
             outputs: dict[str, Any], extra: str) -> Outcome:
    if allowed:
        return Outcome(True, f"{what} (no traffic: allowed by allow_no_data)", evidence, outputs)
    return Outcome(False, f"{what}: no traffic reached it, or the metrics are not under "
                          f"{', '.join(d['Name'] + '=' + d['Value'] for d in dims)}.{extra} If no traffic is normal "
                          "here, set allow_no_data: true on the item", evidence, outputs)


@check("aws.cloudwatch_latency",
       args={"properties": {**ALB, **WINDOW,
                            "threshold_ms": {"type": "number", "exclusiveMinimum": 0,
                                             "description": "default monitoring.latency_ms, else 500"},
                            "statistic": {"type": "string", "pattern": r"^(Average|Maximum|Minimum|p\d{1,2}(\.\d+)?)$",
                                          "description": "default monitoring.latency_statistic, else p99; moto "
                                                         "and the sandbox support Average/Maximum/Minimum only"}}},
       outputs={"type": "object", "properties": {
           "latency_ms": {"type": "number"}, "max_latency_ms": {"type": "number"}, "statistic": S,
           "datapoints": {"type": "integer"}, "breaching": {"type": "integer"}, "threshold_ms": {"type": "number"}}})
@_translated
def cloudwatch_latency(ctx: Context) -> Outcome:
    """The target group's TargetResponseTime (statistic configurable) stays under the threshold."""
    window, period, n, m, allow_no_data = _window(ctx)
    threshold = float(_arg(ctx, "threshold_ms", "monitoring", "latency_ms", default=500.0))
    statistic = str(_arg(ctx, "statistic", "monitoring", "latency_statistic", default="p99"))
    dims, group = _alb_dimensions(ctx)
    values = {t: v * 1000.0 for t, v in _series(ctx, dims, "TargetResponseTime", statistic, window, period).items()}
    evaluated, breaching = _breach(values, threshold, n, m)
    outputs = {"latency_ms": round(values[evaluated[-1]], 1) if evaluated else 0.0,
               "max_latency_ms": round(max((values[t] for t in evaluated), default=0.0), 1),
               "statistic": statistic, "datapoints": len(evaluated), "breaching": len(breaching),
               "threshold_ms": threshold}
    evidence = {"dimensions": dims, "statistic": statistic, "window_s": window, "period_s": period,
                "rule": f"{n} of {m or 'all'} datapoints over {threshold} ms",
                "datapoints": [{"at": _hhmm(t), "ms": round(values[t], 1)} for t in evaluated][-60:]}
    where = f"target group {group} over the last {_minutes(window)}"
    if not evaluated:
        extra = (f" ({statistic} is an extended statistic: moto and the sandbox return nothing for it; use "
                 "statistic Average or Maximum there.)") if PERCENTILE.match(statistic) else ""
        return _no_data(ctx, allow_no_data, f"no TargetResponseTime {statistic} datapoints for {where}", dims,
                        evidence, outputs, extra)
    if len(breaching) >= n:
        worst = max(breaching, key=lambda t: values[t])
        return Outcome(False, f"latency {statistic} over {threshold:.0f} ms in {len(breaching)} of the last "
                              f"{len(evaluated)} datapoints (breach: {n}) for {where}; worst {values[worst]:.0f} ms "
                              f"at {_hhmm(worst)}. Look at CloudWatch AWS/ApplicationELB TargetResponseTime "
                              f"({dims[0]['Value']}), the database and the service's CPU", evidence, outputs)
    return Outcome(True, f"latency {statistic} {outputs['latency_ms']:.0f} ms (worst {outputs['max_latency_ms']:.0f} "
                         f"ms) for {where}; threshold {threshold:.0f} ms, {len(breaching)} of {len(evaluated)} "
                         "datapoints over", evidence, outputs)


@check("aws.cloudwatch_no_alarms",
       args={"properties": {"prefix": {**S, "description": "alarm name prefix (default monitoring.alarm_prefix)"},
                            "names": {"type": "array", "items": S, "description": "exact alarm names instead"},
                            "allow_empty": {"type": "boolean", "description": "pass when no alarm matches "
                                                                              "(default false)"}}},
       outputs={"type": "object", "properties": {"alarms": {"type": "array", "items": S},
                                                 "count": {"type": "integer"}, "checked": {"type": "integer"}}})
@_translated
def cloudwatch_no_alarms(ctx: Context) -> Outcome:
    """No CloudWatch alarm (metric or composite) whose name starts with the prefix is in ALARM.

    Fails when no alarm matches at all (a wrong prefix would make the check prove
    nothing) unless ``allow_empty``.
    """
    names = list(ctx.args.get("names") or [])
    prefix = "" if names else str(_arg(ctx, "prefix", "monitoring", "alarm_prefix", default=""))
    kwargs: dict[str, Any] = {"AlarmNames": names} if names else ({"AlarmNamePrefix": prefix} if prefix else {})
    alarms: list[dict[str, Any]] = []
    for page in aws.pages(ctx.env, "cloudwatch", "describe_alarms", prefix or ",".join(names), 20,
                          AlarmTypes=["MetricAlarm", "CompositeAlarm"], **kwargs):
        alarms.extend(page.get("MetricAlarms") or [])
        alarms.extend(page.get("CompositeAlarms") or [])
    # moto ignores StateValue next to a prefix, and a prefix-less query returns every alarm: filter here
    alarms = [a for a in alarms if (a["AlarmName"] in names if names else a["AlarmName"].startswith(prefix))]
    firing = [a for a in alarms if a.get("StateValue") == "ALARM"]
    outputs = {"alarms": [a["AlarmName"] for a in firing], "count": len(firing), "checked": len(alarms)}
    evidence = {"prefix": prefix, "names": names, "checked": len(alarms),
                "firing": [{"name": a["AlarmName"], "since": _iso(a.get("StateUpdatedTimestamp")),
                            "reason": ctx.redact(str(a.get("StateReason", "")))[:300]} for a in firing]}
    label = f"prefix {prefix!r}" if prefix else (", ".join(names) if names else "any name")
    if not alarms:
        if ctx.args.get("allow_empty"):
            return Outcome(True, f"no CloudWatch alarms match {label} (allowed: allow_empty)", evidence, outputs)
        return Outcome(False, f"no CloudWatch alarms match {label}: nothing was checked; fix monitoring.alarm_prefix "
                              "(or set allow_empty: true)", evidence, outputs)
    if firing:
        listed = "; ".join(f"{a['AlarmName']} since {_iso(a.get('StateUpdatedTimestamp'))}" for a in firing[:5])
        return Outcome(False, f"{len(firing)} of {len(alarms)} alarms ({label}) in ALARM, expected none: {listed}. "
                              "Look at CloudWatch > Alarms (each alarm's history says why)", evidence, outputs)
    return Outcome(True, f"none of {len(alarms)} alarms ({label}) in ALARM", evidence, outputs)


# -- Logs -----------------------------------------------------------------------------------

def _excerpt(ctx: Context, message: str, limit: int) -> str:
    text = EMAIL.sub("[EMAIL]", ctx.redact(message.strip()))
    return text if len(text) <= limit else text[:limit] + "…"


@check("aws.logs_errors",
       args={"properties": {
           "group": {**S, "description": "log group (default logs.group)"},
           "pattern": {**S, "description": "CloudWatch Logs filter pattern (default monitoring.error_log_pattern, "
                                           "else ERROR); moto supports plain terms only"},
           "window": {"type": "number", "exclusiveMinimum": 0, "description": "seconds back (default 900)"},
           "max": {**I0, "description": "matches allowed (default monitoring.max_error_logs, else 0)"},
           "excerpts": {**I0, "description": "excerpts kept (default 5)"},
           "excerpt_chars": {"type": "integer", "minimum": 20, "description": "default 240"},
           "scan_limit": {"type": "integer", "minimum": 1,
                          "description": "stop counting after this many (default 10000)"},
           "since_deployment": {"type": "boolean", "description": "start the window when the service's current "
                                                                  "deployment finished (default false)"},
           **CLUSTER}},
       outputs={"type": "object", "properties": {"count": {"type": "integer"}, "max": {"type": "integer"},
                                                 "capped": {"type": "boolean"}}})
@_translated
def logs_errors(ctx: Context) -> Outcome:
    """At most ``max`` log events match the pattern in the window; keeps a few redacted excerpts.

    Excerpts are redacted (secrets, e-mail addresses) and cut short; an item marked
    ``sensitive: true`` (log lines may carry patient data) keeps only times and streams.
    """
    group = str(_need(ctx, "group", "logs", "group", what="log group"))
    pattern = str(_arg(ctx, "pattern", "monitoring", "error_log_pattern", default="ERROR"))
    window = _since_deployment(ctx, float(ctx.args.get("window") or 900))
    allowed = int(_arg(ctx, "max", "monitoring", "max_error_logs", default=0))
    keep, chars = int(ctx.args.get("excerpts", 5)), int(ctx.args.get("excerpt_chars") or 240)
    scan_limit = int(ctx.args.get("scan_limit") or 10000)
    sensitive = bool(ctx.item.get("sensitive"))
    end = int(clock.time_s() * 1000)
    start = end - int(window * 1000)
    matched: list[dict[str, Any]] = []
    count, capped = 0, False
    for page in aws.pages(ctx.env, "logs", "filter_log_events", group, logGroupName=group, filterPattern=pattern,
                          startTime=start, endTime=end):
        for event in page.get("events") or []:
            count += 1
            matched = (matched + [event])[-keep:] if keep else []
        if count >= scan_limit:
            capped = True
            break
    excerpts = [{"time": _iso(dt.datetime.fromtimestamp(e["timestamp"] / 1000, dt.timezone.utc)),
                 "stream": e.get("logStreamName", ""),
                 **({} if sensitive else {"message": _excerpt(ctx, str(e.get("message", "")), chars)})}
                for e in reversed(matched)]
    outputs = {"count": count, "max": allowed, "capped": capped}
    evidence = {"group": group, "pattern": pattern, "window_s": window, "count": count, "capped": capped,
                "excerpts": excerpts, "sensitive": sensitive}
    found = (f"{count}{'+' if capped else ''} log events matching {pattern!r} in {group} over the last "
             f"{_minutes(window)}")
    if count > allowed:
        newest = excerpts[0] if excerpts else {}
        sample = f"; newest at {newest.get('time')}" + (f": {newest['message'][:120]}" if newest.get("message") else "")
        command = aws.cli_command(ctx.env, "logs", "filter-log-events", "--log-group-name", group,
                                  "--filter-pattern", str(pattern))
        return Outcome(False, f"{found} (at most {allowed} allowed){sample if newest else ''}. Look at: {command}",
                       evidence, outputs)
    return Outcome(True, f"{found} (at most {allowed} allowed)", evidence, outputs)


# -- ELBv2 ----------------------------------------------------------------------------------

@check("aws.elb_targets_healthy",
       args={"properties": {"target_group": ALB["target_group"],
                            "min_healthy": {**I0, "description": "default ecs.desired_count, else 1"},
                            "ignore_draining": {"type": "boolean", "description": "draining targets (old tasks "
                                                                                  "leaving) do not fail the check "
                                                                                  "(default true)"}}},
       outputs={"type": "object", "properties": {"healthy": {"type": "integer"}, "total": {"type": "integer"},
                                                 "unhealthy": {"type": "array", "items": {"type": "object"}}}})
@_translated
def elb_targets_healthy(ctx: Context) -> Outcome:
    """Every registered target of the target group is healthy, and at least ``min_healthy`` are."""
    ref = str(_need(ctx, "target_group", "alb", "target_group", what="target group"))
    if not ref.startswith("arn:"):
        groups = aws.call(ctx.env, "elbv2", "describe_target_groups", ref, Names=[ref])["TargetGroups"]
        ref = str(groups[0]["TargetGroupArn"])
    name = aws.arn_resource(ref).split("/")[1] if "/" in aws.arn_resource(ref) else ref
    found = aws.call(ctx.env, "elbv2", "describe_target_health", name, TargetGroupArn=ref)
    descriptions = found.get("TargetHealthDescriptions") or []
    ignore_draining = ctx.args.get("ignore_draining", True)
    states = [{"target": f"{d['Target']['Id']}:{d['Target'].get('Port', '')}",
               "state": d.get("TargetHealth", {}).get("State", ""),
               "reason": d.get("TargetHealth", {}).get("Reason", ""),
               "description": d.get("TargetHealth", {}).get("Description", "")} for d in descriptions]
    healthy = [s for s in states if s["state"] == "healthy"]
    bad = [s for s in states if s["state"] != "healthy" and not (ignore_draining and s["state"] == "draining")]
    minimum = int(_arg(ctx, "min_healthy", "ecs", "desired_count", default=1))
    outputs = {"healthy": len(healthy), "total": len(states), "unhealthy": bad}
    evidence = {"target_group": name, "targets": states[:50], "min_healthy": minimum}
    if bad or len(healthy) < minimum:
        detail = "; ".join(f"{s['target']} {s['state']} ({s['reason'] or '-'}: {s['description'] or '-'})"
                           for s in bad[:5])
        return Outcome(False, f"target group {name}: {len(healthy)} of {len(states)} targets healthy, expected all "
                              f"and at least {minimum}" + (f"; {detail}" if detail else "")
                       + ". Look at the target group's Targets tab and the health check path", evidence, outputs)
    return Outcome(True, f"target group {name}: {len(healthy)} of {len(states)} targets healthy", evidence, outputs)


# -- SNS ------------------------------------------------------------------------------------

@action("aws.sns_publish",
        args={"properties": {"topic_arn": {**S, "description": "default notify.sns_topic_arn"},
                             "subject": {**S, "maxLength": 100}, "message": {**S, "minLength": 1}},
              "required": ["message"]},
        outputs={"type": "object", "properties": {"message_id": S, "dedupe_key": S, "topic_arn": S}})
@_translated
def sns_publish(ctx: Context) -> Outcome:
    """Publish a notification to the SNS topic.

    No probe: SNS cannot be asked what was published, so after an interruption the
    engine cannot know whether the message went out and asks the operator. A repeat is
    harmless: every message carries the attribute ``runbook.dedupe_key`` (hash of run,
    item, subject and message; also in the outputs) for subscribers to drop duplicates,
    and on a FIFO topic it is the ``MessageDeduplicationId``, so SNS itself drops a
    repeat within five minutes.
    """
    topic = str(_need(ctx, "topic_arn", "notify", "sns_topic_arn", what="SNS topic"))
    subject = ctx.redact(str(ctx.args.get("subject") or ""))
    message = ctx.redact(str(ctx.args["message"]))
    key = hashlib.sha256("\0".join((ctx.run_id, str(ctx.item.get("id", "")), subject, message)).encode()).hexdigest()
    kwargs: dict[str, Any] = {"TopicArn": topic, "Message": message, "MessageAttributes": {
        "runbook.dedupe_key": {"DataType": "String", "StringValue": key[:32]},
        "runbook.run_id": {"DataType": "String", "StringValue": ctx.run_id or "-"}}}
    if subject:
        kwargs["Subject"] = subject
    if topic.endswith(".fifo"):
        kwargs.update(MessageGroupId=ctx.run_id or "runbook", MessageDeduplicationId=key[:64])
    sent = aws.call(ctx.env, "sns", "publish", aws.arn_resource(topic), **kwargs)
    outputs = {"message_id": str(sent.get("MessageId", "")), "dedupe_key": key[:32], "topic_arn": topic}
    evidence = {**outputs, "subject": subject, "message_sha256": hashlib.sha256(message.encode()).hexdigest(),
                "message_chars": len(message), "fifo": topic.endswith(".fifo")}
    return Outcome.ok(f"published to {aws.arn_resource(topic)}: {subject or message[:60]!r} "
                      f"(message {outputs['message_id']})", evidence, **outputs)
