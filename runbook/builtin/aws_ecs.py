"""aws.ecs_*: the service's current task definition, its deployment state, the wait for a
stable rollout, and update-service.

``aws.ecs_deployment_state`` looks once (poll it with the item's ``wait:``);
``aws.ecs_wait_stable`` waits itself, polling ``describe_services`` with progress, because
it must stop early on a FAILED rollout (the boto3 ``services_stable`` waiter would wait
for its whole budget) and tell a circuit-breaker rollback from success. Its success
condition is the waiter's: one deployment, running = desired.
"""

from __future__ import annotations

from typing import Any

from runbook.api import aws, Context, Outcome, action, check, probe, clock
from ._aws_common import CLUSTER, I0, S, env_arg, fmt_iso, fmt_minutes, translated
from ._aws_ecs import TD_OUT, ecs_controller_refusal, ecs_deployments, ecs_describe, ecs_events, ecs_service, ecs_steady_problems, ecs_task_definition, ecs_td_outputs, ecs_where


@check("aws.ecs_current_task_definition",
       args={"properties": {**CLUSTER, "container": {**S, "description": "container whose image is reported "
                                                                         "(default: the one on ecs.container_port)"}}},
       outputs={"type": "object", "properties": TD_OUT})
@translated
def ecs_current_task_definition(ctx: Context) -> Outcome:
    """The service's current task definition, its image and image digest.

    The digest comes from the image reference when it pins one, else from the service's
    running tasks, else from ECR (what the tag points to now). A release runbook records
    this before its merge (``record-live.live``) and after its deploy
    (``deploy-wait.current``): that is what ``aws.ecs_rollback_target`` reads.
    """
    svc, cluster, name = ecs_service(ctx)
    refusal = ecs_controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    info = ecs_describe(ctx, svc["taskDefinition"], running_in=(cluster, name))
    evidence = {**ecs_td_outputs(info), "digest_source": info["digest_source"], "deployments": ecs_deployments(svc)}
    if info["digest_problem"]:
        evidence["digest_problem"] = info["digest_problem"]
    digest = f", digest {info['image_digest'][:19]}…" if info["image_digest"] else ", digest unknown"
    return Outcome.ok(f"{cluster}/{name} runs {info['family_revision']} (image {info['image']}{digest})", evidence,
                      **ecs_td_outputs(info))


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
@translated
def ecs_deployment_state(ctx: Context) -> Outcome:
    """One look at the service: one PRIMARY deployment, running = desired, none pending, rollout COMPLETED.

    Poll it with the item's ``wait: {timeout, interval}``; ``aws.ecs_wait_stable`` waits itself.
    """
    svc, cluster, name = ecs_service(ctx)
    refusal = ecs_controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    desired = env_arg(ctx, "desired_count", "ecs", "desired_count")
    problems = ecs_steady_problems(svc, int(desired) if desired is not None else None)
    expected = ctx.args.get("task_definition")
    outputs = _state_outputs(svc)
    if expected and not aws.same_task_definition(outputs["task_definition"], expected):
        problems.insert(0, f"PRIMARY runs {outputs['family_revision']}, expected {aws.family_revision(expected)}")
    evidence = {"deployments": ecs_deployments(svc), "events": [ctx.redact(e) for e in ecs_events(svc)],
                "desired": svc.get("desiredCount"), "running": svc.get("runningCount"),
                "pending": svc.get("pendingCount")}
    if problems:
        latest = ecs_events(svc, 1)
        return Outcome(False, f"{cluster}/{name} is not steady: expected one PRIMARY deployment with running = "
                              f"desired, none pending, rollout COMPLETED; found " + "; ".join(problems)
                       + (f". Latest event: {ctx.redact(latest[0])}" if latest else "")
                       + f". {ecs_where(ctx, cluster, name)}", evidence, outputs)
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
@translated
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
    svc, cluster, name = ecs_service(ctx)
    refusal = ecs_controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    expected = str(ctx.args.get("task_definition") or svc["taskDefinition"])
    now = {"svc": svc}                         # the service as last described

    def look() -> Outcome | None:
        return _stable_outcome(ctx, now["svc"], cluster, name, expected, clock.monotonic() - started)

    def tick(waited: float) -> None:          # progress, the interval, then the service as it is now
        ctx.progress(_progress(now["svc"], name) + f"; {timeout - waited:.0f} s left")
        clock.sleep(interval)
        now["svc"] = ecs_service(ctx)[0]

    outcome = clock.wait_until(look, timeout, interval, on_tick=tick, sleep=False)
    if outcome is not None:
        return outcome
    svc, waited = now["svc"], clock.monotonic() - started
    problems = ecs_steady_problems(svc, None)
    return _wait_result(ctx, svc, False, f"{cluster}/{name} not stable on {aws.family_revision(expected)} "
                                         f"after {fmt_minutes(waited)}: " + "; ".join(problems)
                        + _latest(ctx, svc) + f". {ecs_where(ctx, cluster, name)}", waited)


