"""ECS reads the ECS plugins share (aws_ecs, aws_ecs_rollback, and the look-back windows of
aws_cloudwatch and aws_logs): the service, its task definitions, image digests, deployments.

A deployment controller other than ECS (CODE_DEPLOY blue/green, EXTERNAL) is refused by
every ECS plugin: its deployments are not ECS deployments and need CodeDeploy.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from runbook.api import aws, clock, ExternalError, Context
from ._aws_common import S, Unconfigured, env_need, fmt_iso


TD_OUT = {"task_definition": {**S, "description": "full ARN"}, "family_revision": S, "family": S,
          "revision": {"type": "integer"}, "image": S, "image_digest": S, "container": S,
          "images": {"type": "object"}, "registered_at": S}


def ecs_service(ctx: Context) -> tuple[dict[str, Any], str, str]:
    cluster = env_need(ctx, "cluster", "ecs", "cluster", what="ECS cluster")
    name = env_need(ctx, "service", "ecs", "service", what="ECS service")
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


def ecs_controller_refusal(ctx: Context, svc: dict[str, Any] | None = None) -> str:
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


def ecs_task_definition(ctx: Context, ref: str) -> dict[str, Any]:
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


def ecs_describe(ctx: Context, ref: str, running_in: tuple[str, str] | None = None) -> dict[str, Any]:
    """A task definition as the plugins report it: ARN, family:revision, image, digest (and where it came from)."""
    td = ecs_task_definition(ctx, ref)
    container = _container(ctx, td)
    image = str(container.get("image", ""))
    arn = str(td["taskDefinitionArn"])
    digest, source, problem = _digest(ctx, image, arn, str(container.get("name", "")), running_in)
    return {"task_definition": arn, "family_revision": aws.family_revision(arn), "family": td.get("family", ""),
            "revision": int(td.get("revision", 0)), "image": image, "image_digest": digest,
            "digest_source": source, "digest_problem": problem,
            "container": container.get("name", ""), "status": td.get("status", ""),
            "images": {c.get("name", ""): c.get("image", "") for c in td.get("containerDefinitions") or []},
            "registered_at": fmt_iso(td.get("registeredAt"))}


def image_tag(image: str) -> str:
    """The tag of an image reference (``REGISTRY/REPO:v1.4.0`` -> ``v1.4.0``; '' for a digest or none)."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[1] if ":" in name and "@" not in image else ""


def ecs_td_outputs(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in TD_OUT}


def ecs_deployments(svc: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": d.get("id"), "status": d.get("status"),
             "task_definition": aws.family_revision(str(d.get("taskDefinition", ""))),
             "desired": d.get("desiredCount", 0), "running": d.get("runningCount", 0),
             "pending": d.get("pendingCount", 0), "failed_tasks": d.get("failedTasks", 0),
             "rollout_state": d.get("rolloutState", ""), "reason": d.get("rolloutStateReason", "")}
            for d in svc.get("deployments") or []]


def ecs_events(svc: dict[str, Any], count: int = 5) -> list[str]:
    return [f"{fmt_iso(e.get('createdAt'))} {str(e.get('message', '')).rstrip('.')}"
            for e in (svc.get("events") or [])[:count]]


def ecs_steady_problems(svc: dict[str, Any], expected_desired: int | None) -> list[str]:
    """What keeps the service from steady: one PRIMARY, running = desired, none pending, rollout COMPLETED."""
    deps = ecs_deployments(svc)
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


def ecs_where(ctx: Context, cluster: str, service: str) -> str:
    command = aws.cli_command(ctx.env, "ecs", "describe-services", "--cluster", cluster, "--services", service)
    return f"Look at: {command} (deployments, events)"


def ecs_since_deployment(ctx: Context, window: float) -> float:
    """With ``since_deployment``, shorten a look-back window to start when the current deployment finished.

    After a rollout (or a rollback) only what the new tasks did counts: errors of the
    version just replaced must not fail the version now serving.
    """
    if not ctx.args.get("since_deployment"):
        return window
    svc, _, _ = ecs_service(ctx)
    primary = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), None)
    if not primary:
        return window
    stamp = primary.get("updatedAt") if primary.get("rolloutState") == "COMPLETED" else primary.get("createdAt")
    if not isinstance(stamp, dt.datetime):
        return window
    age = (clock.now() - stamp).total_seconds()
    return max(1.0, min(window, age))
