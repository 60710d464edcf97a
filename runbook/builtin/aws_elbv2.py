"""aws.elb_targets_healthy: every target of the load balancer's target group is healthy."""

from __future__ import annotations


from runbook.api import aws, Context, Outcome, check
from ._aws_common import ALB, I0, env_arg, env_need, translated


@check("aws.elb_targets_healthy",
       args={"properties": {"target_group": ALB["target_group"],
                            "min_healthy": {**I0, "description": "default ecs.desired_count, else 1"},
                            "ignore_draining": {"type": "boolean", "description": "draining targets (old tasks "
                                                                                  "leaving) do not fail the check "
                                                                                  "(default true)"}}},
       outputs={"type": "object", "properties": {"healthy": {"type": "integer"}, "total": {"type": "integer"},
                                                 "unhealthy": {"type": "array", "items": {"type": "object"}}}})
@translated
def elb_targets_healthy(ctx: Context) -> Outcome:
    """Every registered target of the target group is healthy, and at least ``min_healthy`` are."""
    ref = str(env_need(ctx, "target_group", "alb", "target_group", what="target group"))
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
    minimum = int(env_arg(ctx, "min_healthy", "ecs", "desired_count", default=1))
    outputs = {"healthy": len(healthy), "total": len(states), "unhealthy": bad}
    evidence = {"target_group": name, "targets": states[:50], "min_healthy": minimum}
    if bad or len(healthy) < minimum:
        detail = "; ".join(f"{s['target']} {s['state']} ({s['reason'] or '-'}: {s['description'] or '-'})"
                           for s in bad[:5])
        return Outcome(False, f"target group {name}: {len(healthy)} of {len(states)} targets healthy, expected all "
                              f"and at least {minimum}" + (f"; {detail}" if detail else "")
                       + ". Look at the target group's Targets tab and the health check path", evidence, outputs)
    return Outcome(True, f"target group {name}: {len(healthy)} of {len(states)} targets healthy", evidence, outputs)