def _progress(svc: dict[str, Any], name: str) -> str:
    deps = ecs_deployments(svc)
    primary = next((d for d in deps if d["status"] == "PRIMARY"), None)
    if primary is None:
        return f"{name}: no PRIMARY deployment"
    old = sum(d["running"] for d in deps if d is not primary)
    return (f"{name}: {primary['task_definition']} {primary['running']}/{primary['desired']} running, "
            f"{primary['pending']} pending, {primary['failed_tasks']} failed, rollout {primary['rollout_state'] or '?'}"
            + (f"; {old} old task(s) still running" if old else ""))


def _latest(ctx: Context, svc: dict[str, Any]) -> str:
    latest = ecs_events(svc, 1)
    return f". Latest event: {ctx.redact(latest[0])}" if latest else ""


def _stable_outcome(ctx: Context, svc: dict[str, Any], cluster: str, name: str, expected: str,
                    waited: float) -> Outcome | None:
    """The wait's result when it is decided (stable, failed, rolled back); None to keep waiting.

    Without an explicit ``task_definition`` the expected one is whatever the service was
    set to when the wait began, which may already be the circuit breaker's rollback:
    then any FAILED deployment, or a PRIMARY that the events name as a rollback, fails.
    """
    explicit = bool(ctx.args.get("task_definition"))
    deps = ecs_deployments(svc)
    failed = [d for d in deps if d["rollout_state"] == "FAILED"]
    failed = [d for d in failed if aws.same_task_definition(d["task_definition"], expected)] or \
        ([] if explicit else failed)
    current = str(svc.get("taskDefinition", ""))
    look = f"Check the stopped tasks' reasons and the logs. {ecs_where(ctx, cluster, name)}"
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
                                             f"or replaced{_latest(ctx, svc)}. {ecs_where(ctx, cluster, name)}",
                            waited)
    rollback = "" if explicit else _rollback_event(svc, str(deps[0]["id"]))
    if rollback:
        return _wait_result(ctx, svc, False, f"{cluster}/{name} is stable on {deps[0]['task_definition']}, but "
                                             "that is the deployment circuit breaker's rollback after a failed "
                                             f"deployment ({ctx.redact(rollback)}): the new version is not running. "
                                             f"{look}", waited)
    return _wait_result(ctx, svc, True, f"{cluster}/{name} stable on {deps[0]['task_definition']}: "
                                        f"{svc.get('runningCount')}/{svc.get('desiredCount')} running after "
                                        f"{fmt_minutes(waited)}", waited)


def _rollback_event(svc: dict[str, Any], deployment_id: str) -> str:
    """The service event saying ECS rolled back to this deployment ('' when there is none)."""
    for event in (svc.get("events") or [])[:50]:
        message = str(event.get("message", ""))
        if deployment_id and f"rolling back to deployment {deployment_id}" in message:
            return f"{fmt_iso(event.get('createdAt'))} {message.rstrip('.')}"
    return ""


def _wait_result(ctx: Context, svc: dict[str, Any], passed: bool, summary: str, waited: float) -> Outcome:
    state = _state_outputs(svc)
    current = str(svc.get("taskDefinition", ""))
    outputs = {"task_definition": current, "family_revision": aws.family_revision(current),
               "running": state["running"], "desired": state["desired"], "rollout_state": state["rollout_state"],
               "failed_tasks": state["failed_tasks"], "waited_s": round(waited, 1)}
    evidence = {"deployments": ecs_deployments(svc), "events": [ctx.redact(e) for e in ecs_events(svc)],
                "waited_s": round(waited, 1)}
    return Outcome(passed, summary, evidence, outputs)


UPDATE_OUT = {"task_definition": S, "family_revision": S, "previous_task_definition": S,
              "previous_family_revision": S, "deployment_id": S}


def _update_target(ctx: Context, svc: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The task definition to deploy, or None and why it is refused."""
    refusal = ecs_controller_refusal(ctx, svc)
    if refusal:
        return None, refusal
    td = ecs_task_definition(ctx, str(ctx.args["task_definition"]))
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
@translated
def ecs_update_service(ctx: Context) -> Outcome:
    """Point the service at a task definition with a new deployment (update-service --force-new-deployment).

    Refuses other deployment controllers, deregistered revisions and other families.
    Wait for the rollout with ``aws.ecs_wait_stable``. Probe: the service already on it.
    """
    if ctx.args.get("desired_count") == 0:
        return Outcome.fail("desired_count 0 refused: it stops every task of the service, old and new (the guide's "
                            "'immediate rollback' mistake); roll back to a task definition instead")
    svc, cluster, name = ecs_service(ctx)
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
    svc, cluster, name = ecs_service(ctx)
    target = str(ecs_task_definition(ctx, str(ctx.args["task_definition"]))["taskDefinitionArn"])
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
