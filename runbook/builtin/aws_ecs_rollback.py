"""aws.ecs_rollback_target: the task definition to roll back to, read from the release runs'
journals (what was live before the release now running), or an operator's choice checked."""

from __future__ import annotations

from typing import Any

from runbook.api import aws, Context, Outcome, check
from ._aws_common import CLUSTER, S, env_arg, translated
from ._aws_ecs import ecs_controller_refusal, ecs_describe, ecs_service, ecs_td_outputs, image_tag


@check("aws.ecs_rollback_target",
       args={"properties": {
           **CLUSTER,
           "family": {**S, "description": "task definition family (default: ecs.task_family, else the current "
                                          "one's)"},
           "runbook": {**S, "minLength": 1, "description": "the release runbook whose runs are searched "
                                                            "(the shipped runbooks: production-release)"},
           "release_step": {**S, "pattern": "^[^.]+[.][^.]+$",
                            "description": "STEP.ITEM whose outputs hold the task definition live before the "
                                           "release (the shipped release: record-live.live)"},
           "deployed_step": {**S, "pattern": "^[^.]+[.][^.]+$",
                             "description": "STEP.ITEM whose outputs hold the task definition the release deployed "
                                            "(the shipped release: deploy-wait.current)"},
           "target": {**S, "description": "an operator's choice to validate instead (ARN or family:revision; "
                                          "'' = none)"},
           "max_candidates": {"type": "integer", "minimum": 1, "description": "default 10"}},
           "required": ["runbook", "release_step", "deployed_step"]},
       outputs={"type": "object", "properties": {
           "target": S, "family_revision": S, "image": S, "image_digest": S, "source": S, "release_run": S,
           "current": S, "current_family_revision": S, "current_image": S,
           "version": {**S, "description": "the target image's tag (the version rolled back to)"},
           "current_version": {**S, "description": "the current image's tag (the version rolled back from)"},
           "warnings": {"type": "array", "items": S},
           "candidates": {"type": "array", "items": {"type": "object"}}}})
@translated
def ecs_rollback_target(ctx: Context) -> Outcome:
    """The task definition to roll back to: what was live before the release now running.

    Never "current revision minus one": revisions registered but never deployed sit in
    between. The convention, read from other runs' journals (ctx.history): a release run
    (runbook ``runbook``, same environment) records, as item outputs with a
    ``task_definition`` key (the runbook and both steps are arguments: the policy names no
    team's runbook; the shipped rollbacks pass ``production-release``, ``record-live.live``
    and ``deploy-wait.current``),

    * at ``release_step``: the task definition live before its merge
      (``aws.ecs_current_task_definition``), and
    * at ``deployed_step``: the one it deployed
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
    svc, cluster, name = ecs_service(ctx)
    refusal = ecs_controller_refusal(ctx, svc)
    if refusal:
        return Outcome.fail(refusal)
    current = ecs_describe(ctx, svc["taskDefinition"], running_in=(cluster, name))
    family = env_arg(ctx, "family", "ecs", "task_family", default=current["family"])
    base = {"current": current["task_definition"], "current_family_revision": current["family_revision"],
            "current_image": current["image"], "current_version": image_tag(current["image"])}
    if ctx.args.get("target"):
        return _chosen_target(ctx, current, family, base)
    runbook, release_step, deployed_step = (str(ctx.args[k]) for k in ("runbook", "release_step", "deployed_step"))
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
                "current": ecs_td_outputs(current), "candidates": candidates}
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
                   {"release_run": run.run_id, "release_status": run.status, "current": ecs_td_outputs(current),
                    "candidates": candidates},
                   {**base, "target": "", "family_revision": "", "image": "", "image_digest": "", "source": "",
                    "version": "", "release_run": run.run_id, "warnings": [], "candidates": candidates})


def _journal_target(ctx: Context, current: dict[str, Any], before: str, run: Any, base: dict[str, Any]) -> Outcome:
    target = ecs_describe(ctx, before)
    warnings = _target_warnings(target, current)
    evidence = {"release_run": run.run_id, "release_started": run.started, "release_status": run.status,
                "release_params": {k: v for k, v in (run.params or {}).items() if isinstance(v, (str, int, float))},
                "target": ecs_td_outputs(target), "current": ecs_td_outputs(current), "warnings": warnings}
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
    target = ecs_describe(ctx, str(ctx.args["target"]))
    warnings = _target_warnings(target, current)
    outputs = {**base, "target": target["task_definition"], "family_revision": target["family_revision"],
               "image": target["image"], "image_digest": target["image_digest"], "source": "chosen",
               "version": image_tag(target["image"]),
               "release_run": "", "warnings": warnings, "candidates": []}
    evidence = {"target": ecs_td_outputs(target), "current": ecs_td_outputs(current), "warnings": warnings}
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
        info = ecs_describe(ctx, arn)
        out.append({"task_definition": info["task_definition"], "family_revision": info["family_revision"],
                    "image": info["image"], "image_digest": info["image_digest"],
                    "registered_at": info["registered_at"],
                    "same_digest_as_current": bool(info["image_digest"])
                    and info["image_digest"] == current["image_digest"],
                    "live_before_run": live_before.get(info["family_revision"], "")})
    return out
